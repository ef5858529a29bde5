// enable-cors and cors-*: CORS headers, and for a list of allowed origins a map at http level
// that says whether a request's Origin is one of them.

import type { CorsMap } from '../model.ts';
import { tokenFits } from '../nginx/quote.ts';
import { regexLiteral } from './regex-path.ts';
import { annotation, digest, fail, items, type GroupInput } from './values.ts';

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

// Defaults, as ingress-nginx's cors parser writes them (the methods with spaces, the headers without).
export const DEFAULT_CORS_METHODS = 'GET, PUT, POST, DELETE, PATCH, OPTIONS';
export const DEFAULT_CORS_HEADERS =
  'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization';
export const DEFAULT_CORS_MAX_AGE = '1728000';

/**
 * An allowed CORS origin: `null` (the Origin browsers send from opaque origins), or a lower-case
 * scheme, a host (with `wildcard`, any one more label in front) and an optional port, as written.
 */
export type CorsOrigin =
  { null: true } | { null?: false; scheme: string; host: string; wildcard: boolean; port: string | null };

export interface CorsConfig {
  /** null: any origin (`*`). */
  origins: CorsOrigin[] | null;
  /** The header values, as written in the annotation (trimmed), or ingress-nginx's defaults. */
  methods: string;
  headers: string;
  /** null: no Access-Control-Expose-Headers. */
  exposeHeaders: string | null;
  credentials: boolean;
  /** A whole number as Go's strconv.Atoi reads it, in decimal ("+5" is "5"). */
  maxAge: string;
}

export interface CorsAnnotations {
  cors: CorsConfig | null;
}

export const NO_CORS_ANNOTATIONS: Readonly<CorsAnnotations> = Object.freeze({ cors: null });

// ingress-nginx's grammars (internal/ingress/annotations/cors/main.go), checked on the trimmed value
// that it sends as written. Its `([A-Za-z]+,?\s?)+` is written here without nested quantifiers (the
// same language: words separated by ",", " " or ", ", then an optional ","), and `\s` is a space only:
// a tab or a line break never reaches nginx.conf. Words of methods are letters; of expose-headers
// letters, digits, "_", "-" and "*" (its `[A-Za-z0-9\-\_]+|\*`, repeated without a separator).
const METHODS = /^[A-Za-z]+(?:(?:, ?| )[A-Za-z]+)*,?$/;
const EXPOSE_HEADERS = /^[A-Za-z0-9_*-]+(?:(?:, ?| )[A-Za-z0-9_*-]+)*,?$/;
// parser.HeadersVariable: letters, digits, "-", "_", "," and spaces, in any order.
const HEADERS = /^[A-Za-z0-9_, -]+$/;
// Go's strconv.Atoi on 64 bits.
const ATOI = /^[+-]?\d+$/;
const INT64_MAX = 2n ** 63n - 1n;

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
        : headerValue(
            CORS_ALLOW_METHODS,
            methods,
            METHODS,
            'is not a list of HTTP methods (letters, separated by ",")',
          ),
    headers:
      headers === undefined
        ? DEFAULT_CORS_HEADERS
        : headerValue(
            CORS_ALLOW_HEADERS,
            headers,
            HEADERS,
            'is not a list of header names (letters, digits, "-" and "_", separated by ",")',
          ),
    exposeHeaders:
      expose === undefined
        ? null
        : headerValue(
            CORS_EXPOSE_HEADERS,
            expose,
            EXPOSE_HEADERS,
            'is not a list of header names or "*" (letters, digits, "-" and "_", separated by ",")',
          ),
    credentials: credentials ?? true,
    maxAge: maxAge === undefined ? DEFAULT_CORS_MAX_AGE : parseAtoi(CORS_MAX_AGE, maxAge),
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

/** A header value sent as written: the whole (trimmed) value in `grammar`, and one nginx token. */
function headerValue(name: string, value: string, grammar: RegExp, why: string): string {
  if (!grammar.test(value)) throw fail(name, value, why);
  if (!tokenFits(value)) throw fail(name, value, 'is too long: nginx refuses a header value of 4096 bytes or more');
  return value;
}

function parseAtoi(name: string, value: string): string {
  const n = ATOI.test(value) ? BigInt(value) : null;
  if (n === null || n > INT64_MAX || n < -INT64_MAX - 1n) throw fail(name, value, 'is not a whole number (seconds)');
  return n.toString();
}

const ORIGIN = /^([a-z]+):\/\/(\*\.)?([A-Za-z0-9.-]*)(?::(\d+))?$/;

/**
 * cors-allow-origin: a comma-separated list; "*" anywhere in it means any origin (as in
 * ingress-nginx), null then. Empty items are dropped, as ingress-nginx drops them.
 */
export function parseCorsOrigins(name: string, value: string): CorsOrigin[] | null {
  const list = items(name, value);
  if (list.includes('*')) return null;
  const origins = list.map((o): CorsOrigin => {
    if (o === 'null') return { null: true };
    const m = ORIGIN.exec(o);
    if (!m) {
      throw fail(
        name,
        o,
        /^(\*\.)?[A-Za-z0-9.-]*(:\d+)?$/.test(o)
          ? 'has no scheme: ingress-nginx skips such an origin (allowing fewer than asked); write scheme://host[:port]'
          : 'is not an origin: "*", "null", or scheme://host[:port] (a lower-case scheme), where host may start with "*."',
      );
    }
    return { scheme: m[1]!, host: m[3]!.toLowerCase(), wildcard: m[2] !== undefined, port: m[4] ?? null };
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

/**
 * The regex that matches any of `origins` (the pattern of a CorsMaps map), matched
 * case-insensitively. Anchored at both ends: ingress-nginx anchors only the end.
 */
export function corsOriginPattern(origins: CorsOrigin[]): string {
  const alternatives = origins.map((o) =>
    o.null
      ? 'null'
      : `${o.scheme}://${o.wildcard ? '[a-z0-9-]+\\.' : ''}${regexLiteral(o.host)}${o.port === null ? '' : `:${o.port}`}`,
  );
  return `^(${[...new Set(alternatives)].join('|')})$`;
}

/**
 * A CORS response header of a location: with any origin, the text sent; with a list of origins,
 * the name (without `$`) of a model `corsMaps` value variable (that text for an allowed Origin).
 */
export type CorsHeader = { name: string; value: string } | { name: string; variable: string };

export interface LocationCors {
  /**
   * Any origin (`*`), or the names (without `$`) of the model's `corsMaps` variables: the origin
   * when the request's Origin is allowed (else empty), and "1" for a preflight from one.
   */
  origin: { any: true } | { variable: string; preflight: string };
  /** The headers ingress-nginx sets, in its order; the backend's own of these names are replaced. */
  headers: CorsHeader[];
}

export interface CorsSettings {
  cors: LocationCors | null;
}

export const DEFAULT_CORS_SETTINGS: Readonly<CorsSettings> = Object.freeze({ cors: null });

/** What ingress-nginx's template sends, header by header (null: the request's Origin). */
function corsHeaders(c: CorsConfig): Array<{ name: string; value: string | null }> {
  return [
    { name: 'Access-Control-Allow-Origin', value: c.origins === null ? '*' : null },
    ...(c.credentials ? [{ name: 'Access-Control-Allow-Credentials', value: 'true' }] : []),
    { name: 'Access-Control-Allow-Methods', value: c.methods },
    { name: 'Access-Control-Allow-Headers', value: c.headers },
    ...(c.exposeHeaders === null ? [] : [{ name: 'Access-Control-Expose-Headers', value: c.exposeHeaders }]),
    { name: 'Access-Control-Max-Age', value: c.maxAge },
  ];
}

/** The upstream variable (without `$`) holding the backend's own `header`. */
export const upstreamHeaderVariable = (header: string) => `upstream_http_${header.toLowerCase().replaceAll('-', '_')}`;

/** The model variables a location's CORS settings name: its origin map's and its value maps'. */
export function corsVariables(c: LocationCors | null): string[] {
  if (!c || 'any' in c.origin) return [];
  return [c.origin.variable, ...c.headers.flatMap((h) => ('variable' in h ? [h.variable] : []))];
}

/** The origin maps the locations' CORS settings name: one per distinct list of origins. */
export class CorsMaps {
  private readonly byPattern = new Map<string, CorsMap>();
  private readonly taken = new Set<string>();

  settings(c: CorsConfig | null): CorsSettings {
    return { cors: c ? this.cors(c) : null };
  }

  private cors(c: CorsConfig): LocationCors {
    const headers = corsHeaders(c);
    if (c.origins === null)
      return { origin: { any: true }, headers: headers.map((h) => ({ name: h.name, value: h.value ?? '*' })) };
    const pattern = corsOriginPattern(c.origins);
    let map = this.byPattern.get(pattern);
    if (!map) {
      // Short names: nginx keeps variable names in a hash whose buckets are 64 bytes by default,
      // and long names need buckets of their own. 32 bits of digest, and never two patterns on one.
      const id = this.name('isc_cors_', pattern);
      map = { variable: `isc_cors_${id}`, preflight: `isc_cpf_${id}`, pattern, values: [] };
      this.taken.add(`isc_cpf_${id}`);
      this.byPattern.set(pattern, map);
    }
    const values = map.values;
    return {
      origin: { variable: map.variable, preflight: map.preflight },
      headers: headers.map((h) => {
        let v = values.find((x) => x.header === h.name && x.value === h.value);
        if (!v) {
          v = {
            variable: `isc_cv_${this.name('isc_cv_', `${pattern}\n${h.name}\n${h.value}`)}`,
            header: h.name,
            value: h.value,
          };
          values.push(v);
        }
        return { name: h.name, variable: v.variable };
      }),
    };
  }

  /** 8 hex digits of digest of `text`, such that `prefix` + them names nothing else yet (then taken). */
  private name(prefix: string, text: string): string {
    let id = digest(text, 8);
    for (let i = 1; this.taken.has(`${prefix}${id}`); i++) id = digest(`${text}\n${i}`, 8);
    this.taken.add(`${prefix}${id}`);
    return id;
  }

  /** The maps whose variables `used` names (and of those, the value maps `used` names), sorted. */
  collect(used: Set<string>): CorsMap[] {
    const byName = <T extends { variable: string }>(a: T, b: T) =>
      a.variable < b.variable ? -1 : a.variable > b.variable ? 1 : 0;
    return [...this.byPattern.values()]
      .filter((m) => used.has(m.variable))
      .map((m) => ({ ...m, values: m.values.filter((v) => used.has(v.variable)).sort(byName) }))
      .sort(byName);
  }
}

/** The main file's view of a CORS map; `derived` checks a derived variable name. */
export function corsMapView(m: CorsMap, derived: (name: string) => string) {
  return {
    variable: derived(m.variable),
    preflight: derived(m.preflight),
    pattern: `~*${m.pattern}`,
    values: m.values.map((v) => {
      const upstream = upstreamHeaderVariable(v.header);
      if (!/^upstream_http_[a-z_]+$/.test(upstream))
        throw new Error(`refusing to render header ${JSON.stringify(v.header)}`);
      return {
        source: derived(m.variable),
        variable: derived(v.variable),
        upstream,
        echo: v.value === null,
        value: v.value ?? '',
      };
    }),
  };
}

/** `derived` checks a derived variable name before the template writes it after a literal "$". */
export function corsView(s: CorsSettings, derived: (name: string) => string) {
  const cors = s.cors;
  return {
    cors: cors
      ? {
          preflight: 'any' in cors.origin ? '' : derived(cors.origin.preflight),
          headers: cors.headers.map((h) => ({
            name: h.name,
            value: 'value' in h ? h.value : `$${derived(h.variable)}`,
          })),
        }
      : null,
  };
}
