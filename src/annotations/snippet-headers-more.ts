// ingress-nginx's bundled headers-more module in snippets: its common forms as the stock
// directives with the same meaning, the rest refused with the reason (docs/annotations.md#snippets).
import type { InvalidValue } from '../grammar.ts';
import type { SnippetContext, SnippetDirective } from './snippets.ts';

/** ingress-nginx's bundled headers-more module: translated by headersMore(), never rendered as such. */
export const HEADERS_MORE = new Set([
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
export function headersMore(
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
export function checkTranslatedBlock(
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
