// enable-cors and cors-*: CORS headers, and for a list of allowed origins a map at http level
// that says whether a request's Origin is one of them.

import type { CorsMap } from '../model.ts';
import { isDnsSubdomain } from '../grammar.ts';
import { tokenFits } from '../nginx/quote.ts';
import { regexLiteral } from './regex-path.ts';
import { annotation, digest, fail, items, parseInteger, type GroupInput } from './values.ts';

export const ENABLE_CORS = annotation('enable-cors');
export const CORS_ALLOW_ORIGIN = annotation('cors-allow-origin');
export const CORS_ALLOW_METHODS = annotation('cors-allow-methods');
export const CORS_ALLOW_HEADERS = annotation('cors-allow-headers');
export const CORS_EXPOSE_HEADERS = annotation('cors-expose-headers');
export const CORS_ALLOW_CREDENTIALS = annotation('cors-allow-credentials');
export const CORS_MAX_AGE = annotation('cors-max-age');

export const CORS_ANNOTATIONS = [
  ENABLE_CORS,
  CORS_ALLOW_ORIGIN,
  CORS_ALLOW_METHODS,
  CORS_ALLOW_HEADERS,
  CORS_EXPOSE_HEADERS,
  CORS_ALLOW_CREDENTIALS,
  CORS_MAX_AGE,
];

// Defaults, as ingress-nginx documents them.
export const DEFAULT_CORS_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'];
export const DEFAULT_CORS_HEADERS = [
  'DNT',
  'Keep-Alive',
  'User-Agent',
  'X-Requested-With',
  'If-Modified-Since',
  'Cache-Control',
  'Content-Type',
  'Range',
  'Authorization',
];
export const DEFAULT_CORS_MAX_AGE = 1728000;

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

export interface CorsAnnotations {
  cors: CorsConfig | null;
}

export const NO_CORS_ANNOTATIONS: Readonly<CorsAnnotations> = Object.freeze({ cors: null });

const METHOD = /^[A-Za-z]{1,32}$/;
const HEADER = /^[A-Za-z0-9_-]{1,128}$/;
const EXPOSE_HEADER = /^(\*|[A-Za-z0-9_-]{1,128})$/;

export function parseCors({ r, noEffect }: GroupInput): CorsAnnotations {
  const cors = r.bool(ENABLE_CORS) ?? false;
  const origins = r.string(CORS_ALLOW_ORIGIN);
  const methods = r.string(CORS_ALLOW_METHODS);
  const headers = r.string(CORS_ALLOW_HEADERS);
  const expose = r.string(CORS_EXPOSE_HEADERS);
  const credentials = r.bool(CORS_ALLOW_CREDENTIALS);
  const maxAge = r.string(CORS_MAX_AGE);
  const corsConfig: CorsConfig = {
    origins: origins === undefined ? null : parseCorsOrigins(CORS_ALLOW_ORIGIN, origins),
    methods:
      methods === undefined
        ? DEFAULT_CORS_METHODS
        : [...new Set(parseTokens(CORS_ALLOW_METHODS, methods, METHOD, 'an HTTP method').map((m) => m.toUpperCase()))],
    headers:
      headers === undefined ? DEFAULT_CORS_HEADERS : parseTokens(CORS_ALLOW_HEADERS, headers, HEADER, 'a header name'),
    exposeHeaders:
      expose === undefined ? [] : parseTokens(CORS_EXPOSE_HEADERS, expose, EXPOSE_HEADER, 'a header name or "*"'),
    credentials: credentials ?? true,
    maxAge: maxAge === undefined ? DEFAULT_CORS_MAX_AGE : parseInteger(CORS_MAX_AGE, maxAge, 0, 2_147_483_647),
  };
  if (cors) return { cors: corsConfig };
  for (const n of [
    CORS_ALLOW_ORIGIN,
    CORS_ALLOW_METHODS,
    CORS_ALLOW_HEADERS,
    CORS_EXPOSE_HEADERS,
    CORS_ALLOW_CREDENTIALS,
    CORS_MAX_AGE,
  ]) {
    noEffect(n, `${ENABLE_CORS} is not "true"`);
  }
  return { cors: null };
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
  if (!tokenFits(`~*${corsOriginPattern(origins)}`))
    throw fail(
      name,
      value,
      'is too long: nginx reads the list as one pattern and refuses patterns of 4096 bytes or more; allow fewer origins, or one "*." wildcard for many hosts of a domain',
    );
  return origins;
}

/** The regex that matches any of `origins` (the pattern of a CorsMaps map). */
export function corsOriginPattern(origins: CorsOrigin[]): string {
  const alternatives = origins.map(
    (o) =>
      `${o.scheme}://${o.wildcard ? '[a-z0-9-]+\\.' : ''}${regexLiteral(o.host)}${o.port === null ? '' : `:${o.port}`}`,
  );
  return `^(${[...new Set(alternatives)].join('|')})$`;
}

function parseTokens(name: string, value: string, token: RegExp, what: string): string[] {
  const list = items(name, value);
  for (const t of list) if (!token.test(t)) throw fail(name, t, `is not ${what}`);
  const out = [...new Set(list)];
  // Rendered as one header value (one nginx token, limited to 4095 bytes), joined with ", ".
  if (!tokenFits(out.join(', ')))
    throw fail(name, value, 'is too long: nginx refuses a header value of 4096 bytes or more');
  return out;
}

export interface LocationCors {
  /**
   * Any origin (`*`), or the names (without `$`) of the model's `corsMaps` variables: the origin
   * when the request's Origin is allowed (else empty), and "1" for a preflight from one.
   */
  origin: { any: true } | { variable: string; preflight: string };
  credentials: boolean;
  /** Comma-separated header values, already validated tokens. */
  methods: string;
  headers: string;
  exposeHeaders: string | null;
  maxAge: number;
}

export interface CorsSettings {
  cors: LocationCors | null;
}

export const DEFAULT_CORS_SETTINGS: Readonly<CorsSettings> = Object.freeze({ cors: null });

/** The origin maps the locations' CORS settings name: one per distinct list of origins. */
export class CorsMaps {
  private readonly byPattern = new Map<string, CorsMap>();

  settings(c: CorsConfig | null): CorsSettings {
    return { cors: c ? this.cors(c) : null };
  }

  private cors(c: CorsConfig): LocationCors {
    const common = {
      credentials: c.credentials,
      methods: c.methods.join(', '),
      headers: c.headers.join(', '),
      exposeHeaders: c.exposeHeaders.length > 0 ? c.exposeHeaders.join(', ') : null,
      maxAge: c.maxAge,
    };
    if (c.origins === null) return { origin: { any: true }, ...common };
    const pattern = corsOriginPattern(c.origins);
    let map = this.byPattern.get(pattern);
    if (!map) {
      // Short names: nginx keeps variable names in a hash whose buckets are 64 bytes by default,
      // and long names need buckets of their own. 32 bits of digest, and never two patterns on one.
      const taken = new Set([...this.byPattern.values()].map((m) => m.variable));
      let id = digest(pattern, 8);
      for (let i = 1; taken.has(`isc_cors_${id}`); i++) id = digest(`${pattern}\n${i}`, 8);
      map = { variable: `isc_cors_${id}`, preflight: `isc_cpf_${id}`, pattern };
      this.byPattern.set(pattern, map);
    }
    return { origin: { variable: map.variable, preflight: map.preflight }, ...common };
  }

  /** The maps whose variables `used` names, sorted. */
  collect(used: Set<string>): CorsMap[] {
    return [...this.byPattern.values()]
      .filter((m) => used.has(m.variable))
      .sort((a, b) => (a.variable < b.variable ? -1 : a.variable > b.variable ? 1 : 0));
  }
}

/** `derived` checks a derived variable name before the template writes it after a literal "$". */
export function corsView(s: CorsSettings, derived: (name: string) => string) {
  const cors = s.cors;
  return {
    cors: cors
      ? {
          origin: 'any' in cors.origin ? '*' : `$${derived(cors.origin.variable)}`,
          preflight: 'any' in cors.origin ? '' : derived(cors.origin.preflight),
          credentials: cors.credentials,
          methods: cors.methods,
          headers: cors.headers,
          exposeHeaders: cors.exposeHeaders ?? '',
          maxAge: cors.maxAge,
        }
      : null,
  };
}
