// nginx.ingress.kubernetes.io/* annotations -> typed settings. Pure, like translate: every value
// is parsed against a narrow grammar into a number, an enum or a checked token, or the Ingress is
// rejected with a reason (InvalidValue). Nothing here is ever passed to nginx raw: the render step
// builds directives from these values only.
//
// Names, value formats and defaults are ingress-nginx's (the annotations users move over); where
// stock nginx cannot do what ingress-nginx does, docs/annotations.md says what
// happens instead. Annotations under the prefix that are not implemented are reported once each;
// the snippet annotations are refused outright, since they would let an Ingress author write nginx
// configuration.
//
// One file per group holds its names, parse, settings, defaults and render view; this index runs
// the groups' parses in order and composes what they return.

import { classify } from './classes.ts';
import { ACCESS_ANNOTATIONS, DEFAULT_ACCESS, parseAccess, type AccessAnnotations } from './access.ts';
import { AUTH_ANNOTATIONS, NO_AUTH_ANNOTATIONS, parseAuth, type AuthAnnotations } from './auth.ts';
import {
  BALANCING_ANNOTATIONS,
  NO_BALANCING_ANNOTATIONS,
  parseBalancing,
  parseServiceUpstream,
  type BalancingAnnotations,
} from './balancing.ts';
import { CANARY_ANNOTATIONS, NO_CANARY_ANNOTATIONS, parseCanary, type CanaryAnnotations } from './canary.ts';
import { CORS_ANNOTATIONS, NO_CORS_ANNOTATIONS, parseCors, type CorsAnnotations } from './cors.ts';
import {
  MIRROR_AND_ERRORS_ANNOTATIONS,
  NO_MIRROR_AND_ERRORS_ANNOTATIONS,
  parseMirrorAndErrors,
  type MirrorAndErrorsAnnotations,
} from './mirror-errors.ts';
import {
  NO_PROXY_ANNOTATIONS,
  PROXY_ANNOTATIONS,
  parseBackendProtocol,
  parseProxy,
  type ProxyAnnotations,
} from './proxy.ts';
import {
  NO_RATE_LIMIT_ANNOTATIONS,
  RATE_LIMIT_ANNOTATIONS,
  parseRateLimits,
  type RateLimitAnnotations,
} from './rate-limits.ts';
import {
  NO_REDIRECT_ANNOTATIONS,
  REDIRECT_ANNOTATIONS,
  parseRewrite,
  parseSslRedirect,
  type RedirectAnnotations,
} from './redirect.ts';
import {
  NO_SNIPPET_ANNOTATIONS,
  SNIPPET_ANNOTATIONS,
  parseSnippets,
  type SnippetAnnotations,
} from './snippet-annotations.ts';
import { ANNOTATION_PREFIX, Reader, type GroupInput } from './values.ts';

export * from './values.ts';
export * from './proxy.ts';
export * from './redirect.ts';
export * from './regex-path.ts';
export * from './access.ts';
export * from './cors.ts';
export * from './rate-limits.ts';
export * from './auth.ts';
export * from './balancing.ts';
export * from './canary.ts';
export * from './mirror-errors.ts';
export * from './snippet-annotations.ts';

/** Every annotation this sidecar implements (the others under the prefix are reported). */
export const SUPPORTED_ANNOTATIONS: ReadonlySet<string> = new Set([
  ...REDIRECT_ANNOTATIONS,
  ...PROXY_ANNOTATIONS,
  ...ACCESS_ANNOTATIONS,
  ...CORS_ANNOTATIONS,
  ...RATE_LIMIT_ANNOTATIONS,
  ...AUTH_ANNOTATIONS,
  ...BALANCING_ANNOTATIONS,
  ...CANARY_ANNOTATIONS,
  ...MIRROR_AND_ERRORS_ANNOTATIONS,
]);

/** What an Ingress's annotations ask of every location it owns. */
export interface IngressAnnotations
  extends
    ProxyAnnotations,
    RedirectAnnotations,
    AccessAnnotations,
    CorsAnnotations,
    RateLimitAnnotations,
    AuthAnnotations,
    BalancingAnnotations,
    CanaryAnnotations,
    MirrorAndErrorsAnnotations,
    SnippetAnnotations {
  /**
   * Why the Ingress cannot be served as asked (a must-not-ignore annotation that is not
   * implemented, src/annotations/classes.ts; translate adds a value that does not parse): its paths
   * answer 503. Empty: none.
   */
  denied: string[];
}

export const NO_ANNOTATIONS: Readonly<IngressAnnotations> = Object.freeze({
  ...NO_PROXY_ANNOTATIONS,
  ...NO_REDIRECT_ANNOTATIONS,
  ...DEFAULT_ACCESS,
  ...NO_CORS_ANNOTATIONS,
  ...NO_RATE_LIMIT_ANNOTATIONS,
  ...NO_AUTH_ANNOTATIONS,
  ...NO_BALANCING_ANNOTATIONS,
  ...NO_CANARY_ANNOTATIONS,
  ...NO_MIRROR_AND_ERRORS_ANNOTATIONS,
  ...NO_SNIPPET_ANNOTATIONS,
  denied: [],
});

/**
 * The groups' parses, in the order they run: the first value that does not parse is the one the
 * rejection names. Each reads only its own annotations.
 */
const PARSES: Array<(g: GroupInput) => Partial<IngressAnnotations>> = [
  parseSslRedirect,
  parseProxy,
  parseRewrite,
  parseAccess,
  parseCors,
  parseRateLimits,
  parseBackendProtocol,
  parseAuth,
  parseBalancing,
  parseCanary,
  parseServiceUpstream,
  parseMirrorAndErrors,
  parseSnippets,
];

/**
 * Parses every annotation under the prefix. Throws InvalidValue for a value that does not parse;
 * returns notes (reported as partial rejections) for annotations that have no effect.
 */
export function parseAnnotations(
  given: Record<string, unknown>,
  ctx: { namespace: string; tlsEnabled: boolean; allowSnippets?: boolean; stickyCookie?: boolean },
): { annotations: IngressAnnotations; notes: string[] } {
  const r = new Reader(given);
  const notes: string[] = [];
  const g: GroupInput = {
    r,
    noEffect: (name, why) => {
      if (r.has(name)) notes.push(`annotation ${name} has no effect: ${why}`);
    },
    namespace: ctx.namespace,
    tlsEnabled: ctx.tlsEnabled,
    allowSnippets: ctx.allowSnippets ?? false,
    stickyCookie: ctx.stickyCookie ?? false,
  };
  const a: IngressAnnotations = { ...NO_ANNOTATIONS, denied: [] };
  for (const parse of PARSES) Object.assign(a, parse(g));

  for (const name of Object.keys(given)) {
    if (!name.startsWith(ANNOTATION_PREFIX)) continue;
    if (g.allowSnippets && SNIPPET_ANNOTATIONS.includes(name)) continue;
    const c = classify(name, given[name], SUPPORTED_ANNOTATIONS, ANNOTATION_PREFIX);
    if (c.class === 'implemented') continue;
    // The name is the user's: JSON-escaped (no control characters reach a log line) and cut short.
    const quoted = JSON.stringify(name).slice(1, -1);
    const shownName = quoted.length > 200 ? `${quoted.slice(0, 200)}...` : quoted;
    if (c.class === 'must-not-ignore') {
      a.denied.push(`annotation ${shownName} is not implemented and must not be ignored: ${c.why}`);
    } else {
      notes.push(`annotation ${shownName} is not supported and has no effect${c.why ? `: ${c.why}` : ''}`);
    }
  }
  a.denied.sort();
  return { annotations: a, notes: notes.sort() };
}
