// nginx's tokenizer, ported once: ngx_conf_read_token and ngx_conf_parse (src/core/ngx_conf_file.c).
// The snippet annotations are read with it (src/annotations/snippets.ts), and the tests read every
// rendered file back with it, directive by directive, to prove that no value ended one early.
//
// It works on UTF-8 bytes, as nginx does, and follows nginx's rules rather than intuition:
// - a word ends at whitespace (space, tab, CR, LF), ";" or "{"; "}" and "#" are special only
//   where a token starts ("a}" and "a#b" are ordinary words); "#" starts a comment to the end of
//   the line;
// - "\" makes the next byte ordinary anywhere (also in unquoted words and before a quote);
// - in every word, "\"", "\'" and "\\" lose their backslash and "\t", "\r", "\n" become control
//   characters; any other "\x" stays as it is;
// - after "$", a "{" does not end a word ("${name}");
// - single and double quotes group, and a closing quote must be followed by whitespace, ";", "{"
//   or ")";
// - a token (a comment from its "#") of 4096 bytes or more is "too long" (NGX_CONF_BUFFER);
// - a "}" may not close anything at the top of a file, and a file may not end inside a block.
// Syntax nginx refuses throws NginxSyntaxError: nginx's own wording and line, and the problem as
// data, so that a caller (the snippet reader) can say it in its own words.

/** NGX_CONF_BUFFER: nginx's read buffer, which one token must fit into. */
export const CONF_BUFFER = 4096;

export interface Directive {
  name: string;
  args: string[];
  /** 1-based line of the directive's name. */
  line: number;
  /** Present for `name args { ... }`. */
  block?: Directive[];
}

/** One word of a directive, unescaped, with the 1-based line it starts on. */
export interface Word {
  value: string;
  line: number;
}

/** How one directive's words ended: ";", "{", a "}" where a directive would start, or the text. */
export type TokenEnd = 'ok' | 'blockStart' | 'blockDone' | 'end';

export type SyntaxProblem =
  /** The text ends inside a directive: in a quote, in a word, or after words without ";" or "{". */
  | { kind: 'end'; quote: 'double' | 'single' | null; startLine: number; first: string | null; excerpt: string }
  /** A token of CONF_BUFFER bytes or more; `excerpt`: its first 10 bytes, as nginx shows them. */
  | { kind: 'tooLong'; quote: 'double' | 'single' | null; excerpt: string }
  /** Something other than whitespace, ";", "{" or ")" right after a closing quote. */
  | { kind: 'afterQuote'; char: string }
  /** ";" or "{" where a directive name should be. */
  | { kind: 'noName'; char: ';' | '{' }
  /** "}" after the words of a directive that ";" did not end. */
  | { kind: 'unended'; name: string }
  /** (parseNginx) the text ends inside a block. */
  | { kind: 'unclosedBlock' }
  /** (parseNginx) a "}" at the top of the text. */
  | { kind: 'unopenedClose' };

export class NginxSyntaxError extends Error {
  readonly line: number;
  readonly problem: SyntaxProblem;
  constructor(problem: SyntaxProblem, line: number) {
    super(`${nginxWording(problem)} at line ${line}`);
    this.name = 'NginxSyntaxError';
    this.line = line;
    this.problem = problem;
  }
}

/** What nginx says (ngx_conf_read_token's and ngx_conf_parse's messages). */
function nginxWording(p: SyntaxProblem): string {
  switch (p.kind) {
    case 'end':
      return 'unexpected end of file, expecting ";" or "}"';
    case 'tooLong':
      return p.quote
        ? `too long parameter, probably missing terminating "${p.quote === 'double' ? '"' : "'"}" character`
        : `too long parameter "${p.excerpt}..." started`;
    case 'afterQuote':
    case 'noName':
      return `unexpected "${p.char}"`;
    case 'unended':
    case 'unopenedClose':
      return 'unexpected "}"';
    case 'unclosedBlock':
      return 'unexpected end of file, expecting "}"';
  }
}

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const SEMI = 0x3b;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const HASH = 0x23;
const BACKSLASH = 0x5c;
const DQUOTE = 0x22;
const SQUOTE = 0x27;
const DOLLAR = 0x24;
const RPAREN = 0x29;

const isSpace = (c: number) => c === SPACE || c === TAB || c === CR || c === LF;

export interface TokenizerOptions {
  /**
   * Refuse tokens of CONF_BUFFER bytes or more, as nginx does (default true). The snippet reader
   * turns it off: it renders every token again, quoted, and checks the rendered length itself,
   * and the comments it drops never reach nginx.
   */
  tokenLimit?: boolean;
}

export class Tokenizer {
  readonly #buf: Uint8Array;
  readonly #tokenLimit: boolean;
  #pos = 0;
  #line = 1;

  constructor(text: string, opts: TokenizerOptions = {}) {
    this.#buf = new TextEncoder().encode(text);
    this.#tokenLimit = opts.tokenLimit ?? true;
  }

  /** The 1-based line the tokenizer is on. */
  get line(): number {
    return this.#line;
  }

  /** One call of ngx_conf_read_token: collects the words of one directive into `words`. */
  readToken(words: Word[]): TokenEnd {
    const buf = this.#buf;
    let start = this.#pos;
    let startLine = this.#line;
    let lastSpace = true;
    let needSpace = false;
    let sharpComment = false;
    let quoted = false;
    let sQuoted = false;
    let dQuoted = false;
    let variable = false;
    const quote = () => (dQuoted ? 'double' : sQuoted ? 'single' : null);

    for (;;) {
      if (this.#pos >= buf.length) {
        if (words.length > 0 || !lastSpace) {
          throw this.#error(
            {
              kind: 'end',
              quote: quote(),
              startLine,
              first: words[0]?.value ?? null,
              excerpt: this.#excerpt(start, 32),
            },
            this.#line,
          );
        }
        return 'end';
      }
      // nginx moves the current token to the front of its 4096-byte buffer before reading on;
      // a token that fills the whole buffer is refused.
      if (this.#tokenLimit && this.#pos - start >= CONF_BUFFER) {
        this.#line = startLine;
        throw this.#error(
          { kind: 'tooLong', quote: quote(), excerpt: decode(buf.subarray(start, start + 10)) },
          startLine,
        );
      }

      const ch = buf[this.#pos++]!;

      if (ch === LF) {
        this.#line++;
        if (sharpComment) sharpComment = false;
      }
      if (sharpComment) continue;
      if (quoted) {
        quoted = false;
        continue;
      }

      if (needSpace) {
        if (isSpace(ch)) {
          lastSpace = true;
          needSpace = false;
          continue;
        }
        if (ch === SEMI) return 'ok';
        if (ch === LBRACE) return 'blockStart';
        if (ch === RPAREN) {
          lastSpace = true;
          needSpace = false;
        } else {
          throw this.#error({ kind: 'afterQuote', char: this.#excerpt(this.#pos - 1, 1) }, this.#line);
        }
      }

      if (lastSpace) {
        start = this.#pos - 1;
        startLine = this.#line;
        if (isSpace(ch)) continue;
        switch (ch) {
          case SEMI:
          case LBRACE:
            if (words.length === 0) throw this.#error({ kind: 'noName', char: ch === SEMI ? ';' : '{' }, this.#line);
            return ch === LBRACE ? 'blockStart' : 'ok';
          case RBRACE:
            if (words.length !== 0) throw this.#error({ kind: 'unended', name: words[0]!.value }, this.#line);
            return 'blockDone';
          case HASH:
            sharpComment = true;
            continue;
          case BACKSLASH:
            quoted = true;
            lastSpace = false;
            continue;
          case DQUOTE:
            start++;
            dQuoted = true;
            lastSpace = false;
            continue;
          case SQUOTE:
            start++;
            sQuoted = true;
            lastSpace = false;
            continue;
          case DOLLAR:
            variable = true;
            lastSpace = false;
            continue;
          default:
            lastSpace = false;
        }
      } else {
        if (ch === LBRACE && variable) continue;
        variable = false;
        if (ch === BACKSLASH) {
          quoted = true;
          continue;
        }
        if (ch === DOLLAR) {
          variable = true;
          continue;
        }
        let found = false;
        if (dQuoted) {
          if (ch === DQUOTE) {
            dQuoted = false;
            needSpace = true;
            found = true;
          }
        } else if (sQuoted) {
          if (ch === SQUOTE) {
            sQuoted = false;
            needSpace = true;
            found = true;
          }
        } else if (isSpace(ch) || ch === SEMI || ch === LBRACE) {
          lastSpace = true;
          found = true;
        }
        if (found) {
          words.push({ value: unescape(buf.subarray(start, this.#pos - 1)), line: startLine });
          if (ch === SEMI) return 'ok';
          if (ch === LBRACE) return 'blockStart';
        }
      }
    }
  }

  #error(problem: SyntaxProblem, line: number): NginxSyntaxError {
    return new NginxSyntaxError(problem, line);
  }

  /**
   * Up to `units` UTF-16 code units of the text from byte `offset` (a character boundary: every
   * offset passed here follows an ASCII byte or starts the text). 4 bytes per unit always cover them.
   */
  #excerpt(offset: number, units: number): string {
    return decode(this.#buf.subarray(offset, offset + 4 * units)).slice(0, units);
  }
}

/** The copy loop of ngx_conf_read_token: the only unescaping nginx does, quoted or not. */
function unescape(raw: Uint8Array): string {
  // Most words have no backslash: decode them whole.
  if (!raw.includes(BACKSLASH)) return decode(raw);
  const out: number[] = [];
  for (let i = 0; i < raw.length;) {
    const c = raw[i]!;
    if (c === BACKSLASH && i + 1 < raw.length) {
      const next = raw[i + 1]!;
      if (next === DQUOTE || next === SQUOTE || next === BACKSLASH) {
        out.push(next);
        i += 2;
        continue;
      }
      const control = next === 0x74 ? TAB : next === 0x72 ? CR : next === 0x6e ? LF : -1;
      if (control >= 0) {
        out.push(control);
        i += 2;
        continue;
      }
    }
    out.push(c);
    i++;
  }
  return decode(Uint8Array.from(out));
}

// ignoreBOM: nginx keeps the bytes EF BB BF like any others; a decoder must not drop them from a token.
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** ngx_conf_parse over one file's text (as an included file: no top-level "}"). */
export function parseNginx(text: string): Directive[] {
  const reader = new Tokenizer(text);
  const parse = (depth: number): Directive[] => {
    const out: Directive[] = [];
    for (;;) {
      const words: Word[] = [];
      const end = reader.readToken(words);
      if (end === 'end') {
        if (depth > 0) throw new NginxSyntaxError({ kind: 'unclosedBlock' }, reader.line);
        return out;
      }
      if (end === 'blockDone') {
        if (depth === 0) throw new NginxSyntaxError({ kind: 'unopenedClose' }, reader.line);
        return out;
      }
      const [name, ...args] = words;
      if (!name) throw new Error('empty directive'); // unreachable: readToken refuses it
      const d: Directive = { name: name.value, args: args.map((a) => a.value), line: name.line };
      if (end === 'blockStart') d.block = parse(depth + 1);
      out.push(d);
    }
  };
  return parse(0);
}

/** Every directive with the names of the blocks around it, outermost first, depth first. */
export function* walk(directives: Directive[], context: string[] = []): Generator<{ d: Directive; context: string[] }> {
  for (const d of directives) {
    yield { d, context };
    if (d.block) yield* walk(d.block, [...context, d.name]);
  }
}
