// Which lines of a rendered file are an Ingress's own, recorded while mustache writes them: the
// items of OWNED_SECTIONS are wrapped in marks, which unmark() turns into line ranges and cuts out.
// settle.ts blames a line nginx refuses on the Ingress whose lines these are (Rendered.ingressAt).
import Mustache from 'mustache';

const OPEN = '\u0001';
const NAMED = '\u0002';
const CLOSE = '\u0003';
// eslint-disable-next-line no-control-regex
export const MARKS = /[\u0001-\u0003]/;
// eslint-disable-next-line no-control-regex
const MARK = /\u0001([^\u0002]*)\u0002|\u0003/g;

/**
 * Sections of the templates whose every item is one Ingress's own lines (the item's `ingress`).
 * Their text is marked with control characters, which no value can hold (nginxValue refuses them)
 * and no template does (render.ts's checked()); the marks become line ranges and are cut out
 * (unmark()).
 */
const OWNED_SECTIONS = new Set(['locations', 'mirrors', 'serverSnippets']);

export class MarkingWriter extends Mustache.Writer {
  override renderSection(
    token: string[],
    context: Mustache.Context,
    partials?: Mustache.PartialsOrLookupFn,
    originalTemplate?: string,
    cfg?: Mustache.RenderOptions,
  ): string {
    // The name first: a second lookup for every other section is measurable at thousands of hosts.
    if (!OWNED_SECTIONS.has(token[1]!)) return super.renderSection(token, context, partials, originalTemplate, cfg);
    const items: unknown = context.lookup(token[1]!);
    if (!Array.isArray(items)) return super.renderSection(token, context, partials, originalTemplate, cfg);
    // As mustache renders an array section, item by item, with each item's own marks.
    const tokens = token[4] as unknown as string[][];
    let buffer = '';
    for (const item of items) {
      const text = this.renderTokens(tokens, context.push(item), partials, originalTemplate, cfg);
      const ingress = (item as { ingress?: unknown }).ingress;
      buffer += typeof ingress === 'string' && ingress !== '' ? `${OPEN}${ingress}${NAMED}${text}${CLOSE}` : text;
    }
    return buffer;
  }
}

/** One Ingress's own lines of a file: `from` to `to`, 1-based, inclusive. */
export interface OwnedLines {
  ingress: string;
  from: number;
  to: number;
}

/** The text without its marks, and the lines each marked item took in it. */
export function unmark(marked: string): { text: string; owned: OwnedLines[] } {
  if (!marked.includes(OPEN)) return { text: marked, owned: [] };
  const owned: OwnedLines[] = [];
  const open: Array<{ ingress: string; from: number }> = [];
  const parts: string[] = [];
  let line = 1;
  let atLineStart = true;
  let at = 0;
  for (const m of marked.matchAll(MARK)) {
    const chunk = marked.slice(at, m.index);
    parts.push(chunk);
    for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) line++;
    if (chunk !== '') atLineStart = chunk.endsWith('\n');
    at = m.index + m[0].length;
    if (m[1] !== undefined) {
      open.push({ ingress: m[1], from: line });
    } else {
      const item = open.pop()!;
      // An item ends with its last line's newline: that line, not the next one, is its last.
      owned.push({ ingress: item.ingress, from: item.from, to: atLineStart ? line - 1 : line });
    }
  }
  parts.push(marked.slice(at));
  return { text: parts.join(''), owned };
}

/** The files of one model, and which Ingress wrote which of their lines. */
export class Rendered {
  readonly files: Map<string, string>;
  readonly #owned: ReadonlyMap<string, readonly OwnedLines[]>;

  constructor(files: Map<string, string>, owned: ReadonlyMap<string, readonly OwnedLines[]>) {
    this.files = files;
    this.#owned = owned;
  }

  /**
   * The Ingress whose own lines (a location, a mirror-target block, a server-snippet) include
   * `line` of `file`; null for lines that several Ingresses share (server-level lines, maps,
   * upstreams) or that none wrote.
   */
  ingressAt(file: string, line: number): string | null {
    for (const o of this.#owned.get(file) ?? []) if (line >= o.from && line <= o.to) return o.ingress;
    return null;
  }

  /** Every file's own lines, for tests. */
  ownedLines(file: string): readonly OwnedLines[] {
    return this.#owned.get(file) ?? [];
  }
}
