// Snippet annotations (src/annotations/snippets.ts): read as nginx reads them, refused when they could escape
// their block or reach files and code, and rendered token by token through nginxValue.
//
// Rendering here is exactly render.ts's: Mustache with `{ escape: nginxValue }` and
// SNIPPET_PARTIAL as a standalone partial. Every accepted snippet is re-read from the rendered
// text with parseNginx (src/nginx/tokenizer.ts), which must find the same directives inside the
// same block; real nginx (`nginx -t`, requests) is the independent check.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import Mustache from 'mustache';
import {
  MAX_SNIPPET_BYTES,
  SNIPPET_DIRECTIVES,
  SNIPPET_PARTIAL,
  parseSnippet,
  snippetLines,
  type SnippetContext,
  type SnippetDirective,
} from '../../src/annotations/snippets.ts';
import { InvalidValue } from '../../src/grammar.ts';
import { nginxValue } from '../../src/nginx/quote.ts';
import { freePort, httpGet, nginxBinary, startNginx, type RunningNginx } from '../helpers/nginx.ts';
import { parseNginx, type Directive } from '../../src/nginx/tokenizer.ts';

const SERVER_ANNOTATION = 'nginx.ingress.kubernetes.io/server-snippet';
const LOCATION_ANNOTATION = 'nginx.ingress.kubernetes.io/configuration-snippet';

/** The snippet as render.ts lays it out: a standalone partial inside the block it belongs to. */
const WRAPPERS: Record<SnippetContext, string> = {
  server: 'server {\n    listen 80;\n{{#snippet}}\n    {{> snippet}}\n{{/snippet}}\n}\n',
  location:
    'server {\n    location / {\n{{#snippet}}\n        {{> snippet}}\n{{/snippet}}\n        return 200;\n    }\n}\n',
};

function render(directives: SnippetDirective[], context: SnippetContext): string {
  return Mustache.render(
    WRAPPERS[context],
    { snippet: { lines: snippetLines(directives) } },
    { snippet: SNIPPET_PARTIAL },
    { escape: nginxValue },
  );
}

function tree(ds: Directive[]): SnippetDirective[] {
  return ds.map((d) => ({ name: d.name, args: d.args, block: d.block ? tree(d.block) : null }));
}

/** What nginx finds in the snippet's place in a rendered file. */
function reread(text: string, context: SnippetContext): SnippetDirective[] {
  const [server, ...others] = parseNginx(text);
  assert.equal(others.length, 0, `one server block in:\n${text}`);
  assert.equal(server?.name, 'server');
  const inServer = tree(server.block ?? []);
  if (context === 'server') {
    assert.deepEqual(inServer[0], { name: 'listen', args: ['80'], block: null });
    return inServer.slice(1);
  }
  assert.equal(inServer.length, 1, `one location in:\n${text}`);
  const location = inServer[0]!;
  assert.deepEqual([location.name, location.args], ['location', ['/']]);
  const inLocation = location.block ?? [];
  assert.deepEqual(inLocation.at(-1), { name: 'return', args: ['200'], block: null });
  return inLocation.slice(0, -1);
}

/** Parses, renders and re-reads: nginx must see exactly the parsed directives. */
function roundTrip(text: string, context: SnippetContext = 'location'): SnippetDirective[] {
  const parsed = parseSnippet(context === 'server' ? SERVER_ANNOTATION : LOCATION_ANNOTATION, text, context);
  const rendered = render(parsed, context);
  assert.deepEqual(reread(rendered, context), parsed, `rendered:\n${rendered}`);
  return parsed;
}

function refused(text: string, context: SnippetContext, ...patterns: RegExp[]): InvalidValue {
  let caught: unknown;
  try {
    parseSnippet(LOCATION_ANNOTATION, text, context);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof InvalidValue, `expected InvalidValue for ${JSON.stringify(text)}, got ${String(caught)}`);
  assert.match(caught.message, /^annotation nginx\.ingress\.kubernetes\.io\/configuration-snippet: /);
  for (const p of patterns) assert.match(caught.message, p, JSON.stringify(text));
  return caught;
}

const d = (name: string, args: string[], block: SnippetDirective[] | null = null): SnippetDirective => ({
  name,
  args,
  block,
});

describe('snippets: reading as nginx does', () => {
  it('reads directives, arguments and blocks', () => {
    assert.deepEqual(roundTrip('add_header X-Frame-Options DENY always;\nexpires 1h;'), [
      d('add_header', ['X-Frame-Options', 'DENY', 'always']),
      d('expires', ['1h']),
    ]);
    assert.deepEqual(
      roundTrip('location = /ping {\n  if ($request_method = POST) { return 405; }\n  return 200 pong;\n}', 'server'),
      [
        d(
          'location',
          ['=', '/ping'],
          [d('if', ['($request_method', '=', 'POST)'], [d('return', ['405'])]), d('return', ['200', 'pong'])],
        ),
      ],
    );
    assert.deepEqual(roundTrip(''), []);
    assert.deepEqual(roundTrip('  \n# only a comment\n\t\r\n'), []);
  });

  it('unquotes single and double quotes and backslash escapes exactly like ngx_conf_read_token', () => {
    assert.deepEqual(roundTrip(`add_header 'X-A' "a b" always;`), [d('add_header', ['X-A', 'a b', 'always'])]);
    assert.deepEqual(roundTrip(`add_header X "say \\"hi\\"" 'it\\'s';`), [d('add_header', ['X', 'say "hi"', "it's"])]);
    // "\\" loses one backslash; any other "\x" keeps it, quoted or not.
    assert.deepEqual(roundTrip(String.raw`rewrite ^/a\.b(\d+)$ "/c\\d$1" break;`), [
      d('rewrite', ['^/a\\.b(\\d+)$', '/c\\d$1', 'break']),
    ]);
    // A backslash makes ";" ordinary in a bare word (and stays), and an escaped quote is no quote.
    assert.deepEqual(roundTrip(String.raw`add_header X a\;b;`), [d('add_header', ['X', 'a\\;b'])]);
    assert.deepEqual(roundTrip(String.raw`add_header X \"a;`), [d('add_header', ['X', '"a'])]);
    assert.deepEqual(roundTrip(`add_header X "";`), [d('add_header', ['X', ''])]);
  });

  it('treats "{" after "$" as part of the word, and "}" and "#" as special only where a word starts', () => {
    assert.deepEqual(roundTrip('set ${a}x ${b};'), [d('set', ['${a}x', '${b}'])]);
    // Only directly after "$": "$a{" opens a block.
    refused('add_header X $a{b}c;', 'location', /add_header: may not open a block/);
    assert.deepEqual(roundTrip('add_header X a}b#c;'), [d('add_header', ['X', 'a}b#c'])]);
    assert.deepEqual(roundTrip('add_header X a #comment;\n b;'), [d('add_header', ['X', 'a', 'b'])]);
    // A regex with braces must be quoted, as in nginx.
    assert.deepEqual(roundTrip('location ~ "^/a{2}$" { return 204; }', 'server'), [
      d('location', ['~', '^/a{2}$'], [d('return', ['204'])]),
    ]);
  });

  it('takes CR, LF and tabs as whitespace, and counts lines for messages', () => {
    assert.deepEqual(roundTrip('add_header\r\nX\t1;\r\nexpires\n\n1h;'), [
      d('add_header', ['X', '1']),
      d('expires', ['1h']),
    ]);
    refused('expires 1h;\r\n\r\n\nload_module x.so;', 'location', /line 4: load_module/);
  });

  // The same tokenizer reads both; this checks parseSnippet's blocks against parseNginx's file parse.
  it('builds the tree that parseNginx reads from the same text inside a location', () => {
    const texts = [
      'add_header X-A "a;b}c" always; # } hidden\n',
      `if ($http_x ~* "^(a|b){1,2}$") { set $v 'q"uote'; return 418; }`,
      'limit_except GET { deny all; }',
      'gzip on; gzip_types text/plain application/json; expires max;',
      `proxy_set_header X-Real "$remote_addr \\"'";`,
    ];
    for (const text of texts) {
      const ours = parseSnippet(LOCATION_ANNOTATION, text, 'location');
      assert.deepEqual(ours, tree(parseNginx(`server { location / {\n${text}\n} }`)[0]!.block![0]!.block!), text);
      roundTrip(text);
    }
  });
});

describe('snippets: refused', () => {
  it('refuses what nginx would refuse, with a reason', () => {
    refused('add_header X 1', 'location', /not ended by ";"/);
    refused('add_header X "1;', 'location', /unterminated double quote/);
    refused("add_header X '1;", 'location', /unterminated single quote/);
    refused('if ($a) { return 403;', 'location', /block is not closed/);
    refused('add_header X "a"b;', 'location', /after a closing quote/);
    refused('; expires 1h;', 'location', /unexpected ";"/);
    refused('{ }', 'location', /unexpected "\{"/);
    refused('expires 1h }', 'location', /unexpected "\}"/);
    refused('add_header X 1\\', 'location', /not ended/);
  });

  it('refuses a "}" that would close the surrounding block, however it is hidden', () => {
    refused('}', 'location', /may not close the location block/);
    refused(
      'return 200; } server { listen 8080; location / { return 200 pwned; }',
      'location',
      /may not close the location block/,
    );
    refused('return 200; }\nlocation /evil { alias /; }\nlocation /x {', 'server', /may not close the server block/);
    refused('if ($a) { return 403; } }', 'server', /may not close/);
    // A "#" comment runs to the end of the line only: the "}" on the next one is syntax.
    refused('add_header X 1; # comment\n}', 'location', /may not close/);
    // Inside a comment, a "}" is not.
    assert.deepEqual(roundTrip('add_header X 1; # }\n'), [d('add_header', ['X', '1'])]);
  });

  it('refuses names that are not directive names, oversized and deeply nested snippets', () => {
    refused('Add_Header X 1;', 'location', /"Add_Header" is not a directive name/);
    refused('"add header" X 1;', 'location', /is not a directive name/);
    refused('add-header X 1;', 'location', /is not a directive name/);
    refused('\u0001expires 1h;', 'location', /is not a directive name/);
    refused(`add_header X "${'a'.repeat(MAX_SNIPPET_BYTES)}";`, 'location', /bytes, more than the 16384 allowed/);
    refused(`add_header X "${'a'.repeat(5000)}";`, 'location', /too long/);
    refused(`${'a'.repeat(5000)} X;`, 'location', /too long/);
    const nest = (n: number): string => (n === 0 ? 'return 204;' : `location /${n} { ${nest(n - 1)} }`);
    roundTrip(nest(4), 'server');
    refused(nest(5), 'server', /nested deeper than 4 levels/);
  });

  it('refuses what configures the nginx process, loads code, or reads and writes files', () => {
    const cases: Array<[string, RegExp]> = [
      ['load_module /usr/lib/nginx/modules/ngx_evil.so;', /load_module: is not allowed.*nginx process/],
      ['include /etc/passwd;', /include: is not allowed.*other configuration files/],
      ['env SECRET;', /env: is not allowed/],
      ['worker_processes 64;', /worker_processes: is not allowed/],
      ['user root;', /user: is not allowed/],
      ['pid /tmp/x;', /pid: is not allowed/],
      ['error_log /tmp/x debug;', /error_log: is not allowed.*files/],
      ['content_by_lua_block { ngx.say(1) }', /content_by_lua_block: is not allowed.*code/],
      ['access_by_lua_file /tmp/x.lua;', /is not allowed.*code/],
      ['lua_package_path "/tmp/?.lua";', /is not allowed.*code/],
      ['perl Evil::handler;', /perl: is not allowed.*code/],
      ['js_content main.handler;', /js_content: is not allowed.*code/],
      ['root /;', /root: is not allowed.*files/],
      ['alias ../;', /alias: is not allowed.*files/],
      ['try_files /$arg_p =404;', /try_files: is not allowed.*files/],
      ['index $arg_p;', /index: is not allowed.*files/],
      ['client_body_temp_path /tmp;', /is not allowed.*files/],
      ['proxy_cache_path /tmp keys_zone=x:1m;', /is not allowed.*files/],
      ['proxy_store on;', /proxy_store: is not allowed.*files/],
      [
        'auth_basic_user_file /etc/nginx/conf.d/ingress-sidecar-certs/other.htpasswd;',
        /auth_basic_user_file: is not allowed.*files/,
      ],
      ['ssl_certificate /etc/x.pem;', /is not allowed.*files/],
      ['proxy_ssl_certificate_key /etc/nginx/conf.d/ingress-sidecar-certs/other.pem;', /is not allowed.*files/],
      ['ssl_password_file /etc/x;', /is not allowed.*files/],
      ['dav_methods PUT;', /is not allowed.*files/],
      ['secure_link_secret s3cret;', /is not allowed/],
      ['access_log /tmp/steal.log;', /only "access_log off"/],
      ['access_log off main;', /only "access_log off"/],
      ['proxy_pass http://169.254.169.254/;', /proxy_pass: is not allowed.*proxies/],
      ['grpc_pass unix:/var/run/docker.sock;', /grpc_pass: is not allowed/],
      ['fastcgi_pass 127.0.0.1:9000;', /is not allowed/],
      ['server_name victim.example.com;', /server_name: is not allowed.*other hosts/],
      ['listen 10254;', /listen: is not allowed/],
    ];
    for (const [text, pattern] of cases) refused(text, 'server', pattern);
    for (const [text, pattern] of cases) refused(text, 'location', pattern);
    assert.deepEqual(roundTrip('access_log off;'), [d('access_log', ['off'])]);
  });

  it('refuses other server, upstream and top-level blocks, and blocks other than location, if and limit_except', () => {
    refused('server { listen 8080; }', 'server', /server: is not allowed/);
    refused('upstream u { server 10.0.0.1; }', 'server', /upstream: is not allowed/);
    for (const b of ['http', 'events', 'stream', 'mail', 'map $a $b', 'types'])
      refused(`${b} { }`, 'server', /is not allowed/);
    refused('add_header X 1 { }', 'location', /may not open a block/);
    refused('if ($a);', 'location', /needs a block/);
    refused('location /x;', 'server', /needs a block/);
  });

  it('allows location only in server-snippet, if directly in a server or location, limit_except in a location', () => {
    refused('location /x { return 204; }', 'location', /location: is allowed in server-snippet only/);
    roundTrip('location /x { location /x/y { return 204; } }', 'server');
    refused('if ($a) { location /x { } }', 'server', /location: may not be inside if/);
    refused('if ($a) { if ($b) { return 403; } }', 'location', /if: may not be inside if/);
    refused('limit_except GET { deny all; }', 'server', /limit_except: is allowed only in a location/);
    roundTrip('limit_except GET { deny all; }', 'location');
    roundTrip('location /x { limit_except GET { deny all; } }', 'server');
  });

  it('refuses control characters, ".." segments, file tests and the sidecar\'s own variables in arguments', () => {
    refused('add_header X "a\nb";', 'location', /contains a control character/);
    refused('add_header X "a\rSet-Cookie: x";', 'location', /contains a control character/);
    refused(String.raw`add_header X a\r\nSet-Cookie:x;`, 'location', /contains a control character/);
    refused(String.raw`add_header X "a\tb";`, 'location', /contains a control character/);
    refused('add_header X a\u0000b;', 'location', /contains a control character/);
    refused('add_header X a\u007fb;', 'location', /contains a control character/);
    refused('add_header X "\ud800";', 'location', /well-formed Unicode/);
    refused('rewrite ^ /../../etc/passwd break;', 'location', /contains a "\.\." path segment/);
    refused('rewrite ^ .. break;', 'location', /"\.\." path segment/);
    refused('return 302 /a/..;', 'location', /"\.\." path segment/);
    roundTrip('rewrite ^/a..b$ /c...d break;');
    refused('if (-f /etc/passwd) { return 200; }', 'location', /if: may not test files/);
    refused('if (!-e $request_filename) { return 404; }', 'location', /may not test files/);
    refused('set $ingress_sidecar_namespace kube-system;', 'location', /the sidecar's own variables/);
    refused('set ${isc_cors_origin} x;', 'location', /the sidecar's own variables/);
    refused('if ($uri ~ "(?<ingress_sidecar_host>.*)") { return 204; }', 'location', /the sidecar's own variables/);
    refused('if ($uri ~ "(?\'isc_x\'.*)") { return 204; }', 'location', /the sidecar's own variables/);
    refused('limit_req zone=isc_0123 burst=5;', 'location', /limit_req: is not allowed in a snippet: it needs a zone/);
    refused('limit_rate_after zone=isc_0123;', 'location', /the sidecar's own variables or zones/);
    roundTrip('add_header X-Disc $disc_x;');
  });
});

describe('snippets: by allowlist', () => {
  it('refuses every directive not on the list by name, and says which are allowed', () => {
    // nginx 1.30 opens the file named by quic_host_key while checking the configuration.
    for (const text of [
      'quic_host_key /etc/shadow;',
      'ssl_stapling on;',
      'mirror /_isc/mirror/x;',
      'error_page 404 /_isc/x;',
      'auth_request /x;',
      'sub_filter a b;',
      'resolver 10.0.0.1;',
      'proxy_cache zone;',
      'autoindex on;',
      'x_new_directive_of_2030 1;',
    ]) {
      for (const context of ['server', 'location'] as const) {
        const name = text.split(' ')[0]!;
        refused(
          text,
          context,
          new RegExp(
            `^annotation [^:]+: line 1: ${name}: is not allowed in a snippet.*; a snippet may use only these directives \\(headers: add_header, .*proxy_set_header.*rewrites: rewrite, return, if, set, break`,
          ),
        );
      }
    }
    refused(
      'quic_host_key /etc/shadow;',
      'server',
      /_key: is not allowed in a snippet: it reads or writes files on the nginx host/,
    );
  });

  it('keeps what snippets are used for: headers, proxy settings, rewrites, return, gzip, body size, access rules', () => {
    const location = [
      'add_header X-Frame-Options SAMEORIGIN always;',
      'proxy_set_header X-Real-Scheme $scheme;',
      'proxy_hide_header X-Powered-By;',
      'proxy_read_timeout 120s; proxy_send_timeout 120s; proxy_connect_timeout 5s;',
      'proxy_buffering on; proxy_buffer_size 8k; proxy_buffers 8 8k; proxy_busy_buffers_size 16k;',
      'proxy_http_version 1.1; proxy_redirect off; proxy_intercept_errors on;',
      'proxy_cookie_path / "/; HttpOnly"; proxy_cookie_domain ~^(.+)$ example.com;',
      'rewrite ^/old/(.*)$ /new/$1 break;',
      'set $tenant_flag 1;',
      'if ($http_user_agent ~* bot) { return 403; }',
      'if ($arg_gz) { gzip on; add_header X-Gz 1; }',
      'gzip on; gzip_types text/plain application/json; gzip_min_length 1000;',
      'expires 1h; client_max_body_size 10m;',
      'allow 10.0.0.0/8; deny all;',
      'limit_except GET HEAD { deny all; }',
    ].join('\n');
    assert.equal(roundTrip(location, 'location').length > 20, true);
    roundTrip(
      'location = /health { internal; return 204; }\nlocation /docs { rewrite ^ /docs/index.html break; }\nif ($host = old.example) { return 301 https://new.example$request_uri; }',
      'server',
    );
  });

  it('refuses in each block what nginx refuses there', () => {
    refused(
      'if ($a) { proxy_set_header X 1; }',
      'location',
      /proxy_set_header: is not allowed inside if \(nginx allows there only return, rewrite, set, break, add_header/,
    );
    refused(
      'if ($a) { add_header X 1; }',
      'server',
      /add_header: is not allowed inside if \(nginx allows there only return, rewrite, set, break\)/,
    );
    roundTrip('location /x { if ($a) { add_header X 1; } }', 'server');
    refused(
      'limit_except GET { return 403; }',
      'location',
      /return: is not allowed inside limit_except \(nginx allows there only allow, deny\)/,
    );
    refused('internal;', 'server', /internal: is allowed only in a location/);
  });

  it("compares the sidecar's variable names as nginx does: case-insensitively", () => {
    refused('set $INGRESS_SIDECAR_NAMESPACE kube-system;', 'location', /the sidecar's own variables/);
    refused('set $Ingress_Sidecar_Service admin;', 'server', /the sidecar's own variables/);
    refused('add_header X ${ISC_cors_origin};', 'location', /the sidecar's own variables/);
    refused('if ($uri ~ "(?<INGRESS_SIDECAR_host>.*)") { return 204; }', 'location', /the sidecar's own variables/);
  });
});

describe('snippets: the partial', () => {
  it('has no unescaped interpolation or delimiter change, as render.ts requires of templates', () => {
    assert.doesNotMatch(SNIPPET_PARTIAL, /\{\{\s*[{&=]/);
  });

  it('lays out terminal, open and close lines, indented four spaces a level under the tag', () => {
    const parsed = parseSnippet(
      SERVER_ANNOTATION,
      'location /a { if ($x) { return 403; } expires 1h; }\nadd_header X "a b";',
      'server',
    );
    assert.equal(
      render(parsed, 'server'),
      [
        'server {',
        '    listen 80;',
        '    location /a {',
        '        if "($x)" {',
        '            return 403;',
        '        }',
        '        expires 1h;',
        '    }',
        '    add_header X "a b";',
        '}',
        '',
      ].join('\n'),
    );
    assert.equal(render([], 'server'), 'server {\n    listen 80;\n}\n');
  });
});

describe('snippets: hostile text is refused or becomes data', () => {
  it('quotes ";", "{", "}", "#", quotes and backslashes in arguments, so nginx reads them as one argument', () => {
    const hostile = [
      `add_header X "}; server { listen 8080; location / { root /; } }" always;`,
      `add_header X '"; include /etc/passwd; "' always;`,
      String.raw`add_header X "a\\" b;`,
      String.raw`add_header X "\\\\"; return 200 "\\";`,
      `add_header X "#}" always;`,
      `add_header X '#' ';' '{' '}' "'" '"';`,
      'add_header X a${b}c;',
      'add_header X "${a}}" always;',
      `add_header X "é ✓ 🎉";`,
    ];
    for (const text of hostile) {
      const parsed = roundTrip(text);
      // The whole snippet stays the one add_header (and, once, a return) it was.
      assert.ok(
        parsed.every((p) => p.name === 'add_header' || p.name === 'return') && parsed.every((p) => p.block === null),
        text,
      );
    }
    const [header] = roundTrip(`add_header X "}; server { listen 8080; }" always;`);
    assert.deepEqual(header, d('add_header', ['X', '}; server { listen 8080; }', 'always']));
    assert.match(render([header!], 'location'), /add_header X "\}; server \{ listen 8080; \}" always;/);
  });

  it('never lets any accepted text render into something nginx reads differently (random snippets)', () => {
    const pieces = [
      'add_header',
      'return',
      'set',
      'if',
      'location',
      'limit_except',
      'x',
      'a_b',
      '$v',
      '${v}',
      '200',
      '/p',
      '=',
      '~',
      ' ',
      ' ',
      ' ',
      '\t',
      '\n',
      '\r\n',
      ';',
      ';',
      '{',
      '}',
      '"',
      "'",
      '\\',
      '#',
      '(',
      ')',
      '..',
      'é',
      '-f',
      '\\n',
      '\\"',
    ];
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      const text = Array.from({ length: 1 + random(24) }, () => pieces[random(pieces.length)]!).join('');
      for (const context of ['server', 'location'] as const) {
        let parsed: SnippetDirective[];
        try {
          parsed = parseSnippet(SERVER_ANNOTATION, text, context);
        } catch (err) {
          if (err instanceof InvalidValue) continue;
          throw err;
        }
        accepted++;
        // What nginx would read from the raw text in place is what was parsed...
        const wrapped =
          context === 'server'
            ? `server {\nlisten 80;\n${text}\n}`
            : `server { location / {\n${text}\nreturn 200;\n} }`;
        assert.deepEqual(reread(wrapped, context), parsed, JSON.stringify(text));
        // ...and what it reads from the rendered text.
        assert.deepEqual(reread(render(parsed, context), context), parsed, JSON.stringify(text));
      }
    }
    assert.ok(accepted > 200, `only ${accepted} random snippets were accepted: the generator needs tuning`);
  });
});

describe('snippets: real nginx', function () {
  let nginx: RunningNginx | null = null;
  let dir = '';

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'snippets-spec-'));
  });
  after(async () => {
    await nginx?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('nginx -t knows every directive on the list, in a server-snippet and in a configuration-snippet', async () => {
    const samples: Record<string, string> = {
      add_header: 'add_header X-A 1 always;',
      add_trailer: 'add_trailer X-T 1;',
      proxy_set_header: 'proxy_set_header X-B $host;',
      proxy_hide_header: 'proxy_hide_header X-Powered-By;',
      proxy_pass_header: 'proxy_pass_header Server;',
      proxy_ignore_headers: 'proxy_ignore_headers X-Accel-Expires;',
      grpc_set_header: 'grpc_set_header X-C 1;',
      grpc_hide_header: 'grpc_hide_header X-D;',
      expires: 'expires 1h;',
      etag: 'etag off;',
      if_modified_since: 'if_modified_since exact;',
      charset: 'charset utf-8;',
      default_type: 'default_type text/plain;',
      server_tokens: 'server_tokens off;',
      proxy_connect_timeout: 'proxy_connect_timeout 5s;',
      proxy_send_timeout: 'proxy_send_timeout 60s;',
      proxy_read_timeout: 'proxy_read_timeout 60s;',
      proxy_buffering: 'proxy_buffering on;',
      proxy_buffer_size: 'proxy_buffer_size 8k;',
      proxy_buffers: 'proxy_buffers 8 8k;',
      proxy_busy_buffers_size: 'proxy_busy_buffers_size 16k;',
      proxy_request_buffering: 'proxy_request_buffering off;',
      proxy_max_temp_file_size: 'proxy_max_temp_file_size 0;',
      proxy_http_version: 'proxy_http_version 1.1;',
      proxy_cookie_domain: 'proxy_cookie_domain off;',
      proxy_cookie_path: 'proxy_cookie_path / /app/;',
      proxy_cookie_flags: 'proxy_cookie_flags ~ secure;',
      proxy_redirect: 'proxy_redirect off;',
      proxy_intercept_errors: 'proxy_intercept_errors on;',
      proxy_next_upstream: 'proxy_next_upstream error timeout;',
      proxy_next_upstream_tries: 'proxy_next_upstream_tries 2;',
      proxy_next_upstream_timeout: 'proxy_next_upstream_timeout 10s;',
      proxy_pass_request_headers: 'proxy_pass_request_headers on;',
      proxy_pass_request_body: 'proxy_pass_request_body on;',
      proxy_ssl_server_name: 'proxy_ssl_server_name on;',
      proxy_ssl_name: 'proxy_ssl_name $host;',
      grpc_connect_timeout: 'grpc_connect_timeout 5s;',
      grpc_send_timeout: 'grpc_send_timeout 60s;',
      grpc_read_timeout: 'grpc_read_timeout 60s;',
      rewrite: 'rewrite ^/old/(.*)$ /new/$1 last;',
      return: 'if ($arg_r) { return 204; }',
      if: 'if ($http_x_block) { set $blocked 1; }',
      set: 'set $tenant 1;',
      break: 'if ($arg_b) { break; }',
      location: 'location = /snippet-location { return 204; }',
      internal: 'internal;',
      gzip: 'gzip on;',
      gzip_types: 'gzip_types application/json;',
      gzip_min_length: 'gzip_min_length 1000;',
      gzip_comp_level: 'gzip_comp_level 5;',
      gzip_proxied: 'gzip_proxied any;',
      gzip_vary: 'gzip_vary on;',
      gzip_disable: 'gzip_disable msie6;',
      gzip_http_version: 'gzip_http_version 1.1;',
      gzip_buffers: 'gzip_buffers 16 8k;',
      client_max_body_size: 'client_max_body_size 10m;',
      client_body_buffer_size: 'client_body_buffer_size 16k;',
      client_body_timeout: 'client_body_timeout 30s;',
      send_timeout: 'send_timeout 30s;',
      keepalive_timeout: 'keepalive_timeout 30s;',
      chunked_transfer_encoding: 'chunked_transfer_encoding on;',
      limit_rate: 'limit_rate 1m;',
      limit_rate_after: 'limit_rate_after 10m;',
      allow: 'allow 10.0.0.0/8;',
      deny: 'deny 192.0.2.1;',
      satisfy: 'satisfy any;',
      limit_except: 'limit_except GET { allow 10.0.0.0/8; deny all; }',
      access_log: 'access_log off;',
    };
    assert.deepEqual(Object.keys(samples).sort(), [...SNIPPET_DIRECTIVES].sort(), 'one sample per allowed directive');
    const locationOnly = new Set(['internal', 'limit_except', 'location']);
    const server = parseSnippet(
      SERVER_ANNOTATION,
      Object.entries(samples)
        .filter(([n]) => !locationOnly.has(n))
        .map(([, t]) => t)
        .join('\n') + '\nlocation = /snippet-location { return 204; }',
      'server',
    );
    const location = parseSnippet(
      LOCATION_ANNOTATION,
      Object.entries(samples)
        .filter(([n]) => n !== 'location')
        .map(([, t]) => t)
        .join('\n'),
      'location',
    );
    const text = Mustache.render(
      'server {\n    listen 127.0.0.1:1;\n    root /nonexistent/ingress-sidecar;\n{{#s}}\n    {{> snippet}}\n{{/s}}\n    location /x {\n{{#l}}\n        {{> snippet}}\n{{/l}}\n        return 200;\n    }\n}\n',
      { s: { lines: snippetLines(server) }, l: { lines: snippetLines(location) } },
      { snippet: SNIPPET_PARTIAL },
      { escape: nginxValue },
    );
    const confDir = path.join(dir, 'every-directive');
    await mkdir(confDir);
    await writeFile(path.join(confDir, 'every.conf'), text);
    const harness = path.join(dir, 'every-harness.conf');
    await writeFile(
      harness,
      `pid ${dir}/e.pid;\nerror_log stderr;\nevents {}\nhttp {\n    include ${confDir}/*.conf;\n}\n`,
    );
    const t = await execa(nginxBinary(), ['-t', '-p', dir + '/', '-e', 'stderr', '-c', harness], {
      reject: false,
      all: true,
      stdout: 'ignore',
    });
    assert.equal(t.exitCode, 0, `nginx -t:\n${t.all}\n${text}`);
  });

  it('nginx -t accepts a server with a server snippet and a location snippet, and requests see them', async () => {
    const port = await freePort();
    const serverSnippet = parseSnippet(
      SERVER_ANNOTATION,
      [
        'location = /from-server-snippet {',
        '    add_header X-Server-Snippet "yes; really }" always;',
        '    return 200 "server snippet";',
        '}',
        'location /files {',
        '    rewrite ^ /$arg_p break;  # a traversal the root below defeats',
        '}',
        'if ($http_x_block) { return 403; }',
      ].join('\r\n'),
      'server',
    );
    const locationSnippet = parseSnippet(
      LOCATION_ANNOTATION,
      `add_header X-Location-Snippet 'a "quoted" {value}' always;\nexpires 1h;\nif ($arg_teapot) { return 418; }\n`,
      'location',
    );
    const template = [
      'server {',
      '    listen 127.0.0.1:{{port}};',
      '    server_name snippets.test;',
      // What the server template must set for snippets: a root that does not exist.
      '    root /nonexistent/ingress-sidecar;',
      '{{#serverSnippet}}',
      '    {{> snippet}}',
      '{{/serverSnippet}}',
      '',
      '    location / {',
      '{{#configurationSnippet}}',
      '        {{> snippet}}',
      '{{/configurationSnippet}}',
      '        return 200 "location";',
      '    }',
      '}',
      '',
    ].join('\n');
    const text = Mustache.render(
      template,
      {
        port,
        serverSnippet: { lines: snippetLines(serverSnippet) },
        configurationSnippet: { lines: snippetLines(locationSnippet) },
      },
      { snippet: SNIPPET_PARTIAL },
      { escape: nginxValue },
    );
    const confDir = path.join(dir, 'conf.d');
    await mkdir(confDir);
    await writeFile(path.join(confDir, 'snippets.test.conf'), text);

    const harness = path.join(dir, 'harness.conf');
    await writeFile(
      harness,
      `pid ${dir}/t.pid;\nerror_log stderr;\nevents {}\nhttp {\n    include ${confDir}/*.conf;\n}\n`,
    );
    // The default access log: a build with its own prefix (nginx 1.30.4's) opens it under -p.
    await mkdir(path.join(dir, 'logs'), { recursive: true });
    const t = await execa(nginxBinary(), ['-t', '-p', dir + '/', '-e', 'stderr', '-c', harness], {
      reject: false,
      all: true,
      stdout: 'ignore',
    });
    assert.equal(t.exitCode, 0, `nginx -t:\n${t.all}\n${text}`);
    assert.doesNotMatch(t.all ?? '', /\[warn\]|\[emerg\]/, `${t.all}\n${text}`);

    nginx = await startNginx({ confDir });
    const plain = await httpGet(port, 'snippets.test', '/');
    assert.equal(plain.status, 200);
    assert.equal(plain.body, 'location');
    assert.equal(plain.headers['x-location-snippet'], 'a "quoted" {value}');
    assert.match(String(plain.headers['cache-control']), /max-age=3600/);
    assert.equal((await httpGet(port, 'snippets.test', '/?teapot=1')).status, 418);

    const fromServer = await httpGet(port, 'snippets.test', '/from-server-snippet');
    assert.equal(fromServer.status, 200);
    assert.equal(fromServer.body, 'server snippet');
    assert.equal(fromServer.headers['x-server-snippet'], 'yes; really }');
    assert.equal(fromServer.headers['x-location-snippet'], undefined);
    assert.equal((await httpGet(port, 'snippets.test', '/', { 'X-Block': '1' })).status, 403);

    // Static files under a root that does not exist: even "/../etc/passwd" cannot be opened.
    const traversal = await httpGet(port, 'snippets.test', '/files?p=../../../../etc/passwd');
    assert.equal(traversal.status, 404);
    assert.doesNotMatch(traversal.body, /root:/);
  });
});
