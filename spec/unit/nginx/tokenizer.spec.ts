// src/nginx/tokenizer.ts, the one port of nginx's tokenizer: the snippet annotations are read with
// it, and the hostile and grammar specs read every rendered file back with it.
import { deepStrictEqual, throws } from 'node:assert/strict';
import { NginxSyntaxError, parseNginx, Tokenizer, walk, type Word } from '../../../src/nginx/tokenizer.ts';

describe('nginx tokenizer reads text as ngx_conf_read_token does', () => {
  const names = (text: string) => parseNginx(text).map((d) => [d.name, ...d.args]);

  it('keeps ";" "{" "}" "#" inside quotes, and ends a word only at whitespace, ";" or "{"', () => {
    deepStrictEqual(names('a "b;c" \'d{e}\' "#f";'), [['a', 'b;c', 'd{e}', '#f']]);
    deepStrictEqual(names('a b}c b#c;'), [['a', 'b}c', 'b#c']]);
    deepStrictEqual(names('a b;c d;'), [
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });

  it('starts a comment only where a token starts, and ends it at LF only', () => {
    deepStrictEqual(names('a #b; c\r d;\ne;'), [['a', 'e']]);
    deepStrictEqual(names('# a { b;\na;'), [['a']]);
  });

  it('unescapes \\" \\\' \\\\ \\t \\r \\n in every word and keeps other backslashes', () => {
    deepStrictEqual(names(String.raw`a "b\"c" 'd\'e' f\\g "h\ti\q";`), [['a', 'b"c', "d'e", 'f\\g', 'h\ti\\q']]);
    deepStrictEqual(names(String.raw`a b\;c d\ e;`), [['a', 'b\\;c', 'd\\ e']]);
    deepStrictEqual(names(String.raw`a \"b;`), [['a', '"b']]);
  });

  it('does not end a word at "{" right after "$"', () => {
    const [d] = parseNginx('a ${b}{ c; }');
    deepStrictEqual([d?.name, d?.args, d?.block?.map((x) => x.name)], ['a', ['${b}'], ['c']]);
    deepStrictEqual(names('a "${b" ${c;'), [['a', '${b', '${c']]);
  });

  it('builds nested blocks with the line of each directive', () => {
    const tree = parseNginx(
      'server {\n  location = /x {\n    return 404;\n  }\n}\nupstream u { server 10.0.0.1:80; }\n',
    );
    deepStrictEqual(
      [...walk(tree)].map(({ d, context }) => `${context.join('>')}|${d.name} ${d.args.join(' ')}@${d.line}`),
      [
        '|server @1',
        'server|location = /x@2',
        'server>location|return 404@3',
        '|upstream u@6',
        'upstream|server 10.0.0.1:80@6',
      ],
    );
  });

  it('refuses what nginx refuses', () => {
    for (const bad of ['a "b"c;', '"a"#b;', 'a "b', 'a b', '}', 'a { b;', 'a }', ';', '{ }', 'a b }', "a 'b\\'"]) {
      throws(() => parseNginx(bad), NginxSyntaxError, JSON.stringify(bad));
    }
    deepStrictEqual(names('if ($a = "b") { }'), [['if', '($a', '=', 'b', ')']]);
  });

  it('refuses tokens and comments of 4096 bytes or more, counted in UTF-8', () => {
    const x = (n: number) => 'x'.repeat(n);
    deepStrictEqual(names(`a ${x(4095)};`)[0]?.[1]?.length, 4095);
    throws(() => parseNginx(`a ${x(4096)};`), /too long parameter/);
    // Counted from after the opening quote up to the byte after the closing one, as nginx does.
    deepStrictEqual(names(`a "${x(4094)}";`)[0]?.[1]?.length, 4094);
    throws(() => parseNginx(`a "${x(4095)}";`), /too long parameter "xxxxxxxxxx\.\.\." started/);
    throws(() => parseNginx(`a "${x(4096)}";`), /too long parameter, probably missing terminating """ character/);
    deepStrictEqual(names(`#${x(4094)}\na;`), [['a']]);
    throws(() => parseNginx(`#${x(4095)}\na;`), /too long parameter "#/);
    throws(() => parseNginx(`a ${'é'.repeat(2048)};`), /too long parameter/);
  });

  it('says what it refused as data, for callers that word it their own way (the snippet reader)', () => {
    const problem = (text: string) => {
      try {
        parseNginx(text);
      } catch (err) {
        if (err instanceof NginxSyntaxError) return { ...err.problem, line: err.line };
        throw err;
      }
      throw new Error(`no error for ${JSON.stringify(text)}`);
    };
    deepStrictEqual(problem('a\n"b'), {
      kind: 'end',
      quote: 'double',
      startLine: 2,
      first: 'a',
      excerpt: 'b',
      line: 2,
    });
    deepStrictEqual(problem('abc dé'), {
      kind: 'end',
      quote: null,
      startLine: 1,
      first: 'abc',
      excerpt: 'dé',
      line: 1,
    });
    deepStrictEqual(problem('é'.repeat(40)), {
      kind: 'end',
      quote: null,
      startLine: 1,
      first: null,
      excerpt: 'é'.repeat(32),
      line: 1,
    });
    deepStrictEqual(problem('a "b"é;'), { kind: 'afterQuote', char: 'é', line: 1 });
    deepStrictEqual(problem('\n;'), { kind: 'noName', char: ';', line: 2 });
    deepStrictEqual(problem('a b\n}'), { kind: 'unended', name: 'a', line: 2 });
    deepStrictEqual(problem('a {'), { kind: 'unclosedBlock', line: 1 });
    deepStrictEqual(problem('}'), { kind: 'unopenedClose', line: 1 });
  });

  it('reads tokens of any length when told not to limit them, and keeps UTF-8 and a BOM as they are', () => {
    const t = new Tokenizer(`a ${'x'.repeat(5000)}; # ${'y'.repeat(5000)}\n`, { tokenLimit: false });
    const words: Word[] = [];
    deepStrictEqual([t.readToken(words), words.map((w) => w.value.length)], ['ok', [1, 5000]]);
    deepStrictEqual(t.readToken([]), 'end');
    deepStrictEqual(names('\uFEFFa "é\\"ü" \uFEFF;'), [['\uFEFFa', 'é"ü', '\uFEFF']]);
  });
});
