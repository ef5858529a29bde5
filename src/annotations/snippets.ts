// The configuration-snippet and server-snippet annotations (only with --allow-snippet-annotations):
// nginx directives written by an Ingress author, read here exactly as nginx would read them and
// rendered again token by token, each token quoted by nginxValue(), so that what nginx sees is
// the tree parseSnippet() checked and nothing else.
//
// Reading: the text is split by nginx's own tokenizer (src/nginx/tokenizer.ts, a port of
// ngx_conf_read_token). A snippet is read as the inside of its block: a "}" that would close the
// surrounding server or location, an unclosed "{", an unterminated quote or a directive without
// ";" is an error, said here in the snippet's terms.
//
// Checking (InvalidValue, naming the annotation and the line): see parseSnippet's doc comment.
//
// Rendering: SNIPPET_PARTIAL lays out snippetLines(); every name and argument goes through
// nginxValue (mustache's escape, as in render.ts), so a "}" or ";" inside an argument is quoted
// data, never syntax, and the block structure is the one parsed here.

import { InvalidValue } from '../grammar.ts';
import { HEADERS_MORE, checkTranslatedBlock, headersMore } from './snippet-headers-more.ts';
import { INGRESS_NGINX_VARIABLES, UNDEFINED_INGRESS_NGINX_VARIABLES, checkVariables } from './snippet-variables.ts';
import { nginxValue } from '../nginx/quote.ts';
import { CONF_BUFFER, NginxSyntaxError, Tokenizer, type TokenEnd, type Word } from '../nginx/tokenizer.ts';

/** One directive as nginx sees it: name, unquoted arguments, and its block (null: ended by ";"). */
export interface SnippetDirective {
  name: string;
  args: string[];
  block: SnippetDirective[] | null;
}

/** Where the snippet goes: server-snippet into server {}, configuration-snippet into location {}. */
export type SnippetContext = 'server' | 'location';

/**
 * One output line for SNIPPET_PARTIAL. Exactly one of terminal / open / close is true:
 * terminal `name args...;`, open `name args... {`, close `}` (name "" and args [] on close
 * lines). `indent` has one entry per nesting level (the partial writes four spaces for each).
 * Every field is always present: mustache would otherwise look a missing one up in the
 * enclosing view.
 */
export interface SnippetLine {
  indent: true[];
  name: string;
  args: string[];
  terminal: boolean;
  open: boolean;
  close: boolean;
}

/**
 * The mustache partial for a snippet; its view is `{ lines: SnippetLine[] }` (from
 * snippetLines). Render it with `{ escape: nginxValue }` and include it as a standalone tag, e.g.
 *
 *     {{#configurationSnippet}}
 *             {{> snippet}}
 *     {{/configurationSnippet}}
 *
 * with `configurationSnippet: { lines }` or null: mustache indents every line of a standalone
 * partial like the tag. It has no unescaped interpolation ({{{ }}} or {{& }}), as render.ts
 * requires of templates; the only literal nginx syntax in it is " {", ";" and "}".
 */
export const SNIPPET_PARTIAL = [
  // configuration-snippet with proxy_set_header (snippetProxyHeaders, see snippetView): nginx
  // would drop every proxy_set_header the location inherits, so the sidecar's own are repeated
  // first (unless x-forwarded-prefix already did), and the snippet's add to them as in ingress-nginx.
  '{{#snippetProxyHeaders}}',
  '{{#proxyPass}}',
  '{{^xForwardedPrefix}}',
  "# the sidecar's proxy headers: the snippet's proxy_set_header would replace them",
  '{{> proxyHeaders}}',
  '{{/xForwardedPrefix}}',
  '{{/proxyPass}}',
  '{{/snippetProxyHeaders}}',
  '{{#lines}}',
  '{{#terminal}}',
  '{{#indent}}    {{/indent}}{{name}}{{#args}} {{.}}{{/args}};',
  '{{/terminal}}',
  '{{#open}}',
  '{{#indent}}    {{/indent}}{{name}}{{#args}} {{.}}{{/args}} {',
  '{{/open}}',
  '{{#close}}',
  '{{#indent}}    {{/indent}}}',
  '{{/close}}',
  '{{/lines}}',
  '',
].join('\n');

/** Largest snippet accepted, in UTF-8 bytes. */
export const MAX_SNIPPET_BYTES = 16 * 1024;
/** Deepest block nesting inside a snippet (`location { if { } }` is 2). */
export const MAX_SNIPPET_DEPTH = 4;
const NAME = /^[a-z_][a-z0-9_]*$/;

/** The only directives that may open a block; each must have one. */
const BLOCKS = new Set(['location', 'if', 'limit_except']);

const PROCESS = 'configures the nginx process or another module context, not this block';
const FILES = 'reads or writes files on the nginx host';
const CODE = 'loads or runs code in nginx';
const OTHERS = 'would reach beyond this Ingress (other hosts, ports or servers)';
const UPSTREAM = "proxies to an address of the author's choosing (backends come from the Ingress's Services only)";

/**
 * Why some directives that are not on ALLOWED are refused, for a clearer message than "not on the
 * list" (ingress-nginx's risk model for snippets, by parsed directive name). The list decides.
 */
const DENIED: ReadonlyArray<[RegExp, string]> = [
  [
    /^(load_module|env|daemon|user|master_process|pid|lock_file|working_directory|thread_pool|pcre_jit|ssl_engine|debug_points|timer_resolution|google_perftools_profiles|events|http|stream|mail|upstream|map|geo|split_clients|types)$/,
    PROCESS,
  ],
  [/^worker_/, PROCESS],
  [/^include$/, 'reads other configuration files'],
  [/^(server|listen|server_name)$/, OTHERS],
  [/lua/, CODE],
  [/^perl/, CODE],
  [/^js_/, CODE],
  [
    /^(root|alias|try_files|index|error_log|xslt_stylesheet|xml_entities|create_full_put_path|min_delete_depth)$/,
    FILES,
  ],
  [/^dav_/, FILES],
  [/_temp_path$|_cache_path$/, FILES],
  [/_store$|_store_access$/, FILES],
  [/_file$|_key$/, FILES],
  [
    /(^|_)ssl_(certificate|certificate_key|certificate_cache|trusted_certificate|client_certificate|crl|dhparam|session_ticket_key|conf_command|password_file|stapling_file)$/,
    FILES,
  ],
  [/^secure_link_secret$/, 'keeps a secret in the nginx configuration'],
  [/(^|_)pass$/, UPSTREAM],
  [
    /^(limit_req|limit_conn)$/,
    'needs a zone, which snippets cannot define (use the limit-rps, limit-rpm and limit-connections annotations)',
  ],
];

/**
 * The directives a snippet may use, chosen for what snippets are for: response and request
 * headers, proxy settings, rewrites and returns, compression and caching headers, body size and
 * access rules. Only stock nginx modules (a directive nginx does not know fails `nginx -t`);
 * nothing that names a file, a zone, an address or another server. Directive names are compared
 * as nginx compares them: exactly (NAME already refuses anything but lowercase).
 */
const ALLOWED_GROUPS: Record<string, readonly string[]> = {
  headers: [
    'add_header',
    'add_trailer',
    'proxy_set_header',
    'proxy_hide_header',
    'proxy_pass_header',
    'proxy_ignore_headers',
    'grpc_set_header',
    'grpc_hide_header',
    'expires',
    'etag',
    'if_modified_since',
    'charset',
    'default_type',
    'server_tokens',
  ],
  proxy: [
    'proxy_connect_timeout',
    'proxy_send_timeout',
    'proxy_read_timeout',
    'proxy_buffering',
    'proxy_buffer_size',
    'proxy_buffers',
    'proxy_busy_buffers_size',
    'proxy_request_buffering',
    'proxy_max_temp_file_size',
    'proxy_http_version',
    'proxy_cookie_domain',
    'proxy_cookie_path',
    'proxy_cookie_flags',
    'proxy_redirect',
    'proxy_intercept_errors',
    'proxy_next_upstream',
    'proxy_next_upstream_tries',
    'proxy_next_upstream_timeout',
    'proxy_pass_request_headers',
    'proxy_pass_request_body',
    'proxy_ssl_server_name',
    'proxy_ssl_name',
    'grpc_connect_timeout',
    'grpc_send_timeout',
    'grpc_read_timeout',
  ],
  rewrites: ['rewrite', 'return', 'if', 'set', 'break', 'location', 'internal'],
  compression: [
    'gzip',
    'gzip_types',
    'gzip_min_length',
    'gzip_comp_level',
    'gzip_proxied',
    'gzip_vary',
    'gzip_disable',
    'gzip_http_version',
    'gzip_buffers',
  ],
  'requests and access': [
    'client_max_body_size',
    'client_body_buffer_size',
    'client_body_timeout',
    'send_timeout',
    'keepalive_timeout',
    'chunked_transfer_encoding',
    'limit_rate',
    'limit_rate_after',
    'allow',
    'deny',
    'satisfy',
    'limit_except',
    'access_log',
  ],
};
/** Every directive a snippet may use (the tests check each with `nginx -t`). */
export const SNIPPET_DIRECTIVES: ReadonlySet<string> = new Set(Object.values(ALLOWED_GROUPS).flat());
const ALLOWED = SNIPPET_DIRECTIVES;
const ALLOWED_TEXT = Object.entries(ALLOWED_GROUPS)
  .map(([group, names]) => `${group}: ${names.join(', ')}`)
  .join('; ');

/**
 * What nginx accepts inside the blocks a snippet may open (the "if in location", "if in server"
 * and limit_except contexts of nginx's directive tables): anything else there fails `nginx -t`.
 */
const INSIDE: Record<string, ReadonlySet<string>> = {
  'if in location': new Set([
    'return',
    'rewrite',
    'set',
    'break',
    'add_header',
    'add_trailer',
    'expires',
    'gzip',
    'limit_rate',
    'access_log',
  ]),
  'if in server': new Set(['return', 'rewrite', 'set', 'break']),
  limit_except: new Set(['allow', 'deny']),
};
/** Directives nginx allows only in a location. */
const LOCATION_ONLY = new Set(['internal', 'limit_except']);

/** `if` operators that test the file system (`-f`, `!-e`, ...), which would probe the nginx host. */
const FILE_TEST = /^\(?!?-[fdex]\)?$/;

/** A UTF-16 surrogate without its pair: text that is not well-formed Unicode. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A `..` path segment (either slash). */
const DOT_DOT_SEGMENT = /(^|[/\\])\.\.([/\\]|$)/;

/**
 * The sidecar's own variables and zones ($ingress_sidecar_*, $isc_*), by any variable reference,
 * regex capture name (`(?<name>`, `(?'name'`) or `zone=` parameter.
 */
// nginx compares variable names case-insensitively: $INGRESS_SIDECAR_NAMESPACE is the same variable.
const RESERVED_NAME = /([$<'{]|zone=)(ingress_sidecar|isc)_/i;

/**
 * Reads a snippet annotation's value into directives, or throws InvalidValue saying why (naming
 * `annotation` and the line).
 *
 * Besides nginx's own syntax errors, a snippet is refused when:
 * - it is larger than MAX_SNIPPET_BYTES, or nests blocks deeper than MAX_SNIPPET_DEPTH;
 * - a directive name is not /^[a-z_][a-z0-9_]*$/ (every nginx directive is);
 * - a directive is not on the allowlist (SNIPPET_DIRECTIVES: headers, proxy settings, rewrites
 *   and return, gzip, body size, access rules), or not one nginx allows inside the block it is
 *   in (an `if` of a location or of the server, limit_except), or location-only (internal,
 *   limit_except) at the server's level; the reason names what is allowed (and for well-known
 *   dangers, DENIED above, why: files, code, other servers, own upstreams). A list, not a
 *   denylist: a directive nobody thought of (quic_host_key, which nginx 1.30 opens as a file)
 *   is refused by default. access_log is allowed only as `access_log off`;
 * - a block is opened by anything but `location` (server snippets only, at the top or inside
 *   another location), `if` (directly in the server or a location) or `limit_except` (in a
 *   location); these three must have a block;
 * - an `if` tests the file system (`-f`, `-d`, `-e`, `-x` and their negations);
 * - an argument, after unquoting, contains a control character (U+0000-U+001F, U+007F: a raw
 *   one or one written `\n`, `\r`, `\t`), is not well-formed Unicode, contains a `..` path
 *   segment, names one of the sidecar's own variables or zones ($ingress_sidecar_*, $isc_*,
 *   zone=isc_*; in any case, as nginx compares variable names), or would be a token nginx finds
 *   too long (so would a name).
 *
 * The `..` rule is a literal check only: variables can still build a path. What keeps files
 * unreachable is the allowlist (no directive that maps a name to a file) together with a server
 * `root` that does not exist, which the server template must set: nginx's static handler, which
 * serves any location without a content handler, opens root + URI, and `rewrite ... break` can
 * make that URI `/../anything`; under a root that does not exist, the kernel refuses the path.
 */
export function parseSnippet(annotation: string, text: string, context: SnippetContext): SnippetDirective[] {
  const fail = (line: number | null, reason: string) =>
    new InvalidValue(`annotation ${annotation}: ${line === null ? '' : `line ${line}: `}${reason}`);
  if (typeof text !== 'string') throw fail(null, 'must be a string');
  if (LONE_SURROGATE.test(text)) throw fail(null, 'is not well-formed Unicode');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_SNIPPET_BYTES) throw fail(null, `is ${bytes} bytes, more than the ${MAX_SNIPPET_BYTES} allowed`);

  const reader = new Tokenizer(text, { tokenLimit: false });
  const readToken = (words: Word[]): TokenEnd => {
    try {
      return reader.readToken(words);
    } catch (err) {
      if (err instanceof NginxSyntaxError) throw syntaxError(err, fail);
      throw err;
    }
  };
  // `parent`: the block the directives are in ('server' or 'location' for the snippet's own
  // level, else the name of the snippet's block around them).
  const parse = (parent: string, depth: number): SnippetDirective[] => {
    const out: SnippetDirective[] = [];
    // Headers a translated headers-more directive sets in this block, response and request.
    const responseHeaders = new Set<string>();
    const requestHeaders = new Set<string>();
    let translatedHeaders = false;
    const done = (endLine: number): SnippetDirective[] => {
      if (translatedHeaders)
        checkTranslatedBlock(out, { add_header: responseHeaders, proxy_set_header: requestHeaders }, (reason) =>
          fail(endLine, reason),
        );
      return out;
    };
    for (;;) {
      const words: Word[] = [];
      const outcome = readToken(words);
      if (outcome === 'end') {
        if (depth > 0) throw fail(reader.line, 'unexpected end of snippet, expecting "}" (a block is not closed)');
        return done(reader.line);
      }
      if (outcome === 'blockDone') {
        if (depth === 0)
          throw fail(reader.line, `unexpected "}": a snippet may not close the ${context} block it is in`);
        return done(reader.line);
      }
      const [first, ...rest] = words;
      if (!first) throw fail(reader.line, 'empty directive'); // readToken refuses it
      const line = first.line;
      const name = first.value;
      if (!NAME.test(name))
        throw fail(line, `${JSON.stringify(name)} is not a directive name (lowercase letters, digits and "_")`);
      if (name.length >= CONF_BUFFER) throw fail(line, `a directive name of ${name.length} characters is too long`);
      const args = rest.map((w) => w.value);
      if (HEADERS_MORE.has(name)) {
        // ingress-nginx's headers-more directives: stock directives with the same meaning, or refused.
        const failHere = (reason: string) => fail(line, `${name}: ${reason}`);
        if (outcome === 'blockStart') throw failHere('may not open a block');
        for (const a of args)
          checkArgument(a, (reason) => fail(line, `${name}: argument ${JSON.stringify(a)} ${reason}`));
        for (const t of headersMore(name, args, parent, context, depth, failHere)) {
          checkDirective(t.name, t.args, false, parent, context, failHere);
          for (const a of t.args) checkArgument(a, (reason) => failHere(`argument ${JSON.stringify(a)} ${reason}`));
          const header = (t.args[0] ?? '').toLowerCase();
          if (t.name !== 'proxy_hide_header') {
            const seen = t.name === 'add_header' ? responseHeaders : requestHeaders;
            if (seen.has(header))
              throw failHere(
                `header ${t.args[0]} is set twice in this block; headers-more would keep the last value, add_header and proxy_set_header would send both`,
              );
            seen.add(header);
          }
          out.push({ name: t.name, args: t.args, block: null });
        }
        translatedHeaders = true;
        continue;
      }
      checkDirective(name, args, outcome === 'blockStart', parent, context, (reason) =>
        fail(line, `${name}: ${reason}`),
      );
      for (const a of args)
        checkArgument(a, (reason) => fail(line, `${name}: argument ${JSON.stringify(a)} ${reason}`));
      let block: SnippetDirective[] | null = null;
      if (outcome === 'blockStart') {
        if (depth + 1 > MAX_SNIPPET_DEPTH)
          throw fail(line, `blocks are nested deeper than ${MAX_SNIPPET_DEPTH} levels`);
        // nginx allows different directives in an if of a server and an if of a location.
        block = parse(name === 'if' ? `if in ${parent}` : name, depth + 1);
      }
      out.push({ name, args, block });
    }
  };
  return parse(context, 0);
}

function checkDirective(
  name: string,
  args: string[],
  opensBlock: boolean,
  parent: string,
  context: SnippetContext,
  fail: (reason: string) => InvalidValue,
): void {
  if (!ALLOWED.has(name)) {
    const why = DENIED.find(([pattern]) => pattern.test(name))?.[1];
    throw fail(
      `is not allowed in a snippet${why ? `: it ${why}` : ''}; a snippet may use only these directives (${ALLOWED_TEXT})`,
    );
  }
  if (name === 'access_log' && !(args.length === 1 && args[0] === 'off')) {
    throw fail(`only "access_log off" is allowed in a snippet: a log path ${FILES}`);
  }
  if (name === 'set' && args[0] !== undefined) {
    const target = args[0].replace(/^\$\{?|\}$/g, '').toLowerCase();
    if (INGRESS_NGINX_VARIABLES.has(target) || UNDEFINED_INGRESS_NGINX_VARIABLES.has(target))
      throw fail(
        `may not set $${target}: it is one of ingress-nginx's variables${INGRESS_NGINX_VARIABLES.has(target) ? ', which the sidecar defines with its meaning' : ''}; use a name of your own`,
      );
  }
  if (opensBlock && !BLOCKS.has(name)) throw fail('may not open a block (only location, if and limit_except can)');
  if (!opensBlock && BLOCKS.has(name)) throw fail('needs a block ({ ... })');
  const inLocation = parent === 'location';
  if (name === 'location') {
    if (context !== 'server') throw fail('is allowed in server-snippet only, not in configuration-snippet');
    if (parent !== 'server' && !inLocation) throw fail(`may not be inside ${parent}`);
  }
  if (name === 'if') {
    if (parent !== 'server' && !inLocation) throw fail(`may not be inside ${parent}`);
    if (args.some((a) => FILE_TEST.test(a))) throw fail('may not test files (-f, -d, -e, -x)');
  }
  if (LOCATION_ONLY.has(name) && !inLocation) throw fail(`is allowed only in a location, not in ${parent}`);
  const inside = INSIDE[parent];
  if (inside && !inside.has(name))
    throw fail(
      `is not allowed inside ${parent.replace(/ in .*/, '')} (nginx allows there only ${[...inside].join(', ')})`,
    );
}

function checkArgument(value: string, fail: (reason: string) => InvalidValue): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw fail('contains a control character');
  if (LONE_SURROGATE.test(value)) throw fail('is not well-formed Unicode');
  if (DOT_DOT_SEGMENT.test(value)) throw fail('contains a ".." path segment');
  if (RESERVED_NAME.test(value)) throw fail("names one of the sidecar's own variables or zones");
  checkVariables(value, fail);
  if (Buffer.byteLength(nginxValue(value), 'utf8') >= CONF_BUFFER)
    throw fail(`is too long (nginx reads at most ${CONF_BUFFER - 1} bytes per token)`);
}

/** The directives as lines for SNIPPET_PARTIAL (view: `{ lines }`). */
export function snippetLines(directives: readonly SnippetDirective[]): SnippetLine[] {
  const lines: SnippetLine[] = [];
  const walk = (ds: readonly SnippetDirective[], depth: number) => {
    const indent = new Array<true>(depth).fill(true);
    for (const d of ds) {
      if (d.block === null) {
        lines.push({ indent, name: d.name, args: d.args, terminal: true, open: false, close: false });
      } else {
        lines.push({ indent, name: d.name, args: d.args, terminal: false, open: true, close: false });
        walk(d.block, depth + 1);
        lines.push({ indent, name: '', args: [], terminal: false, open: false, close: true });
      }
    }
  };
  walk(directives, 0);
  return lines;
}

/** nginx's syntax error, in a snippet's terms (CONF_BUFFER: checked per token by checkArgument). */
function syntaxError(err: NginxSyntaxError, fail: (line: number | null, reason: string) => InvalidValue): InvalidValue {
  const p = err.problem;
  switch (p.kind) {
    case 'end':
      if (p.quote) return fail(p.startLine, `unterminated ${p.quote} quote`);
      return fail(
        err.line,
        `unexpected end of snippet: ${JSON.stringify(p.first ?? p.excerpt)} is not ended by ";" or "{"`,
      );
    case 'afterQuote':
      return fail(err.line, `unexpected ${JSON.stringify(p.char)} right after a closing quote`);
    case 'noName':
      return fail(err.line, `unexpected "${p.char}" where a directive name should be`);
    case 'unended':
      return fail(err.line, `unexpected "}": directive ${JSON.stringify(p.name)} is not ended by ";"`);
    default:
      return fail(err.line, err.message);
  }
}
