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

/** ingress-nginx's bundled headers-more module: translated by headersMore(), never rendered as such. */
const HEADERS_MORE = new Set([
  'more_set_headers',
  'more_clear_headers',
  'more_set_input_headers',
  'more_clear_input_headers',
]);

/** A header name as headers-more reads one (an HTTP token; no "$": variables do not work in names there). */
const HEADER_NAME = /^[!#%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Response headers nginx writes itself (its header filter, proxy module, gzip, auth_basic):
 * headers-more changes them in place, add_header would send a second one, proxy_hide_header does
 * not reach nginx's own.
 */
const NGINX_RESPONSE_HEADERS = new Set([
  'server',
  'date',
  'content-type',
  'content-length',
  'content-encoding',
  'content-range',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'location',
  'last-modified',
  'etag',
  'accept-ranges',
  'vary',
  'www-authenticate',
]);

/** Request headers the sidecar sends upstream itself (nginx/proxy-headers.mustache). */
const SIDECAR_REQUEST_HEADERS = new Set([
  'host',
  'upgrade',
  'connection',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-proto',
]);

interface Translated {
  name: string;
  args: string[];
}

/**
 * A headers-more directive as stock directives with the same meaning (docs/annotations.md#snippets
 * has the table), or InvalidValue with the reason:
 *
 * - `more_set_headers 'X: V'` -> `proxy_hide_header X; add_header X V always;` (headers-more
 *   replaces the header on every status; add_header alone would add a second one, and only on some
 *   statuses without `always`); `-a` (append) -> `add_header X V always;` only;
 *   `more_set_headers X` / `'X:'` and `more_clear_headers X` -> `proxy_hide_header X;`
 * - `more_set_input_headers 'X: V'` -> `proxy_set_header X V;` (`X` or `'X:'`, and
 *   `more_clear_input_headers X`: `proxy_set_header X "";`, which nginx does not send).
 *
 * Refused: `-s` and `-t` (statuses, content types), `-r`, wildcards (`X-*`), headers nginx or
 * the sidecar writes itself, response headers outside a location's own level (a server's or an
 * if's: add_header and proxy_hide_header there are not what a location inherits when it has its
 * own), request headers anywhere but configuration-snippet's own level.
 */
function headersMore(
  name: string,
  args: string[],
  parent: string,
  context: SnippetContext,
  depth: number,
  fail: (reason: string) => InvalidValue,
): Translated[] {
  const input = name.includes('_input_');
  const clear = name.startsWith('more_clear_');
  let append = false;
  const specs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-s' || a === '-t')
      throw fail(
        a === '-s'
          ? '-s (only for some statuses) cannot be expressed with stock nginx: add_header ... always applies to every status, add_header without always to a fixed list'
          : `-t (only for some ${input ? 'request' : 'response'} content types) cannot be expressed with stock nginx's ${input ? 'proxy_set_header' : 'add_header'}`,
      );
    if (a === '-a' && !input && !clear) {
      append = true;
      continue;
    }
    if (a === '-r' && input && !clear)
      throw fail('-r (replace only a header the request has) cannot be expressed with stock nginx proxy_set_header');
    if (a.startsWith('-')) throw fail(`${JSON.stringify(a)} is not an option headers-more knows here`);
    specs.push(a);
  }
  if (specs.length === 0) throw fail('names no header');

  if (input) {
    if (context !== 'location' || depth > 0)
      throw fail(
        context === 'server'
          ? "is translated to proxy_set_header only in configuration-snippet (a server's proxy_set_header is not what a location with its own inherits)"
          : 'is translated to proxy_set_header, which nginx allows only at the level of the location (not inside if or limit_except)',
      );
  } else if (parent !== 'location') {
    throw fail(
      parent === 'server'
        ? "is translated only at a location's level: in configuration-snippet, or inside a location of server-snippet (add_header at the server's level is not inherited by a location that has its own, such as CORS)"
        : 'is translated to proxy_hide_header and add_header ... always, which together nginx allows only at the level of a location (not inside if or limit_except)',
    );
  }

  const out: Translated[] = [];
  for (const spec of specs) {
    const colon = spec.indexOf(':');
    const header = (colon < 0 ? spec : spec.slice(0, colon)).trim();
    const value = colon < 0 || clear ? '' : spec.slice(colon + 1).trim();
    if (clear && colon >= 0) throw fail(`${JSON.stringify(spec)}: ${name} takes header names only`);
    if (header.endsWith('*'))
      throw fail(
        `${JSON.stringify(header)}: a wildcard cannot be expressed with stock nginx (${input ? 'proxy_set_header' : 'proxy_hide_header'} takes exact names)`,
      );
    if (!HEADER_NAME.test(header))
      throw fail(`${JSON.stringify(header)} is not a header name (headers-more does not expand variables in names)`);
    const lower = header.toLowerCase();
    if (input) {
      if (SIDECAR_REQUEST_HEADERS.has(lower))
        throw fail(
          `${header}: the sidecar sends this request header upstream itself, and proxy_set_header would send a second one (headers-more changes the client's header, which ingress-nginx's own lines then read)`,
        );
      out.push({ name: 'proxy_set_header', args: [header, value] });
      continue;
    }
    if (NGINX_RESPONSE_HEADERS.has(lower))
      throw fail(
        `${header}: nginx writes this response header itself; headers-more changes it in place, stock nginx cannot (add_header would send a second one, proxy_hide_header reaches only the backend's)`,
      );
    if (!append) out.push({ name: 'proxy_hide_header', args: [header] });
    if (value !== '') out.push({ name: 'add_header', args: [header, value, 'always'] });
  }
  return out;
}

/**
 * What a block with translated headers-more directives must not also have: its own add_header or
 * proxy_set_header of the same header (both would be sent), or an `if` with add_header lines (when
 * it matches, nginx sends only the if's, and the translated ones would be missing).
 */
function checkTranslatedBlock(
  block: readonly SnippetDirective[],
  translated: { add_header: ReadonlySet<string>; proxy_set_header: ReadonlySet<string> },
  fail: (reason: string) => InvalidValue,
): void {
  for (const kind of ['add_header', 'proxy_set_header'] as const) {
    const count = new Map<string, number>();
    for (const d of block) {
      const header = d.args[0]?.toLowerCase() ?? '';
      if (d.name === kind && translated[kind].has(header)) count.set(header, (count.get(header) ?? 0) + 1);
    }
    for (const [header, n] of count)
      if (n > 1)
        throw fail(
          `${header} is set by a headers-more directive and by ${kind} in the same block: headers-more would replace it, nginx would send both`,
        );
  }
  if (
    translated.add_header.size > 0 &&
    block.some((d) => d.name === 'if' && d.block?.some((i) => i.name === 'add_header'))
  )
    throw fail(
      "a headers-more directive translated to add_header cannot share its block with an if that has add_header lines: when the if matches, nginx sends only the if's",
    );
}

/**
 * ingress-nginx's own variables that the sidecar defines with the same meaning (maps in
 * nginx/main.conf.mustache): snippets written for ingress-nginx may read them, never set them.
 */
export const INGRESS_NGINX_VARIABLES: ReadonlySet<string> = new Set([
  'best_http_host',
  'pass_access_scheme',
  'pass_server_port',
  'pass_port',
  'req_id',
  'connection_upgrade',
  'namespace',
  'ingress_name',
  'service_name',
]);

/** ingress-nginx's variables the sidecar does not define, and why (refused by name in a snippet). */
const UNDEFINED_INGRESS_NGINX_VARIABLES: ReadonlyMap<string, string> = new Map([
  ['service_port', 'the sidecar does not keep the Service port per location'],
  ['location_path', 'the sidecar does not keep the Ingress path per location'],
  ['proxy_upstream_name', "the sidecar's upstreams are named differently (ingress-nginx: namespace-service-port)"],
  ['proxy_alternative_upstream_name', "it names ingress-nginx's canary upstream, chosen by its Lua balancer"],
  [
    'proxy_host',
    'ingress-nginx sets it to its upstream name (namespace-service-port); in stock nginx it is the proxy_pass host, here an internal upstream name',
  ],
  ['balancer_ewma_score', "it belongs to ingress-nginx's Lua balancer"],
  [
    'full_x_forwarded_for',
    'ingress-nginx defines it only with use-forwarded-headers and compute-full-forwarded-for (use $proxy_add_x_forwarded_for)',
  ],
  ['forwarded_for_proxy_protocol', 'ingress-nginx defines it only with use-forwarded-headers and use-proxy-protocol'],
  ['the_real_ip', 'older ingress-nginx releases defined it; use $remote_addr'],
  ['auth_cookie', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['auth_path', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['auth_response_headers', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['auth_keepalive_share_vars', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['global_rate_limit_exceeding', "it belongs to ingress-nginx's global rate limiting (Lua), which is not implemented"],
  ['block_ua', 'it belongs to the block-user-agents ConfigMap key, which is not implemented'],
  ['block_ref', 'it belongs to the block-referers ConfigMap key, which is not implemented'],
]);

/** A variable reference, `$name` or `${name}`, as nginx's script compiler reads one. */
const VARIABLE_REF = /\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g;

function checkVariables(value: string, fail: (reason: string) => InvalidValue): void {
  for (const m of value.matchAll(VARIABLE_REF)) {
    // nginx compares variable names case-insensitively.
    const name = (m[1] ?? m[2] ?? '').toLowerCase();
    const why = UNDEFINED_INGRESS_NGINX_VARIABLES.get(name);
    if (why !== undefined)
      throw fail(`uses $${name}, a variable of ingress-nginx that the sidecar does not define: ${why}`);
  }
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
