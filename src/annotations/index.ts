// nginx.ingress.kubernetes.io/* annotations -> typed settings. Pure, like translate: every value
// is parsed against a narrow grammar into a number, an enum or a checked token, or the Ingress is
// rejected with a reason (InvalidValue). Nothing here is ever passed to nginx raw: the render step
// builds directives from these values only.
//
// Names, value formats and defaults are ingress-nginx's (the annotations users move over); where
// stock nginx cannot do what ingress-nginx does, the README's "Annotations" section says what
// happens instead. Annotations under the prefix that are not implemented are reported once each;
// the snippet annotations are refused outright, since they would let an Ingress author write nginx
// configuration.

import { isIP } from 'node:net';
import type { RedirectCode } from '../model.ts';
import { classify } from './classes.ts';
import { parseSnippet, type SnippetDirective } from './snippets.ts';
import { parseTargetHost } from './addresses.ts';
import { InvalidValue, checkObjectName, isDnsSubdomain, parseBoolAnnotation } from '../grammar.ts';
import { tokenFits } from '../nginx/quote.ts';

export const ANNOTATION_PREFIX = 'nginx.ingress.kubernetes.io/';
const A = (name: string) => `${ANNOTATION_PREFIX}${name}`;

export const SSL_REDIRECT_ANNOTATION = A('ssl-redirect');
export const FORCE_SSL_REDIRECT_ANNOTATION = A('force-ssl-redirect');
export const PRESERVE_TRAILING_SLASH = A('preserve-trailing-slash');
export const PROXY_BODY_SIZE = A('proxy-body-size');
export const PROXY_CONNECT_TIMEOUT = A('proxy-connect-timeout');
export const PROXY_SEND_TIMEOUT = A('proxy-send-timeout');
export const PROXY_READ_TIMEOUT = A('proxy-read-timeout');
export const PROXY_BUFFERING = A('proxy-buffering');
export const PROXY_BUFFER_SIZE = A('proxy-buffer-size');
export const USE_REGEX = A('use-regex');
export const REWRITE_TARGET = A('rewrite-target');
export const APP_ROOT = A('app-root');
export const X_FORWARDED_PREFIX = A('x-forwarded-prefix');
export const PERMANENT_REDIRECT = A('permanent-redirect');
export const PERMANENT_REDIRECT_CODE = A('permanent-redirect-code');
export const TEMPORAL_REDIRECT = A('temporal-redirect');
export const TEMPORAL_REDIRECT_CODE = A('temporal-redirect-code');
export const ALLOWLIST_SOURCE_RANGE = A('allowlist-source-range');
export const WHITELIST_SOURCE_RANGE = A('whitelist-source-range');
export const DENYLIST_SOURCE_RANGE = A('denylist-source-range');
export const ENABLE_CORS = A('enable-cors');
export const CORS_ALLOW_ORIGIN = A('cors-allow-origin');
export const CORS_ALLOW_METHODS = A('cors-allow-methods');
export const CORS_ALLOW_HEADERS = A('cors-allow-headers');
export const CORS_EXPOSE_HEADERS = A('cors-expose-headers');
export const CORS_ALLOW_CREDENTIALS = A('cors-allow-credentials');
export const CORS_MAX_AGE = A('cors-max-age');
export const LIMIT_RPS = A('limit-rps');
export const LIMIT_RPM = A('limit-rpm');
export const LIMIT_BURST_MULTIPLIER = A('limit-burst-multiplier');
export const LIMIT_CONNECTIONS = A('limit-connections');
export const AUTH_TYPE = A('auth-type');
export const AUTH_SECRET = A('auth-secret');
export const AUTH_SECRET_TYPE = A('auth-secret-type');
export const AUTH_REALM = A('auth-realm');
export const BACKEND_PROTOCOL = A('backend-protocol');
export const LOAD_BALANCE = A('load-balance');
export const UPSTREAM_HASH_BY = A('upstream-hash-by');
export const AFFINITY = A('affinity');
export const SESSION_COOKIE_NAME = A('session-cookie-name');
export const SESSION_COOKIE_PATH = A('session-cookie-path');
export const SESSION_COOKIE_MAX_AGE = A('session-cookie-max-age');
export const SESSION_COOKIE_SAMESITE = A('session-cookie-samesite');
export const SESSION_COOKIE_SECURE = A('session-cookie-secure');
export const CANARY = A('canary');
export const CANARY_WEIGHT = A('canary-weight');
export const CANARY_WEIGHT_TOTAL = A('canary-weight-total');
export const CANARY_BY_HEADER = A('canary-by-header');
export const CANARY_BY_HEADER_VALUE = A('canary-by-header-value');
export const CANARY_BY_COOKIE = A('canary-by-cookie');
export const SERVICE_UPSTREAM = A('service-upstream');
export const MIRROR_TARGET = A('mirror-target');
export const MIRROR_REQUEST_BODY = A('mirror-request-body');
export const CUSTOM_HTTP_ERRORS = A('custom-http-errors');
export const DEFAULT_BACKEND = A('default-backend');
export const CONFIGURATION_SNIPPET = A('configuration-snippet');
export const SERVER_SNIPPET = A('server-snippet');

/** The canary annotations: the only ones that act on a canary Ingress (the main Ingress's settings apply to its paths). */
export const CANARY_ANNOTATIONS: ReadonlySet<string> = new Set([CANARY, CANARY_WEIGHT, CANARY_WEIGHT_TOTAL, CANARY_BY_HEADER, CANARY_BY_HEADER_VALUE, CANARY_BY_COOKIE]);

/** Every annotation this sidecar implements (the others under the prefix are reported). */
export const SUPPORTED_ANNOTATIONS: ReadonlySet<string> = new Set([
  SSL_REDIRECT_ANNOTATION, FORCE_SSL_REDIRECT_ANNOTATION, PRESERVE_TRAILING_SLASH,
  PROXY_BODY_SIZE, PROXY_CONNECT_TIMEOUT, PROXY_SEND_TIMEOUT, PROXY_READ_TIMEOUT, PROXY_BUFFERING, PROXY_BUFFER_SIZE,
  USE_REGEX, REWRITE_TARGET, APP_ROOT, X_FORWARDED_PREFIX,
  PERMANENT_REDIRECT, PERMANENT_REDIRECT_CODE, TEMPORAL_REDIRECT, TEMPORAL_REDIRECT_CODE,
  ALLOWLIST_SOURCE_RANGE, WHITELIST_SOURCE_RANGE, DENYLIST_SOURCE_RANGE,
  ENABLE_CORS, CORS_ALLOW_ORIGIN, CORS_ALLOW_METHODS, CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_ALLOW_CREDENTIALS, CORS_MAX_AGE,
  LIMIT_RPS, LIMIT_RPM, LIMIT_BURST_MULTIPLIER, LIMIT_CONNECTIONS,
  AUTH_TYPE, AUTH_SECRET, AUTH_SECRET_TYPE, AUTH_REALM,
  BACKEND_PROTOCOL,
  LOAD_BALANCE, UPSTREAM_HASH_BY,
  AFFINITY, SESSION_COOKIE_NAME, SESSION_COOKIE_PATH, SESSION_COOKIE_MAX_AGE, SESSION_COOKIE_SAMESITE, SESSION_COOKIE_SECURE,
  ...CANARY_ANNOTATIONS,
  SERVICE_UPSTREAM, MIRROR_TARGET, MIRROR_REQUEST_BODY, CUSTOM_HTTP_ERRORS, DEFAULT_BACKEND,
]);

// Defaults, as ingress-nginx documents them.
export const DEFAULT_CORS_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'];
export const DEFAULT_CORS_HEADERS = ['DNT', 'Keep-Alive', 'User-Agent', 'X-Requested-With', 'If-Modified-Since', 'Cache-Control', 'Content-Type', 'Range', 'Authorization'];
export const DEFAULT_CORS_MAX_AGE = 1728000;
export const DEFAULT_AUTH_REALM = 'Authentication Required';
export const DEFAULT_LIMIT_BURST_MULTIPLIER = 5;
export const DEFAULT_SESSION_COOKIE_NAME = 'INGRESSCOOKIE';
export const DEFAULT_CANARY_WEIGHT_TOTAL = 100;

/** The largest proxy-buffer-size accepted: nginx allocates five of these per proxied request. */
export const MAX_PROXY_BUFFER_SIZE = 1024 * 1024;
/** Timeouts above this (about 24 days) overflow nginx's millisecond timers on 32-bit builds. */
export const MAX_TIMEOUT_SECONDS = 2_147_483;
const MAX_LIST_ITEMS = 256;

/** An nginx size: `text` is what the directive gets (digits and k, m or g), `bytes` its value. */
export interface Size {
  text: string;
  bytes: number;
}

/** A rewrite-target: literal text and regex capture references ($1-$9), in order. */
export type RewriteTarget = Array<{ text: string } | { capture: number }>;

/** Variables a redirect URL may use: none of them can carry a CR or LF into the Location header. */
export const REDIRECT_VARIABLES = ['request_uri', 'host', 'scheme', 'args', 'is_args'] as const;
export type RedirectVariable = (typeof REDIRECT_VARIABLES)[number];
export type RedirectUrl = Array<{ text: string } | { variable: RedirectVariable }>;

/** An allowed CORS origin: scheme, host (with `wildcard`, any one more label in front), optional port. */
export interface CorsOrigin {
  scheme: 'http' | 'https';
  host: string;
  wildcard: boolean;
  port: number | null;
}

export interface CorsConfig {
  /** null: any origin (`*`). */
  origins: CorsOrigin[] | null;
  methods: string[];
  headers: string[];
  exposeHeaders: string[];
  credentials: boolean;
  maxAge: number;
}

export interface AuthConfig {
  /** `namespace/name` of the Secret; always the Ingress's own namespace. */
  secret: string;
  secretType: 'auth-file' | 'auth-map';
  realm: string;
}

/** backend-protocol: how nginx talks to the Service. */
export type BackendProtocol = 'HTTP' | 'HTTPS' | 'GRPC' | 'GRPCS';

/** affinity: cookie. The cookie carries a random key that nginx hashes consistently onto an endpoint. */
export interface AffinityConfig {
  /** Letters, digits and "_": nginx reads it as `$cookie_<name>`. */
  cookie: string;
  /** The cookie's Path; null: the location's own path (ingress-nginx's default), "/" for regex paths. */
  path: string | null;
  maxAge: number | null;
  sameSite: 'Strict' | 'Lax' | 'None' | null;
  secure: boolean;
}

/** canary: "true": which requests go to this Ingress's backends instead of the main Ingress's. */
export interface CanaryConfig {
  /** canary-by-header: "always" (or the value) sends to the canary, "never" to the main backend. */
  header: { name: string; value: string | null } | null;
  /** canary-by-cookie: "always" sends to the canary, "never" to the main backend. Letters, digits, "_". */
  cookie: string | null;
  /** canary-weight out of canary-weight-total, for requests no header or cookie decided. */
  weight: number;
  total: number;
}

/** mirror-target: where a copy of each request goes. */
export interface MirrorTarget {
  scheme: 'http' | 'https';
  /** A lowercase DNS name or an IP address (IPv6 in brackets). */
  host: string;
  port: number;
  /** The request path on the target: literal URL text and `$request_uri`; empty: the mirrored request's own URI. */
  path: Array<{ text: string } | { variable: 'request_uri' }>;
}

/** What an Ingress's annotations ask of every location it owns. */
export interface IngressAnnotations {
  backendProtocol: BackendProtocol;
  /** ssl-redirect, when set. */
  sslRedirect: boolean | null;
  forceSslRedirect: boolean;
  /** preserve-trailing-slash: HTTPS redirects keep a trailing "/" of the request URI (ingress-nginx strips it). */
  preserveTrailingSlash: boolean;
  /**
   * Why the Ingress cannot be served as asked (a must-not-ignore annotation that is not
   * implemented, src/annotations/classes.ts; translate adds a value that does not parse): its paths
   * answer 503. Empty: none.
   */
  denied: string[];
  bodySize: Size | null;
  connectTimeout: number | null;
  sendTimeout: number | null;
  readTimeout: number | null;
  buffering: boolean | null;
  bufferSize: Size | null;
  /** use-regex, or implied by rewrite-target: ImplementationSpecific paths are regular expressions. */
  useRegex: boolean;
  rewriteTarget: RewriteTarget | null;
  appRoot: string | null;
  xForwardedPrefix: string | null;
  redirect: { code: RedirectCode; url: RedirectUrl } | null;
  /** Normalised CIDRs (network address / prefix length). */
  allow: string[];
  deny: string[];
  cors: CorsConfig | null;
  limitRps: number | null;
  limitRpm: number | null;
  limitBurstMultiplier: number;
  limitConnections: number | null;
  auth: AuthConfig | null;
  /** load-balance: ewma becomes least_conn (stock nginx has no EWMA). */
  loadBalance: 'round_robin' | 'ewma';
  /** upstream-hash-by: nginx variable text, each variable written `${name}`, from an allowed set. */
  hashBy: string | null;
  affinity: AffinityConfig | null;
  canary: CanaryConfig | null;
  serviceUpstream: boolean;
  mirror: { target: MirrorTarget; body: boolean } | null;
  /** custom-http-errors: the status codes whose answers the default backend replaces, sorted. */
  customErrors: number[];
  /** default-backend: a Service in the Ingress's namespace (its first port). */
  defaultBackend: string | null;
  /** configuration-snippet and server-snippet, parsed (only with --allow-snippet-annotations). */
  configurationSnippet: SnippetDirective[] | null;
  serverSnippet: SnippetDirective[] | null;
}

export const NO_ANNOTATIONS: Readonly<IngressAnnotations> = Object.freeze({
  backendProtocol: 'HTTP',
  sslRedirect: null,
  forceSslRedirect: false,
  preserveTrailingSlash: false,
  denied: [],
  bodySize: null,
  connectTimeout: null,
  sendTimeout: null,
  readTimeout: null,
  buffering: null,
  bufferSize: null,
  useRegex: false,
  rewriteTarget: null,
  appRoot: null,
  xForwardedPrefix: null,
  redirect: null,
  allow: [],
  deny: [],
  cors: null,
  limitRps: null,
  limitRpm: null,
  limitBurstMultiplier: DEFAULT_LIMIT_BURST_MULTIPLIER,
  limitConnections: null,
  auth: null,
  loadBalance: 'round_robin',
  hashBy: null,
  affinity: null,
  canary: null,
  serviceUpstream: false,
  mirror: null,
  customErrors: [],
  defaultBackend: null,
  configurationSnippet: null,
  serverSnippet: null,
});

/** A value as a reason may quote it: short, and JSON-escaped so that it cannot forge a log line. */
function shown(value: unknown): string {
  if (typeof value !== 'string') return `a ${Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value}`;
  return JSON.stringify(value.slice(0, 64)) + (value.length > 64 ? '...' : '');
}

/** Reads an Ingress's annotations. */
class Reader {
  private readonly raw: Record<string, unknown>;

  constructor(raw: Record<string, unknown>) {
    this.raw = raw;
  }

  has(name: string): boolean {
    return Object.hasOwn(this.raw, name);
  }

  /** The value, trimmed, or undefined when the annotation is absent; non-strings and "" are refused. */
  string(name: string): string | undefined {
    if (!this.has(name)) return undefined;
    const v = this.raw[name];
    if (typeof v !== 'string') throw new InvalidValue(`annotation ${name} must be a string, not ${shown(v)}`);
    const t = v.trim();
    if (t === '') throw new InvalidValue(`annotation ${name} must not be empty`);
    return t;
  }

  bool(name: string): boolean | undefined {
    return this.has(name) ? parseBoolAnnotation(name, this.raw[name]) : undefined;
  }
}

const fail = (name: string, value: string, why: string) => new InvalidValue(`annotation ${name}: ${shown(value)} ${why}`);

/** An nginx size as ingress-nginx accepts it: digits, then b, k, m or g in either case. */
export function parseSize(name: string, value: string, opts: { min?: number; max?: number } = {}): Size {
  const m = /^(\d{1,13})([bBkKmMgG]?)$/.exec(value);
  if (!m) throw fail(name, value, 'is not a size (digits, then optionally k, m or g, as in "8m")');
  const amount = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const bytes = amount * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
  if (!Number.isSafeInteger(bytes)) throw fail(name, value, 'is too large');
  if (opts.min !== undefined && bytes < opts.min) throw fail(name, value, `is smaller than ${opts.min} byte${opts.min === 1 ? '' : 's'}`);
  if (opts.max !== undefined && bytes > opts.max) throw fail(name, value, `is larger than ${opts.max / 1024}k, the most this sidecar accepts`);
  // nginx has no "b" suffix: bytes are plain digits.
  return { text: `${amount}${unit === 'b' ? '' : unit}`, bytes };
}

/** Whole seconds, as ingress-nginx's timeouts are given ("60"; "60s" is accepted too). */
export function parseSeconds(name: string, value: string): number {
  const m = /^(\d{1,9})s?$/.exec(value);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 1 && n <= MAX_TIMEOUT_SECONDS)) throw fail(name, value, `is not a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`);
  return n;
}

export function parseInteger(name: string, value: string, min: number, max: number): number {
  const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw fail(name, value, `is not a whole number from ${min} to ${max}`);
  return n;
}

// Characters of a URL path that need no thought: RFC 3986 pchar without "$" (nginx would read a
// variable) and "%" (checked separately, as escapes), plus "/".
const PATH_LITERAL = /^[A-Za-z0-9\-._~!&'()*+,;=:@/]$/;

/** An absolute URL path (and optional query) with valid percent-escapes and no "$": for app-root. */
export function parseRedirectPath(name: string, value: string): string {
  if (!value.startsWith('/') || value.startsWith('//')) throw fail(name, value, 'must be an absolute path starting with a single "/"');
  if (value.length > 1024) throw fail(name, value, 'is longer than 1024 characters');
  const q = value.indexOf('?');
  const check = (part: string, extra: string) => {
    for (let i = 0; i < part.length; i++) {
      const c = part[i]!;
      if (c === '%' && /^[0-9A-Fa-f]{2}$/.test(part.slice(i + 1, i + 3))) {
        i += 2;
      } else if (!PATH_LITERAL.test(c) && !extra.includes(c)) {
        throw fail(name, value, `may contain only URL path characters (not ${JSON.stringify(c)})`);
      }
    }
  };
  check(q < 0 ? value : value.slice(0, q), '');
  if (q >= 0) check(value.slice(q + 1), '?');
  return value;
}

/** rewrite-target: ingress-nginx's grammar (letters, digits, "-._~:/") and $1-$9 or ${1}-${9}. */
export function parseRewriteTarget(name: string, value: string): RewriteTarget {
  if (value.length > 1024) throw fail(name, value, 'is longer than 1024 characters');
  const out: RewriteTarget = [];
  const re = /\$(?:([1-9])|\{([1-9])\})|([A-Za-z0-9\-._~:/]+)/y;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m) throw fail(name, value, 'may contain only letters, digits, "-", ".", "_", "~", ":", "/" and the capture groups $1 to $9');
    if (m[3] !== undefined) out.push({ text: m[3] });
    else out.push({ capture: Number(m[1] ?? m[2]) });
    at = re.lastIndex;
  }
  const first = out[0];
  if (!first || ('text' in first && !first.text.startsWith('/'))) throw fail(name, value, 'must start with "/" or a capture group');
  return out;
}

/** A redirect URL: http(s), URL characters only, and "$" only for a few variables that cannot carry CR or LF. */
export function parseRedirectUrl(name: string, value: string): RedirectUrl {
  if (value.length > 2048) throw fail(name, value, 'is longer than 2048 characters');
  if (!/^https?:\/\/[^/?#$]/i.test(value)) throw fail(name, value, 'must be an absolute http:// or https:// URL');
  const out: RedirectUrl = [];
  // RFC 3986 characters (reserved and unreserved), percent-escapes, and the allowed variables.
  const re = /\$(?:([a-z_]+)|\{([a-z_]+)\})|((?:[A-Za-z0-9\-._~:/?#[\]@!&'()*+,;=]|%[0-9A-Fa-f]{2})+)/y;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m) throw fail(name, value, 'may contain only URL characters and the variables $request_uri, $host, $scheme, $args and $is_args');
    if (m[3] !== undefined) out.push({ text: m[3] });
    else {
      const v = m[1] ?? m[2] ?? '';
      if (!(REDIRECT_VARIABLES as readonly string[]).includes(v)) {
        throw fail(name, value, `uses $${v.slice(0, 40)}; only $request_uri, $host, $scheme, $args and $is_args may appear in a redirect URL`);
      }
      out.push({ variable: v as RedirectVariable });
    }
    at = re.lastIndex;
  }
  return out;
}

/** A status custom-http-errors may name: 400-599 as in ingress-nginx, less what nginx's error_page refuses (499, ngx_http_core_error_page). */
function parseErrorCode(name: string, value: string): number {
  const n = parseInteger(name, value, 400, 599);
  if (n === 499) throw fail(name, value, "is not a status nginx's error_page accepts (499 is nginx's own code for a client that closed the connection)");
  return n;
}

function parseRedirectCode(name: string, value: string): RedirectCode {
  const n = /^\d{3}$/.test(value) ? Number(value) : NaN;
  if (n === 301 || n === 302 || n === 303 || n === 307 || n === 308) return n;
  // nginx's `return` sends a Location header with these codes only; others would send the URL as a body.
  throw fail(name, value, 'is not a redirect status: 301, 302, 303, 307 or 308');
}

/** An IPv4 or IPv6 address as 4 or 16 bytes, or null. */
function ipBytes(ip: string): number[] | null {
  const family = isIP(ip);
  if (family === 4) return ip.split('.').map(Number);
  if (family !== 6 || ip.includes('%')) return null;
  let text = ip;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const words = rest === undefined ? h : [...h, ...new Array<number>(Math.max(0, 8 - h.length - r.length)).fill(0), ...r];
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes.length === 16 && bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255) ? bytes : null;
}

/** "10.0.0.7/24" -> "10.0.0.0/24": nginx warns about (and ignores) host bits. A bare address is /32 or /128. */
export function parseCidr(name: string, item: string): string {
  const [ip = '', prefix, extra] = item.split('/');
  const bytes = ipBytes(ip);
  if (!bytes || extra !== undefined) throw fail(name, item, 'is not an IP address or CIDR range');
  const bits = bytes.length * 8;
  const len = prefix === undefined ? bits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (!(len >= 0 && len <= bits)) throw fail(name, item, `has a prefix length outside 0-${bits}`);
  const masked = bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  if (bytes.length === 4) return `${masked.join('.')}/${len}`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((masked[i]! << 8) | masked[i + 1]!).toString(16));
  return `${words.join(':')}/${len}`;
}

/** A comma-separated list, items trimmed, empty items dropped. */
function items(name: string, value: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw fail(name, value, 'names nothing');
  if (list.length > MAX_LIST_ITEMS) throw fail(name, value, `has more than ${MAX_LIST_ITEMS} items`);
  return list;
}

function parseCidrs(name: string, value: string): string[] {
  return [...new Set(items(name, value).map((i) => parseCidr(name, i)))];
}


/** cors-allow-origin: "*" anywhere in the list means any origin (as in ingress-nginx); null then. */
export function parseCorsOrigins(name: string, value: string): CorsOrigin[] | null {
  const list = items(name, value);
  if (list.includes('*')) return null;
  const origins = list.map((o): CorsOrigin => {
    const m = /^(https?):\/\/(\*\.)?([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(o);
    const host = m?.[3]?.toLowerCase() ?? '';
    const port = m?.[4] === undefined ? null : Number(m[4]);
    const hostOk = isDnsSubdomain(host);
    if (!m || !hostOk || (port !== null && !(port >= 1 && port <= 65535))) {
      throw fail(name, o, 'is not an origin: "*", or http(s)://host[:port], where host may start with "*."');
    }
    return { scheme: m[1] as 'http' | 'https', host, wildcard: m[2] !== undefined, port };
  });
  // The list becomes one map pattern in nginx.conf: one token, which nginx limits to 4095 bytes.
  if (!tokenFits(`~*${corsOriginPattern(origins)}`)) throw fail(name, value, 'is too long: nginx reads the list as one pattern and refuses patterns of 4096 bytes or more; allow fewer origins, or one "*." wildcard for many hosts of a domain');
  return origins;
}

/** The regex that matches any of `origins` (the map pattern of annotations-model.ts). */
export function corsOriginPattern(origins: CorsOrigin[]): string {
  const alternatives = origins.map((o) => `${o.scheme}://${o.wildcard ? '[a-z0-9-]+\\.' : ''}${regexLiteral(o.host)}${o.port === null ? '' : `:${o.port}`}`);
  return `^(${[...new Set(alternatives)].join('|')})$`;
}

function parseTokens(name: string, value: string, token: RegExp, what: string): string[] {
  const list = items(name, value);
  for (const t of list) if (!token.test(t)) throw fail(name, t, `is not ${what}`);
  const out = [...new Set(list)];
  // Rendered as one header value (one nginx token, limited to 4095 bytes), joined with ", ".
  if (!tokenFits(out.join(', '))) throw fail(name, value, 'is too long: nginx refuses a header value of 4096 bytes or more');
  return out;
}

const METHOD = /^[A-Za-z]{1,32}$/;
const HEADER = /^[A-Za-z0-9_-]{1,128}$/;
const EXPOSE_HEADER = /^(\*|[A-Za-z0-9_-]{1,128})$/;
// Printable ASCII without '"' and '\' (nginx copies the realm between quotes into
// WWW-Authenticate) and without "$" (auth_basic's value interpolates variables).
const REALM = /^[\x20\x21\x23\x25-\x5b\x5d-\x7e]{1,200}$/;

/**
 * Parses every annotation under the prefix. Throws InvalidValue for a value that does not parse;
 * returns notes (reported as partial rejections) for annotations that have no effect.
 */
export function parseAnnotations(given: Record<string, unknown>, ctx: { namespace: string; tlsEnabled: boolean; allowSnippets?: boolean }): { annotations: IngressAnnotations; notes: string[] } {
  const r = new Reader(given);
  const notes: string[] = [];
  const noEffect = (name: string, why: string) => {
    if (r.has(name)) notes.push(`annotation ${name} has no effect: ${why}`);
  };

  const a: IngressAnnotations = { ...NO_ANNOTATIONS, allow: [], deny: [], denied: [] };
  a.sslRedirect = r.bool(SSL_REDIRECT_ANNOTATION) ?? null;
  a.forceSslRedirect = r.bool(FORCE_SSL_REDIRECT_ANNOTATION) ?? false;
  a.preserveTrailingSlash = r.bool(PRESERVE_TRAILING_SLASH) ?? false;
  if (!ctx.tlsEnabled) {
    noEffect(SSL_REDIRECT_ANNOTATION, 'TLS is not enabled in this sidecar');
    noEffect(FORCE_SSL_REDIRECT_ANNOTATION, 'TLS is not enabled in this sidecar');
    noEffect(PRESERVE_TRAILING_SLASH, 'TLS is not enabled in this sidecar');
  }

  const size = (name: string, opts?: { min?: number; max?: number }) => {
    const v = r.string(name);
    return v === undefined ? null : parseSize(name, v, opts);
  };
  const seconds = (name: string) => {
    const v = r.string(name);
    return v === undefined ? null : parseSeconds(name, v);
  };
  a.bodySize = size(PROXY_BODY_SIZE);
  a.connectTimeout = seconds(PROXY_CONNECT_TIMEOUT);
  a.sendTimeout = seconds(PROXY_SEND_TIMEOUT);
  a.readTimeout = seconds(PROXY_READ_TIMEOUT);
  const buffering = r.string(PROXY_BUFFERING);
  if (buffering !== undefined) {
    const v = buffering.toLowerCase();
    if (v !== 'on' && v !== 'off') throw fail(PROXY_BUFFERING, buffering, 'must be "on" or "off"');
    a.buffering = v === 'on';
  }
  a.bufferSize = size(PROXY_BUFFER_SIZE, { min: 1, max: MAX_PROXY_BUFFER_SIZE });

  const target = r.string(REWRITE_TARGET);
  a.rewriteTarget = target === undefined ? null : parseRewriteTarget(REWRITE_TARGET, target);
  // ingress-nginx: rewrite-target implies use-regex.
  a.useRegex = (r.bool(USE_REGEX) ?? false) || a.rewriteTarget !== null;
  const appRoot = r.string(APP_ROOT);
  a.appRoot = appRoot === undefined ? null : parseRedirectPath(APP_ROOT, appRoot);
  const prefix = r.string(X_FORWARDED_PREFIX);
  if (prefix !== undefined) {
    // ingress-nginx's grammar for it (BasicCharsRegex); it becomes a request header's value.
    if (!/^[A-Za-z0-9\-._~:/]{1,1024}$/.test(prefix)) throw fail(X_FORWARDED_PREFIX, prefix, 'may contain only letters, digits, "-", ".", "_", "~", ":" and "/"');
    a.xForwardedPrefix = prefix;
  }

  // ingress-nginx: temporal-redirect wins over permanent-redirect.
  const temporal = r.string(TEMPORAL_REDIRECT);
  const permanent = r.string(PERMANENT_REDIRECT);
  const temporalCode = r.string(TEMPORAL_REDIRECT_CODE);
  const permanentCode = r.string(PERMANENT_REDIRECT_CODE);
  const tCode = temporalCode === undefined ? 302 : parseRedirectCode(TEMPORAL_REDIRECT_CODE, temporalCode);
  const pCode = permanentCode === undefined ? 301 : parseRedirectCode(PERMANENT_REDIRECT_CODE, permanentCode);
  const tUrl = temporal === undefined ? null : parseRedirectUrl(TEMPORAL_REDIRECT, temporal);
  const pUrl = permanent === undefined ? null : parseRedirectUrl(PERMANENT_REDIRECT, permanent);
  if (tUrl) {
    a.redirect = { code: tCode, url: tUrl };
    noEffect(PERMANENT_REDIRECT, `${TEMPORAL_REDIRECT} takes precedence, as in ingress-nginx`);
    noEffect(PERMANENT_REDIRECT_CODE, `${TEMPORAL_REDIRECT} takes precedence, as in ingress-nginx`);
  } else if (pUrl) {
    a.redirect = { code: pCode, url: pUrl };
    noEffect(TEMPORAL_REDIRECT_CODE, `${TEMPORAL_REDIRECT} is not set`);
  } else {
    noEffect(TEMPORAL_REDIRECT_CODE, `${TEMPORAL_REDIRECT} is not set`);
    noEffect(PERMANENT_REDIRECT_CODE, `${PERMANENT_REDIRECT} is not set`);
  }

  const allow = r.string(ALLOWLIST_SOURCE_RANGE);
  const whitelist = r.string(WHITELIST_SOURCE_RANGE);
  if (allow !== undefined) {
    a.allow = parseCidrs(ALLOWLIST_SOURCE_RANGE, allow);
    if (whitelist !== undefined) {
      parseCidrs(WHITELIST_SOURCE_RANGE, whitelist);
      noEffect(WHITELIST_SOURCE_RANGE, `${ALLOWLIST_SOURCE_RANGE}, its newer name, is set too and wins`);
    }
  } else if (whitelist !== undefined) {
    a.allow = parseCidrs(WHITELIST_SOURCE_RANGE, whitelist);
  }
  const deny = r.string(DENYLIST_SOURCE_RANGE);
  if (deny !== undefined) a.deny = parseCidrs(DENYLIST_SOURCE_RANGE, deny);

  const cors = r.bool(ENABLE_CORS) ?? false;
  const origins = r.string(CORS_ALLOW_ORIGIN);
  const methods = r.string(CORS_ALLOW_METHODS);
  const headers = r.string(CORS_ALLOW_HEADERS);
  const expose = r.string(CORS_EXPOSE_HEADERS);
  const credentials = r.bool(CORS_ALLOW_CREDENTIALS);
  const maxAge = r.string(CORS_MAX_AGE);
  const corsConfig: CorsConfig = {
    origins: origins === undefined ? null : parseCorsOrigins(CORS_ALLOW_ORIGIN, origins),
    methods: methods === undefined ? DEFAULT_CORS_METHODS : [...new Set(parseTokens(CORS_ALLOW_METHODS, methods, METHOD, 'an HTTP method').map((m) => m.toUpperCase()))],
    headers: headers === undefined ? DEFAULT_CORS_HEADERS : parseTokens(CORS_ALLOW_HEADERS, headers, HEADER, 'a header name'),
    exposeHeaders: expose === undefined ? [] : parseTokens(CORS_EXPOSE_HEADERS, expose, EXPOSE_HEADER, 'a header name or "*"'),
    credentials: credentials ?? true,
    maxAge: maxAge === undefined ? DEFAULT_CORS_MAX_AGE : parseInteger(CORS_MAX_AGE, maxAge, 0, 2_147_483_647),
  };
  if (cors) a.cors = corsConfig;
  else {
    for (const n of [CORS_ALLOW_ORIGIN, CORS_ALLOW_METHODS, CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CORS_ALLOW_CREDENTIALS, CORS_MAX_AGE]) {
      noEffect(n, `${ENABLE_CORS} is not "true"`);
    }
  }

  const rps = r.string(LIMIT_RPS);
  const rpm = r.string(LIMIT_RPM);
  const burst = r.string(LIMIT_BURST_MULTIPLIER);
  const conns = r.string(LIMIT_CONNECTIONS);
  // As in ingress-nginx, 0 means no limit. nginx refuses 65536 connections or more.
  a.limitRps = rps === undefined ? null : parseInteger(LIMIT_RPS, rps, 0, 1_000_000) || null;
  a.limitRpm = rpm === undefined ? null : parseInteger(LIMIT_RPM, rpm, 0, 60_000_000) || null;
  a.limitBurstMultiplier = burst === undefined ? DEFAULT_LIMIT_BURST_MULTIPLIER : parseInteger(LIMIT_BURST_MULTIPLIER, burst, 1, 1000);
  a.limitConnections = conns === undefined ? null : parseInteger(LIMIT_CONNECTIONS, conns, 0, 65_535) || null;
  if (a.limitRps === null && a.limitRpm === null) noEffect(LIMIT_BURST_MULTIPLIER, `neither ${LIMIT_RPS} nor ${LIMIT_RPM} is set`);

  const protocol = r.string(BACKEND_PROTOCOL);
  if (protocol !== undefined) {
    const v = protocol.toUpperCase();
    if (v === 'AUTO_HTTP' || v === 'FCGI') throw fail(BACKEND_PROTOCOL, protocol, 'is not supported: use HTTP, HTTPS, GRPC or GRPCS');
    if (v !== 'HTTP' && v !== 'HTTPS' && v !== 'GRPC' && v !== 'GRPCS') throw fail(BACKEND_PROTOCOL, protocol, 'must be HTTP, HTTPS, GRPC or GRPCS');
    a.backendProtocol = v;
  }

  const authType = r.string(AUTH_TYPE);
  const authSecret = r.string(AUTH_SECRET);
  const authSecretType = r.string(AUTH_SECRET_TYPE);
  const authRealm = r.string(AUTH_REALM);
  if (authSecretType !== undefined && authSecretType !== 'auth-file' && authSecretType !== 'auth-map') {
    throw fail(AUTH_SECRET_TYPE, authSecretType, 'must be "auth-file" or "auth-map"');
  }
  if (authRealm !== undefined && (!REALM.test(authRealm) || authRealm.toLowerCase() === 'off')) {
    throw fail(AUTH_REALM, authRealm, 'must be up to 200 printable ASCII characters without \'"\', "\\" and "$", and not "off"');
  }
  if (authType !== undefined) {
    if (authType === 'digest') throw fail(AUTH_TYPE, authType, 'is not supported: stock nginx has no digest authentication');
    if (authType !== 'basic') throw fail(AUTH_TYPE, authType, 'must be "basic"');
    if (authSecret === undefined) throw new InvalidValue(`annotation ${AUTH_TYPE} is "basic" but ${AUTH_SECRET} is not set`);
    a.auth = { secret: parseAuthSecret(authSecret, ctx.namespace), secretType: authSecretType ?? 'auth-file', realm: authRealm ?? DEFAULT_AUTH_REALM };
  } else {
    for (const n of [AUTH_SECRET, AUTH_SECRET_TYPE, AUTH_REALM]) noEffect(n, `${AUTH_TYPE} is not set`);
  }

  parseRouting(r, a, notes, ctx.namespace);
  if (ctx.allowSnippets) {
    const location = r.string(CONFIGURATION_SNIPPET);
    const server = r.string(SERVER_SNIPPET);
    a.configurationSnippet = location === undefined ? null : parseSnippet(CONFIGURATION_SNIPPET, location, 'location');
    a.serverSnippet = server === undefined ? null : parseSnippet(SERVER_SNIPPET, server, 'server');
  }

  for (const name of Object.keys(given)) {
    if (!name.startsWith(ANNOTATION_PREFIX)) continue;
    if (ctx.allowSnippets && (name === CONFIGURATION_SNIPPET || name === SERVER_SNIPPET)) continue;
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

// Variables upstream-hash-by may name: request properties that nginx computes per request. The
// prefixed families read one header, cookie or query argument.
const HASH_VARIABLES = new Set(['request_uri', 'uri', 'document_uri', 'args', 'query_string', 'remote_addr', 'binary_remote_addr', 'host', 'http_host', 'request_method', 'scheme', 'server_name']);
const HASH_VARIABLE_FAMILY = /^(http_[a-z0-9_]{1,64}|cookie_[A-Za-z0-9_]{1,64}|arg_[A-Za-z0-9_]{1,64})$/;
/** A cookie name nginx can read as `$cookie_<name>`: its variable names end at any other character. */
const COOKIE_NAME = /^[A-Za-z0-9_]{1,64}$/;
/** An HTTP header name (RFC 9110 token, the common subset). */
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
/** A canary-by-header-value: matched exactly, case-sensitively. */
const HEADER_VALUE = /^[A-Za-z0-9._~:/+=@-]{1,256}$/;
/** A cookie Path attribute: URL path characters without ";" and "," (they end the attribute) and "$". */
export const COOKIE_PATH = /^\/[A-Za-z0-9\-._~!&'()*+=:@/%]{0,1023}$/;

/** upstream-hash-by: literal text and variables from HASH_VARIABLES, canonicalised as `${name}`. */
export function parseHashBy(name: string, value: string): string {
  if (value.length > 512) throw fail(name, value, 'is longer than 512 characters');
  let out = '';
  let variables = 0;
  const re = /\$(?:([A-Za-z0-9_]+)|\{([A-Za-z0-9_]+)\})|([A-Za-z0-9_.:/-]+)/y;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m) throw fail(name, value, 'may contain only nginx variables and letters, digits, "_", ".", ":", "/" and "-"');
    if (m[3] !== undefined) out += m[3];
    else {
      const v = m[1] ?? m[2] ?? '';
      if (!HASH_VARIABLES.has(v) && !HASH_VARIABLE_FAMILY.test(v)) {
        throw fail(name, value, `uses $${v.slice(0, 40)}; allowed are $${[...HASH_VARIABLES].join(', $')}, $http_<header>, $cookie_<name> and $arg_<name>`);
      }
      out += `\${${v}}`;
      variables++;
    }
    at = re.lastIndex;
  }
  if (variables === 0) throw fail(name, value, 'names no variable: every request would go to the same endpoint');
  return out;
}

/** mirror-target: http(s)://host[:port][/path], the path may use $request_uri. */
export function parseMirrorTarget(name: string, value: string): MirrorTarget {
  if (value.length > 2048) throw fail(name, value, 'is longer than 2048 characters');
  const m = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(.*)$/.exec(value);
  if (!m) throw fail(name, value, 'must be an http:// or https:// URL');
  const scheme = m[1]!.toLowerCase() as 'http' | 'https';
  // Canonical forms only, never the pod itself or a metadata service (src/annotations/addresses.ts says why).
  const { host } = parseTargetHost(m[2]!, (reason) => fail(name, value, `host ${JSON.stringify(m[2]!.slice(0, 100))} ${reason}`));
  const port = m[3] === undefined ? (scheme === 'https' ? 443 : 80) : Number(m[3]);
  if (!(port >= 1 && port <= 65535)) throw fail(name, value, 'has a port outside 1-65535');
  const rest = m[4] ?? '';
  const path: MirrorTarget['path'] = [];
  if (rest !== '') {
    if (!rest.startsWith('/') && !rest.startsWith('$')) throw fail(name, value, 'must have a path starting with "/" or $request_uri after the host');
    const re = /\$(?:request_uri|\{request_uri\})|((?:[A-Za-z0-9\-._~:/?@!&'()*+,;=]|%[0-9A-Fa-f]{2})+)/y;
    let at = 0;
    while (at < rest.length) {
      re.lastIndex = at;
      const t = re.exec(rest);
      if (!t) throw fail(name, value, 'may contain only URL characters and the variable $request_uri after the host');
      path.push(t[1] !== undefined ? { text: t[1] } : { variable: 'request_uri' });
      at = re.lastIndex;
    }
  }
  return { scheme, host, port, path };
}

/** The annotations that pick endpoints and backends: load balancing, affinity, canary, mirroring, errors. */
function parseRouting(r: Reader, a: IngressAnnotations, notes: string[], namespace: string): void {
  const noEffect = (name: string, why: string) => {
    if (r.has(name)) notes.push(`annotation ${name} has no effect: ${why}`);
  };
  const lb = r.string(LOAD_BALANCE);
  if (lb !== undefined) {
    if (lb !== 'round_robin' && lb !== 'ewma') throw fail(LOAD_BALANCE, lb, 'must be "round_robin" or "ewma"');
    a.loadBalance = lb;
  }
  const hashBy = r.string(UPSTREAM_HASH_BY);
  a.hashBy = hashBy === undefined ? null : parseHashBy(UPSTREAM_HASH_BY, hashBy);

  const affinity = r.string(AFFINITY);
  const cookieName = r.string(SESSION_COOKIE_NAME);
  const cookiePath = r.string(SESSION_COOKIE_PATH);
  const maxAge = r.string(SESSION_COOKIE_MAX_AGE);
  const sameSite = r.string(SESSION_COOKIE_SAMESITE);
  const secure = r.bool(SESSION_COOKIE_SECURE);
  if (cookieName !== undefined && !COOKIE_NAME.test(cookieName)) throw fail(SESSION_COOKIE_NAME, cookieName, 'may contain only letters, digits and "_" (up to 64): nginx reads cookies by such names');
  if (cookiePath !== undefined && !COOKIE_PATH.test(cookiePath)) throw fail(SESSION_COOKIE_PATH, cookiePath, 'must be a URL path without ";", "," and "$"');
  const sameSiteValue = sameSite === undefined ? null : ({ strict: 'Strict', lax: 'Lax', none: 'None' } as const)[sameSite.toLowerCase() as 'strict' | 'lax' | 'none'];
  if (sameSiteValue === undefined) throw fail(SESSION_COOKIE_SAMESITE, sameSite ?? '', 'must be "Strict", "Lax" or "None"');
  const maxAgeValue = maxAge === undefined ? null : parseInteger(SESSION_COOKIE_MAX_AGE, maxAge, 0, 2_147_483_647);
  if (affinity !== undefined) {
    if (affinity !== 'cookie') throw fail(AFFINITY, affinity, 'must be "cookie"');
    a.affinity = { cookie: cookieName ?? DEFAULT_SESSION_COOKIE_NAME, path: cookiePath ?? null, maxAge: maxAgeValue, sameSite: sameSiteValue, secure: secure ?? false };
  } else {
    for (const n of [SESSION_COOKIE_NAME, SESSION_COOKIE_PATH, SESSION_COOKIE_MAX_AGE, SESSION_COOKIE_SAMESITE, SESSION_COOKIE_SECURE]) noEffect(n, `${AFFINITY} is not set`);
  }
  // ingress-nginx: the sticky balancer wins over upstream-hash-by, which wins over load-balance.
  if (a.affinity) {
    noEffect(UPSTREAM_HASH_BY, `${AFFINITY} takes precedence`);
    noEffect(LOAD_BALANCE, `${AFFINITY} takes precedence`);
  } else if (a.hashBy !== null) {
    noEffect(LOAD_BALANCE, `${UPSTREAM_HASH_BY} takes precedence`);
  }

  const canary = r.bool(CANARY) ?? false;
  const header = r.string(CANARY_BY_HEADER);
  const headerValue = r.string(CANARY_BY_HEADER_VALUE);
  const cookie = r.string(CANARY_BY_COOKIE);
  const weight = r.string(CANARY_WEIGHT);
  const total = r.string(CANARY_WEIGHT_TOTAL);
  if (header !== undefined && !HEADER_NAME.test(header)) throw fail(CANARY_BY_HEADER, header, 'is not a header name (letters, digits and "-")');
  if (headerValue !== undefined && !HEADER_VALUE.test(headerValue)) throw fail(CANARY_BY_HEADER_VALUE, headerValue, 'may contain only letters, digits and "._~:/+=@-" (up to 256)');
  if (cookie !== undefined && !COOKIE_NAME.test(cookie)) throw fail(CANARY_BY_COOKIE, cookie, 'may contain only letters, digits and "_" (up to 64): nginx reads cookies by such names');
  const totalValue = total === undefined ? DEFAULT_CANARY_WEIGHT_TOTAL : parseInteger(CANARY_WEIGHT_TOTAL, total, 1, 1_000_000);
  const weightValue = weight === undefined ? 0 : parseInteger(CANARY_WEIGHT, weight, 0, totalValue);
  if (canary) {
    a.canary = { header: header === undefined ? null : { name: header, value: headerValue ?? null }, cookie: cookie ?? null, weight: weightValue, total: totalValue };
    if (header === undefined) noEffect(CANARY_BY_HEADER_VALUE, `${CANARY_BY_HEADER} is not set`);
  } else {
    for (const n of CANARY_ANNOTATIONS) if (n !== CANARY) noEffect(n, `${CANARY} is not "true"`);
  }

  a.serviceUpstream = r.bool(SERVICE_UPSTREAM) ?? false;
  const mirror = r.string(MIRROR_TARGET);
  const mirrorBody = r.string(MIRROR_REQUEST_BODY);
  let body = true;
  if (mirrorBody !== undefined) {
    const v = mirrorBody.toLowerCase();
    if (v !== 'on' && v !== 'off') throw fail(MIRROR_REQUEST_BODY, mirrorBody, 'must be "on" or "off"');
    body = v === 'on';
  }
  if (mirror !== undefined) a.mirror = { target: parseMirrorTarget(MIRROR_TARGET, mirror), body };
  else noEffect(MIRROR_REQUEST_BODY, `${MIRROR_TARGET} is not set`);

  const errors = r.string(CUSTOM_HTTP_ERRORS);
  if (errors !== undefined) {
    a.customErrors = [...new Set(items(CUSTOM_HTTP_ERRORS, errors).map((c) => parseErrorCode(CUSTOM_HTTP_ERRORS, c)))].sort((x, y) => x - y);
  }
  const defaultBackend = r.string(DEFAULT_BACKEND);
  if (defaultBackend !== undefined) {
    try {
      a.defaultBackend = checkObjectName('Service', defaultBackend, 'label1035');
    } catch (err) {
      if (err instanceof InvalidValue) throw fail(DEFAULT_BACKEND, defaultBackend, `is not the name of a Service (in the Ingress's namespace, ${namespace})`);
      throw err;
    }
  }
}

/** auth-secret: `name` or `namespace/name`, and only in the Ingress's own namespace. */
function parseAuthSecret(value: string, namespace: string): string {
  const parts = value.split('/');
  if (parts.length > 2) throw fail(AUTH_SECRET, value, 'is not NAME or NAMESPACE/NAME');
  const [ns, name] = parts.length === 2 ? parts : [namespace, parts[0]];
  try {
    checkObjectName('namespace', ns, 'label');
    checkObjectName('Secret', name, 'subdomain');
  } catch (err) {
    if (err instanceof InvalidValue) throw fail(AUTH_SECRET, value, 'is not NAME or NAMESPACE/NAME of a Secret');
    throw err;
  }
  if (ns !== namespace) throw fail(AUTH_SECRET, value, `names a Secret in another namespace; only the Ingress's own (${namespace}) is read`);
  return `${ns}/${name}`;
}

// ---------------------------------------------------------------------------------------------
// Regular-expression paths (use-regex)

/**
 * An ImplementationSpecific path of an Ingress with use-regex (or rewrite-target): a regular
 * expression that nginx anchors at the start and matches case-insensitively, as ingress-nginx's
 * `location ~* "^PATH"`. A narrow subset of PCRE that JavaScript parses the same way: no `(?`
 * (named groups would set nginx variables; no inline options or lookaround), no backslash
 * escapes beyond \d \w \s \b and escaped punctuation, no POSIX classes, bounded repetition.
 */
export function parseRegexPath(raw: string): string {
  const why = (reason: string) => new InvalidValue(`path ${shown(raw)} (a regular expression: use-regex): ${reason}`);
  if (!raw.startsWith('/')) throw why('must start with "/"');
  if (raw.length > 1024) throw why('is longer than 1024 characters');
  if (raw.includes('(?')) throw why('must not contain "(?": named groups, inline options and lookaround are not allowed');
  if (!/^[A-Za-z0-9\-._~!&'*+,;=:@%/()[\]{}|?^$\\]+$/.test(raw)) throw why('may contain only URL path characters and ( ) [ ] { } | ? ^ $ \\');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '\\') continue;
    const next = raw[i + 1];
    if (next === undefined || !/[dDwWsSbB.\-/()[\]{}|?*+^$\\]/.test(next)) throw why('may escape only punctuation and d, D, w, W, s, S, b, B with "\\"');
    i++;
  }
  if (/\[\^?\]/.test(raw)) throw why('has an empty character class');
  if (/\[([.:=])[^\]]*\1\]/.test(raw)) throw why('must not use POSIX classes ([:alpha:] and the like)');
  for (const m of raw.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
    if (Number(m[1]) > 1000 || (m[2] !== undefined && m[2] !== '' && Number(m[2]) > 1000)) throw why('repeats more than 1000 times');
  }
  try {
    new RegExp(raw);
  } catch (err) {
    throw why(`is not a valid regular expression (${(err as Error).message.replace(/^Invalid regular expression: /, '').slice(0, 100)})`);
  }
  const pcre = pcreProblem(raw);
  if (pcre !== null) throw why(pcre);
  return raw;
}

// PCRE2 compiles a pattern into at most 64K code units (the default LINK_SIZE); beyond that nginx
// refuses the whole config ("regular expression is too large"). This is an estimate in those
// units, on the high side (measured with nginx -t: ((ab){70}){70} compiles, ((ab){80}){80} does not).
const MAX_PCRE_UNITS = 40_000;

/**
 * Where PCRE2 (which nginx compiles the regex with) reads a pattern that JavaScript's RegExp
 * accepts differently or not at all: a class range with a class escape as an endpoint ("[\d-z]":
 * a literal "-" to JavaScript, "invalid range in character class" to PCRE2), \B in a class, a "{"
 * or "}" that is not part of a complete {n}, {n,} or {n,m} ("{,3}" is a quantifier in PCRE2 10.43
 * and later, a literal to JavaScript), and group repetitions that compile too large. The one npm
 * PCRE2 binding found (`pcre2` 0.1.1, a single release, a native addon to build against libpcre2)
 * is not one to depend on, so the subset is narrowed to what both engines read alike.
 */
function pcreProblem(raw: string): string | null {
  type Frame = { size: number; last: number };
  const stack: Frame[] = [{ size: 0, last: 0 }];
  const top = () => stack[stack.length - 1]!;
  const atom = (units: number) => {
    top().size += units;
    top().last = units;
  };
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\\') {
      i++;
      atom(2);
    } else if (c === '[') {
      // A class: items are single characters, escapes, or ranges between two of them.
      let j = i + 1;
      if (raw[j] === '^') j++;
      // A "-" first in the class is a literal ("[]" and "[^]" were refused before).
      const itemsStart = j;
      let prevClassEscape = false;
      for (; j < raw.length && raw[j] !== ']'; j++) {
        const d = raw[j]!;
        if (d === '\\') {
          const e = raw[j + 1] ?? '';
          if (e === 'B') return 'uses \\B in a character class, which PCRE2 refuses';
          const classEscape = /[dDwWsS]/.test(e);
          if (classEscape && raw[j - 1] === '-' && j - 1 > itemsStart) {
            return 'has a range in a character class ending in \\d, \\w or \\s ("[a-\\d]"), which PCRE2 refuses; put "-" first or last in the class';
          }
          prevClassEscape = classEscape;
          j++;
          continue;
        }
        if (d === '-' && prevClassEscape && raw[j + 1] !== ']') {
          return 'has a range in a character class starting at \\d, \\w or \\s ("[\\d-z]"), which PCRE2 refuses; put "-" first or last in the class';
        }
        prevClassEscape = false;
      }
      i = j;
      atom(2);
    } else if (c === '(') {
      stack.push({ size: 6, last: 0 });
    } else if (c === ')') {
      const f = stack.length > 1 ? stack.pop()! : top();
      atom(f.size);
    } else if (c === '|') {
      top().size += 3;
      top().last = 0;
    } else if (c === '{') {
      const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(raw.slice(i));
      if (!m || top().last === 0) return 'has a "{" that does not start a repetition {n}, {n,} or {n,m} after something to repeat; escape it as "\\{"';
      const n = Number(m[1]);
      const copies = m[2] === undefined ? n : m[3] === '' ? n + 1 : Math.max(n, Number(m[3]));
      const f = top();
      // A single character or class repeats in one instruction; a group is copied.
      if (f.last > 2) f.size += f.last * (Math.max(copies, 1) - 1);
      f.size += 2;
      f.last = 0;
      i += m[0].length - 1;
    } else if (c === '}') {
      return 'has a "}" that does not end a repetition; escape it as "\\}"';
    } else if (c === '*' || c === '+' || c === '?') {
      top().size += 2;
    } else {
      atom(2);
    }
    if (top().size > MAX_PCRE_UNITS) return 'repeats its groups so often that PCRE2 would refuse it as too large';
  }
  let total = 0;
  for (const f of stack) total += f.size;
  return total > MAX_PCRE_UNITS ? 'repeats its groups so often that PCRE2 would refuse it as too large' : null;
}

/** A literal as a PCRE pattern: every ASCII character but letters, digits, "/", "_" and "-" escaped. */
export function regexLiteral(text: string): string {
  return text.replace(/[^A-Za-z0-9/_-]/g, (c) => (c.charCodeAt(0) < 0x80 ? `\\${c}` : c));
}
