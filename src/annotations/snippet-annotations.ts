// configuration-snippet and server-snippet: only with --allow-snippet-annotations, and then
// parsed into directives (src/annotations/snippets.ts) that render writes token by token.

import { parseSnippet, snippetLines, type SnippetDirective } from './snippets.ts';
import { annotation, type GroupInput } from './values.ts';

export const CONFIGURATION_SNIPPET = annotation('configuration-snippet');
export const SERVER_SNIPPET = annotation('server-snippet');

/** Not in SUPPORTED_ANNOTATIONS: without --allow-snippet-annotations they are classified (refused) like any other. */
export const SNIPPET_ANNOTATIONS = [CONFIGURATION_SNIPPET, SERVER_SNIPPET];

export interface SnippetAnnotations {
  /** configuration-snippet and server-snippet, parsed (only with --allow-snippet-annotations). */
  configurationSnippet: SnippetDirective[] | null;
  serverSnippet: SnippetDirective[] | null;
}

export const NO_SNIPPET_ANNOTATIONS: Readonly<SnippetAnnotations> = Object.freeze({
  configurationSnippet: null,
  serverSnippet: null,
});

export function parseSnippets({ r, allowSnippets }: GroupInput): SnippetAnnotations {
  if (!allowSnippets) return { configurationSnippet: null, serverSnippet: null };
  const location = r.string(CONFIGURATION_SNIPPET);
  const server = r.string(SERVER_SNIPPET);
  return {
    configurationSnippet: location === undefined ? null : parseSnippet(CONFIGURATION_SNIPPET, location, 'location'),
    serverSnippet: server === undefined ? null : parseSnippet(SERVER_SNIPPET, server, 'server'),
  };
}

export interface SnippetSettings {
  /** configuration-snippet (--allow-snippet-annotations): parsed directives, rendered token by token. */
  snippet: SnippetDirective[] | null;
}

export function snippetSettings(a: SnippetAnnotations): SnippetSettings {
  return { snippet: a.configurationSnippet };
}

export const DEFAULT_SNIPPET_SETTINGS: Readonly<SnippetSettings> = Object.freeze(
  snippetSettings(NO_SNIPPET_ANNOTATIONS),
);

export function snippetView(s: SnippetSettings) {
  return {
    configurationSnippet: s.snippet
      ? {
          lines: snippetLines(s.snippet),
          // nginx: a proxy_set_header in the location replaces all it would inherit (SNIPPET_PARTIAL).
          snippetProxyHeaders: s.snippet.some((d) => d.name === 'proxy_set_header'),
        }
      : null,
  };
}
