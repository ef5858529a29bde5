// A reader for nginx configuration text that splits it the way nginx itself does
// (ngx_conf_read_token and ngx_conf_parse in src/core/ngx_conf_file.c), so that tests can see
// exactly which directives, arguments and blocks nginx would find in a rendered file.
//
// It works on UTF-8 bytes, as nginx does, and follows nginx's rules rather than intuition:
// - a word ends at whitespace, ";" or "{"; "}" and "#" are special only where a token starts
//   ("a}" and "a#b" are ordinary words);
// - "\" makes the next byte ordinary anywhere (also in unquoted words and before a quote);
// - in every word, "\"", "\'" and "\\" lose their backslash and "\t", "\r", "\n" become control
//   characters; any other "\x" stays as it is;
// - after "$", a "{" does not end a word ("${name}");
// - a closing quote must be followed by whitespace, ";", "{" or ")";
// - a token (a comment from its "#") of 4096 bytes or more is "too long" (NGX_CONF_BUFFER);
// - a "}" may not close anything at the top of a file, and a file may not end inside a block.
// Syntax nginx refuses throws NginxSyntaxError with nginx's own wording and the line.

export interface Directive {
  name: string;
  args: string[];
  /** 1-based line of the directive's name. */
  line: number;
  /** Present for `name args { ... }`. */
  block?: Directive[];
}

export class NginxSyntaxError extends Error {
  readonly line: number;
  constructor(message: string, line: number) {
    super(`${message} at line ${line}`);
    this.line = line;
  }
}

/** NGX_CONF_BUFFER: nginx's read buffer, which one token must fit into. */
const CONF_BUFFER = 4096;

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

type Outcome = 'ok' | 'blockStart' | 'blockDone' | 'fileDone';

interface Word {
  value: string;
  line: number;
}

class Reader {
  private readonly buf: Uint8Array;
  private pos = 0;
  private line = 1;

  constructor(text: string) {
    this.buf = new TextEncoder().encode(text);
  }

  /** One call of ngx_conf_read_token: collects the words of one directive into `args`. */
  readToken(args: Word[]): Outcome {
    const buf = this.buf;
    let start = this.pos;
    let startLine = this.line;
    let lastSpace = true;
    let needSpace = false;
    let sharpComment = false;
    let quoted = false;
    let sQuoted = false;
    let dQuoted = false;
    let variable = false;

    for (;;) {
      if (this.pos >= buf.length) {
        if (args.length > 0 || !lastSpace) throw this.error('unexpected end of file, expecting ";" or "}"');
        return 'fileDone';
      }
      // nginx moves the current token to the front of its 4096-byte buffer before reading on;
      // a token that fills the whole buffer is refused.
      if (this.pos - start >= CONF_BUFFER) {
        this.line = startLine;
        if (dQuoted || sQuoted) {
          throw this.error(`too long parameter, probably missing terminating "${dQuoted ? '"' : "'"}" character`);
        }
        throw this.error(`too long parameter "${decode(buf.subarray(start, start + 10))}..." started`);
      }

      const ch = buf[this.pos++]!;

      if (ch === LF) {
        this.line++;
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
          throw this.error(`unexpected "${String.fromCharCode(ch)}"`);
        }
      }

      if (lastSpace) {
        start = this.pos - 1;
        startLine = this.line;
        if (isSpace(ch)) continue;
        switch (ch) {
          case SEMI:
          case LBRACE:
            if (args.length === 0) throw this.error(`unexpected "${String.fromCharCode(ch)}"`);
            return ch === LBRACE ? 'blockStart' : 'ok';
          case RBRACE:
            if (args.length !== 0) throw this.error('unexpected "}"');
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
          args.push({ value: unescape(buf.subarray(start, this.pos - 1)), line: startLine });
          if (ch === SEMI) return 'ok';
          if (ch === LBRACE) return 'blockStart';
        }
      }
    }
  }

  error(message: string): NginxSyntaxError {
    return new NginxSyntaxError(message, this.line);
  }
}

/** The copy loop of ngx_conf_read_token: the only unescaping nginx does, quoted or not. */
function unescape(raw: Uint8Array): string {
  const out: number[] = [];
  for (let i = 0; i < raw.length; ) {
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
function decode(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(bytes);
}

/** ngx_conf_parse over one file's text (as an included file: no top-level "}"). */
export function parseNginx(text: string): Directive[] {
  const reader = new Reader(text);
  const parse = (depth: number): Directive[] => {
    const out: Directive[] = [];
    for (;;) {
      const words: Word[] = [];
      const outcome = reader.readToken(words);
      if (outcome === 'fileDone') {
        if (depth > 0) throw reader.error('unexpected end of file, expecting "}"');
        return out;
      }
      if (outcome === 'blockDone') {
        if (depth === 0) throw reader.error('unexpected "}"');
        return out;
      }
      const [name, ...args] = words;
      if (!name) throw reader.error('empty directive'); // unreachable: readToken refuses it
      const d: Directive = { name: name.value, args: args.map((a) => a.value), line: name.line };
      if (outcome === 'blockStart') d.block = parse(depth + 1);
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
