// How requests spread over a Service's endpoints: load-balance, upstream-hash-by, affinity
// (cookie, with affinity-mode and session-cookie-*), service-upstream.
//
// affinity-mode balanced (ingress-nginx's default) is a consistent hash of a random key that the
// cookie carries, on every nginx. persistent is nginx's own sticky cookie (nginx >= 1.29.6): the
// cookie names the endpoint, so a session stays on it while it is ready and new endpoints take
// only new sessions. Older nginx cannot keep that promise: such an Ingress is not served.

import type { RoutingModel } from '../model.ts';
import { parseNginxVersion, versionAtLeast } from '../nginx/version.ts';
import { COOKIE_NAME, annotation, digest, fail, parseInteger, type GroupInput } from './values.ts';

export const LOAD_BALANCE = annotation('load-balance');
export const UPSTREAM_HASH_BY = annotation('upstream-hash-by');
export const AFFINITY = annotation('affinity');
export const AFFINITY_MODE = annotation('affinity-mode');
export const SESSION_COOKIE_NAME = annotation('session-cookie-name');
export const SESSION_COOKIE_PATH = annotation('session-cookie-path');
export const SESSION_COOKIE_MAX_AGE = annotation('session-cookie-max-age');
export const SESSION_COOKIE_SAMESITE = annotation('session-cookie-samesite');
export const SESSION_COOKIE_SECURE = annotation('session-cookie-secure');
export const SESSION_COOKIE_CHANGE_ON_FAILURE = annotation('session-cookie-change-on-failure');
export const SERVICE_UPSTREAM = annotation('service-upstream');

export const BALANCING_ANNOTATIONS = [
  LOAD_BALANCE,
  UPSTREAM_HASH_BY,
  AFFINITY,
  AFFINITY_MODE,
  SESSION_COOKIE_NAME,
  SESSION_COOKIE_PATH,
  SESSION_COOKIE_MAX_AGE,
  SESSION_COOKIE_SAMESITE,
  SESSION_COOKIE_SECURE,
  SESSION_COOKIE_CHANGE_ON_FAILURE,
  SERVICE_UPSTREAM,
];

/** As ingress-nginx documents it. */
export const DEFAULT_SESSION_COOKIE_NAME = 'INGRESSCOOKIE';

/** The first nginx whose open-source build has the sticky cookie (ngx_http_upstream_sticky_module; in the 1.30 stable line). */
export const STICKY_COOKIE_SINCE: readonly [number, number, number] = [1, 29, 6];

/** Whether nginx `version` (`nginx -v` text; absent or not understood: no) has `sticky cookie`. */
export function hasStickyCookie(version: string | undefined): boolean {
  const v = version === undefined ? null : parseNginxVersion(version);
  return v !== null && versionAtLeast(v, [...STICKY_COOKIE_SINCE]);
}

/**
 * `sticky cookie ... expires=` reads this one number of seconds as "max" and then sends
 * Max-Age=315360000 (NGX_HTTP_STICKY_COOKIE_MAX_EXPIRES): that Max-Age cannot be asked for.
 */
const STICKY_MAX_EXPIRES = 2_145_916_555;

/**
 * affinity: cookie. balanced: the cookie carries a random key that nginx hashes consistently onto
 * an endpoint. persistent: nginx's sticky cookie, whose value names the endpoint.
 */
export interface AffinityConfig {
  mode: 'balanced' | 'persistent';
  /** Letters, digits and "_": nginx reads it as `$cookie_<name>`. */
  cookie: string;
  /** The cookie's Path; null: the location's own path (ingress-nginx's default), "/" for regex paths. */
  path: string | null;
  maxAge: number | null;
  sameSite: 'Strict' | 'Lax' | 'None' | null;
  secure: boolean;
}

/**
 * affinity-mode persistent: the `sticky cookie` of one upstream (one per Service port, cookie and
 * attributes, and the path it is set for). Always HttpOnly, as ingress-nginx's.
 */
export interface StickyCookie {
  /** COOKIE_NAME. */
  name: string;
  /** COOKIE_PATH. */
  path: string;
  maxAge: number | null;
  sameSite: 'strict' | 'lax' | 'none' | null;
  secure: boolean;
}

export interface BalancingAnnotations {
  /** load-balance: ewma becomes least_conn (stock nginx has no EWMA). */
  loadBalance: 'round_robin' | 'ewma';
  /** upstream-hash-by: nginx variable text, each variable written `${name}`, from an allowed set. */
  hashBy: string | null;
  affinity: AffinityConfig | null;
  serviceUpstream: boolean;
}

export const NO_BALANCING_ANNOTATIONS: Readonly<BalancingAnnotations> = Object.freeze({
  loadBalance: 'round_robin',
  hashBy: null,
  affinity: null,
  serviceUpstream: false,
});

// Variables upstream-hash-by may name: request properties that nginx computes per request. The
// prefixed families read one header, cookie or query argument.
const HASH_VARIABLES = new Set([
  'request_uri',
  'uri',
  'document_uri',
  'args',
  'query_string',
  'remote_addr',
  'binary_remote_addr',
  'host',
  'http_host',
  'request_method',
  'scheme',
  'server_name',
]);
const HASH_VARIABLE_FAMILY = /^(http_[a-z0-9_]{1,64}|cookie_[A-Za-z0-9_]{1,64}|arg_[A-Za-z0-9_]{1,64})$/;
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
        throw fail(
          name,
          value,
          `uses $${v.slice(0, 40)}; allowed are $${[...HASH_VARIABLES].join(', $')}, $http_<header>, $cookie_<name> and $arg_<name>`,
        );
      }
      out += `\${${v}}`;
      variables++;
    }
    at = re.lastIndex;
  }
  if (variables === 0) throw fail(name, value, 'names no variable: every request would go to the same endpoint');
  return out;
}

/** load-balance, upstream-hash-by and affinity. */
export function parseBalancing({
  r,
  noEffect,
  stickyCookie,
}: GroupInput): Omit<BalancingAnnotations, 'serviceUpstream'> {
  let loadBalance: BalancingAnnotations['loadBalance'] = NO_BALANCING_ANNOTATIONS.loadBalance;
  const lb = r.string(LOAD_BALANCE);
  if (lb !== undefined) {
    if (lb !== 'round_robin' && lb !== 'ewma') throw fail(LOAD_BALANCE, lb, 'must be "round_robin" or "ewma"');
    loadBalance = lb;
  }
  const hash = r.string(UPSTREAM_HASH_BY);
  const hashBy = hash === undefined ? null : parseHashBy(UPSTREAM_HASH_BY, hash);

  let affinity: AffinityConfig | null = null;
  const mode = r.string(AFFINITY);
  const affinityMode = r.string(AFFINITY_MODE)?.toLowerCase();
  const changeOnFailure = r.bool(SESSION_COOKIE_CHANGE_ON_FAILURE);
  const cookieName = r.string(SESSION_COOKIE_NAME);
  const cookiePath = r.string(SESSION_COOKIE_PATH);
  const maxAge = r.string(SESSION_COOKIE_MAX_AGE);
  const sameSite = r.string(SESSION_COOKIE_SAMESITE);
  const secure = r.bool(SESSION_COOKIE_SECURE);
  if (cookieName !== undefined && !COOKIE_NAME.test(cookieName))
    throw fail(
      SESSION_COOKIE_NAME,
      cookieName,
      'may contain only letters, digits and "_" (up to 64): nginx reads cookies by such names',
    );
  if (cookiePath !== undefined && !COOKIE_PATH.test(cookiePath))
    throw fail(SESSION_COOKIE_PATH, cookiePath, 'must be a URL path without ";", "," and "$"');
  const sameSiteValue =
    sameSite === undefined
      ? null
      : ({ strict: 'Strict', lax: 'Lax', none: 'None' } as const)[sameSite.toLowerCase() as 'strict' | 'lax' | 'none'];
  if (sameSiteValue === undefined)
    throw fail(SESSION_COOKIE_SAMESITE, sameSite ?? '', 'must be "Strict", "Lax" or "None"');
  const maxAgeValue = maxAge === undefined ? null : parseInteger(SESSION_COOKIE_MAX_AGE, maxAge, 0, 2_147_483_647);
  if (affinityMode !== undefined && affinityMode !== 'balanced' && affinityMode !== 'persistent')
    throw fail(AFFINITY_MODE, affinityMode, 'must be "balanced" or "persistent"');
  if (mode !== undefined) {
    if (mode !== 'cookie') throw fail(AFFINITY, mode, 'must be "cookie"');
    const persistent = affinityMode === 'persistent';
    // Fail closed: hashing instead would move sessions whenever endpoints come and go.
    if (persistent && !stickyCookie)
      throw fail(
        AFFINITY_MODE,
        'persistent',
        `needs nginx ${STICKY_COOKIE_SINCE.join('.')} or later (its sticky cookie names the endpoint); on older nginx sessions would move when endpoints change`,
      );
    if (persistent && maxAgeValue === STICKY_MAX_EXPIRES)
      throw fail(
        SESSION_COOKIE_MAX_AGE,
        maxAge ?? '',
        `cannot be sent with affinity-mode persistent: nginx's sticky cookie reads it as "max" (Max-Age=315360000)`,
      );
    if (changeOnFailure === true && !persistent)
      noEffect(SESSION_COOKIE_CHANGE_ON_FAILURE, 'the affinity cookie is kept when its endpoint fails');
    if (changeOnFailure === false && persistent)
      noEffect(
        SESSION_COOKIE_CHANGE_ON_FAILURE,
        `with ${AFFINITY_MODE} persistent, nginx's sticky cookie moves to the endpoint that answered when its own failed`,
      );
    affinity = {
      mode: persistent ? 'persistent' : 'balanced',
      cookie: cookieName ?? DEFAULT_SESSION_COOKIE_NAME,
      path: cookiePath ?? null,
      maxAge: maxAgeValue,
      sameSite: sameSiteValue,
      secure: secure ?? false,
    };
  } else {
    for (const n of [
      AFFINITY_MODE,
      SESSION_COOKIE_NAME,
      SESSION_COOKIE_PATH,
      SESSION_COOKIE_MAX_AGE,
      SESSION_COOKIE_SAMESITE,
      SESSION_COOKIE_SECURE,
      SESSION_COOKIE_CHANGE_ON_FAILURE,
    ])
      noEffect(n, `${AFFINITY} is not set`);
  }
  // ingress-nginx: the sticky balancer wins over upstream-hash-by, which wins over load-balance.
  if (affinity) {
    noEffect(UPSTREAM_HASH_BY, `${AFFINITY} takes precedence`);
    noEffect(LOAD_BALANCE, `${AFFINITY} takes precedence`);
  } else if (hashBy !== null) {
    noEffect(LOAD_BALANCE, `${UPSTREAM_HASH_BY} takes precedence`);
  }
  return { loadBalance, hashBy, affinity };
}

export function parseServiceUpstream({ r }: GroupInput): Pick<BalancingAnnotations, 'serviceUpstream'> {
  return { serviceUpstream: r.bool(SERVICE_UPSTREAM) ?? false };
}

/** affinity: the variable that holds a request's hash key for cookie `cookie` (see RoutingModel.affinityKeys). */
export function affinityKeyVariable(cookie: string): string {
  return `isc_aff_${digest(`cookie\n${cookie}`, 8)}`;
}

/**
 * The affinity key maps the model needs: those of the locations that set a cookie (`fromCookies`),
 * and those an upstream hashes on wherever it is used. An upstream may be used where no location
 * sets its cookie (custom-http-errors' error locations proxy to the default backend's upstream,
 * built with its Ingress's affinity), and nginx refuses a hash on an unknown variable.
 */
export function affinityKeysFor(
  fromCookies: RoutingModel['affinityKeys'],
  upstreams: Array<{ balance: { kind: string; key?: string } }>,
  cookies: Iterable<string>,
): RoutingModel['affinityKeys'] {
  const byKey = new Map<string, string>();
  for (const cookie of cookies) byKey.set(`$${affinityKeyVariable(cookie)}`, cookie);
  const out = new Map(fromCookies.map((k) => [k.variable, k]));
  for (const u of upstreams) {
    const cookie = u.balance.kind === 'hash' && u.balance.key !== undefined ? byKey.get(u.balance.key) : undefined;
    if (cookie !== undefined && !out.has(affinityKeyVariable(cookie)))
      out.set(affinityKeyVariable(cookie), { variable: affinityKeyVariable(cookie), cookie });
  }
  return [...out.values()].sort((a, b) => (a.variable < b.variable ? -1 : a.variable > b.variable ? 1 : 0));
}

export interface BalancingSettings {
  /** affinity: `add_header Set-Cookie $<variable>` (derived): the cookie when the request had none, else empty. */
  setCookie: string | null;
}

export const DEFAULT_BALANCING_SETTINGS: Readonly<BalancingSettings> = Object.freeze({ setCookie: null });

/**
 * The path an Ingress path's affinity cookie is set for unless session-cookie-path says: the path
 * itself, as ingress-nginx's $location_path; "/" for a regex path.
 */
export function defaultCookiePath(p: { match: string; path: string }): string {
  return p.match === 'regex' ? '/' : p.path;
}

/** The cookie's Path: session-cookie-path, else the location's (when it is a cookie path), else "/". */
function affinityCookiePath(c: AffinityConfig, locationPath: string): string {
  return c.path ?? (COOKIE_PATH.test(locationPath) ? locationPath : '/');
}

/** affinity-mode persistent: the sticky cookie of the upstream a location with path `locationPath` proxies to. */
export function stickyCookie(c: AffinityConfig, locationPath: string): StickyCookie {
  return {
    name: c.cookie,
    path: affinityCookiePath(c, locationPath),
    maxAge: c.maxAge,
    sameSite: c.sameSite === null ? null : (c.sameSite.toLowerCase() as StickyCookie['sameSite']),
    // As for balanced: browsers refuse SameSite=None without Secure.
    secure: c.secure || c.sameSite === 'None',
  };
}

/**
 * `sticky cookie NAME PARAMS;`, each parameter one token. `expires=N` sends both Expires (now + N)
 * and Max-Age=N: browsers take Max-Age, so it is session-cookie-max-age's Max-Age. nginx re-sends
 * the cookie with every answer it proxies.
 */
export function stickyView(c: StickyCookie): { name: string; params: string[] } {
  const maxAgeOk = c.maxAge === null || (Number.isInteger(c.maxAge) && c.maxAge >= 0 && c.maxAge <= 2_147_483_647);
  const sameSiteOk = c.sameSite === null || ['strict', 'lax', 'none'].includes(c.sameSite);
  if (!COOKIE_NAME.test(c.name) || !COOKIE_PATH.test(c.path) || !maxAgeOk || !sameSiteOk)
    throw new Error(`refusing to render sticky cookie ${JSON.stringify(c).slice(0, 300)}`);
  return {
    name: c.name,
    params: [
      ...(c.maxAge === null ? [] : [`expires=${c.maxAge}`]),
      `path=${c.path}`,
      'httponly',
      ...(c.secure ? ['secure'] : []),
      ...(c.sameSite === null ? [] : [`samesite=${c.sameSite}`]),
    ],
  };
}

/** The Set-Cookie maps the locations' settings name: one per cookie and attributes. */
export class AffinityCookies {
  private readonly byVariable = new Map<string, RoutingModel['affinityCookies'][number]>();

  /** The Set-Cookie map for a cookie and its attributes: shared by every location that sets the same. */
  setCookie(c: AffinityConfig, locationPath: string): string {
    const cookiePath = affinityCookiePath(c, locationPath);
    const attributes = [
      `; Path=${cookiePath}`,
      c.maxAge === null ? '' : `; Max-Age=${c.maxAge}`,
      c.sameSite === null ? '' : `; SameSite=${c.sameSite}`,
      // Browsers refuse SameSite=None without Secure.
      c.secure || c.sameSite === 'None' ? '; Secure' : '',
      '; HttpOnly',
    ].join('');
    const variable = `isc_affset_${digest(`${c.cookie}\n${attributes}`, 8)}`;
    this.byVariable.set(variable, { variable, cookie: c.cookie, key: affinityKeyVariable(c.cookie), attributes });
    return variable;
  }

  /** The map a setCookie variable names. */
  cookie(variable: string): RoutingModel['affinityCookies'][number] {
    return this.byVariable.get(variable)!;
  }
}

/** `derived` checks a derived name before the template writes it after a literal "$". */
export function balancingView(s: BalancingSettings, derived: (name: string) => string) {
  return { setCookie: s.setCookie === null ? '' : derived(s.setCookie) };
}
