// Parsed annotations -> the model's per-location settings, and what they need outside the
// location: limit_req/limit_conn zones and CORS origin maps at http level (names derived from
// digests, never from input) and htpasswd files (named by a digest of their content, like
// certificates). Pure: translate calls it with the Secrets of the snapshot.

import { createHash } from 'node:crypto';
import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { COOKIE_PATH, CUSTOM_HTTP_ERRORS, corsOriginPattern, type AffinityConfig, type AuthConfig, type CorsConfig, type IngressAnnotations, type MirrorTarget, type RedirectUrl, type RewriteTarget } from './index.ts';
import { DEFAULT_LOCATION_SETTINGS } from '../model.ts';
import type { CertificateFile, CorsMap, ErrorLocation, LocationCors, LocationSettings, MirrorLocation, RoutingModel, Server } from '../model.ts';
import { withPem } from '../translate/certificates.ts';

/** Shared memory per zone, as ingress-nginx sizes them: about 80,000 client addresses. */
export const ZONE_SIZE = '5m';
const MAX_HTPASSWD_BYTES = 1024 * 1024;
const MAX_USERS = 10_000;
// A user name (no ":", no space) and a password hash (crypt, $apr1$, {SHA}, {SSHA}, {PLAIN}):
// printable ASCII, which is all nginx's auth_basic_user_file parser reads.
const HTPASSWD_LINE = /^[\x21-\x39\x3b-\x7e]{1,255}:[\x21-\x7e]{1,1024}$/;
const HTPASSWD_USER = /^[\x21-\x39\x3b-\x7e]{1,255}$/;

export const digest = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);

/** Where mirror-target copies go inside a server; Ingress paths under it are refused. */
export const INTERNAL_PATH_PREFIX = '/_ingress_sidecar/';

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
export function affinityKeysFor(fromCookies: RoutingModel['affinityKeys'], upstreams: Array<{ balance: { kind: string; key?: string } }>, cookies: Iterable<string>): RoutingModel['affinityKeys'] {
  const byKey = new Map<string, string>();
  for (const cookie of cookies) byKey.set(`$${affinityKeyVariable(cookie)}`, cookie);
  const out = new Map(fromCookies.map((k) => [k.variable, k]));
  for (const u of upstreams) {
    const cookie = u.balance.kind === 'hash' && u.balance.key !== undefined ? byKey.get(u.balance.key) : undefined;
    if (cookie !== undefined && !out.has(affinityKeyVariable(cookie))) out.set(affinityKeyVariable(cookie), { variable: affinityKeyVariable(cookie), cookie });
  }
  return [...out.values()].sort((a, b) => (a.variable < b.variable ? -1 : a.variable > b.variable ? 1 : 0));
}

export interface SettingsResult {
  settings: LocationSettings;
  /** Why the location cannot serve (its auth Secret is unusable): it answers 503 instead. */
  unavailable: string | null;
}

interface BuilderOptions {
  secrets: V1Secret[];
  /** Where htpasswd files go (the certificate directory); null: none can be written. */
  privateDir: string | null;
  report: (ingress: string, reason: string) => void;
  /** custom-http-errors: the upstream that answers an Ingress's errors (its default-backend, else the default backend), or null. */
  errorUpstream: (ingress: string) => { upstream: string; scheme: 'http' | 'https' } | null;
}

/** What a location adds to its Ingress's settings. */
export interface LocationContext {
  /** The pattern its rewrite-target (if any) applies to. */
  rewriteRegex: string;
  /** The path the affinity cookie is set for when session-cookie-path is not given. */
  cookiePath: string;
}

export class LocationSettingsBuilder {
  private readonly secrets = new Map<string, V1Secret>();
  private readonly base = new Map<string, SettingsResult>();
  private readonly zoneRates = new Map<string, string>();
  private readonly corsPatterns = new Map<string, CorsMap>();
  private readonly files = new Map<string, CertificateFile>();
  private readonly affinityCookies = new Map<string, RoutingModel['affinityCookies'][number]>();
  private readonly mirrorTargets = new Map<string, { ingress: string; target: MirrorTarget; body: boolean }>();
  private readonly errorLocations = new Map<string, ErrorLocation>();
  private readonly opts: BuilderOptions;

  constructor(opts: BuilderOptions) {
    this.opts = opts;
    for (const s of opts.secrets) this.secrets.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s);
  }

  /** Settings for a location of `ingress`. */
  for(ingress: string, a: IngressAnnotations, ctx: LocationContext): SettingsResult {
    let base = this.base.get(ingress);
    if (!base) {
      base = this.build(ingress, a);
      this.base.set(ingress, base);
    }
    if ((!a.rewriteTarget && !a.affinity) || a.denied.length > 0) return base;
    const settings = { ...base.settings };
    if (a.rewriteTarget) settings.rewrite = { regex: ctx.rewriteRegex, replacement: rewriteReplacement(a.rewriteTarget) };
    if (a.affinity) settings.setCookie = this.affinityCookie(a.affinity, ctx.cookiePath);
    return { ...base, settings };
  }

  /** The Set-Cookie map for a cookie and its attributes: shared by every location that sets the same. */
  private affinityCookie(c: AffinityConfig, locationPath: string): string {
    const cookiePath = c.path ?? (COOKIE_PATH.test(locationPath) ? locationPath : '/');
    const attributes = [
      `; Path=${cookiePath}`,
      c.maxAge === null ? '' : `; Max-Age=${c.maxAge}`,
      c.sameSite === null ? '' : `; SameSite=${c.sameSite}`,
      // Browsers refuse SameSite=None without Secure.
      c.secure || c.sameSite === 'None' ? '; Secure' : '',
      '; HttpOnly',
    ].join('');
    const variable = `isc_affset_${digest(`${c.cookie}\n${attributes}`, 8)}`;
    this.affinityCookies.set(variable, { variable, cookie: c.cookie, key: affinityKeyVariable(c.cookie), attributes });
    return variable;
  }

  private build(ingress: string, a: IngressAnnotations): SettingsResult {
    // Not served as asked (translate reports why): 503, and nothing of its settings in nginx.conf.
    // The reasons quote the refused values, which may hold DEL (JSON.stringify leaves it): escaped
    // here, as the comment that names them in nginx.conf must be one line of printable text.
    if (a.denied.length > 0) return { settings: DEFAULT_LOCATION_SETTINGS, unavailable: a.denied.join('; ').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) };
    const id = digest(ingress, 16);
    const limitReq: LocationSettings['limitReq'] = [];
    if (a.limitRps !== null) {
      const zone = `ingress_sidecar_rps_${id}`;
      this.zoneRates.set(zone, `${a.limitRps}r/s`);
      limitReq.push({ zone, burst: a.limitRps * a.limitBurstMultiplier });
    }
    if (a.limitRpm !== null) {
      const zone = `ingress_sidecar_rpm_${id}`;
      this.zoneRates.set(zone, `${a.limitRpm}r/m`);
      limitReq.push({ zone, burst: a.limitRpm * a.limitBurstMultiplier });
    }
    let unavailable: string | null = null;
    let auth: LocationSettings['auth'] = null;
    if (a.auth) {
      const r = this.authFile(a.auth);
      if ('problem' in r) {
        unavailable = `auth-type basic: ${r.problem}`;
        this.opts.report(ingress, `${unavailable}; its paths answer 503`);
      } else {
        auth = { realm: a.auth.realm, userFile: r.path };
      }
    }
    let errorPages: LocationSettings['errorPages'] = [];
    if (a.customErrors.length > 0) {
      const target = this.opts.errorUpstream(ingress);
      if (target === null) {
        this.opts.report(ingress, `annotation ${CUSTOM_HTTP_ERRORS} has no effect: neither its default-backend annotation nor a default backend (spec.defaultBackend of an Ingress) can serve the errors over HTTP or HTTPS`);
      } else {
        errorPages = a.customErrors.map((code) => {
          const name = `isc_err_${code}_${digest(`${target.scheme}://${target.upstream}`, 8)}`;
          this.errorLocations.set(name, { name, code, ...target });
          return { code, location: name };
        });
      }
    }
    let mirror: LocationSettings['mirror'] = null;
    if (a.mirror) {
      const uri = `${INTERNAL_PATH_PREFIX}mirror/${digest(`${ingress}\n${JSON.stringify(a.mirror)}`, 16)}`;
      this.mirrorTargets.set(uri, { ingress, target: a.mirror.target, body: a.mirror.body });
      mirror = { uri, body: a.mirror.body };
    }
    const settings: LocationSettings = {
      ...DEFAULT_LOCATION_SETTINGS,
      snippet: a.configurationSnippet,
      preserveTrailingSlash: a.preserveTrailingSlash,
      mirror,
      errorPages,
      backendProtocol: a.backendProtocol === 'HTTPS' ? 'https' : a.backendProtocol === 'GRPC' ? 'grpc' : a.backendProtocol === 'GRPCS' ? 'grpcs' : 'http',
      bodySize: a.bodySize?.text ?? null,
      connectTimeout: a.connectTimeout,
      sendTimeout: a.sendTimeout,
      readTimeout: a.readTimeout,
      buffering: a.buffering,
      bufferSize: a.bufferSize?.text ?? null,
      xForwardedPrefix: a.xForwardedPrefix,
      appRoot: a.appRoot,
      redirect: a.redirect ? { code: a.redirect.code, url: redirectUrl(a.redirect.url) } : null,
      deny: a.deny,
      allow: a.allow,
      cors: a.cors ? this.cors(a.cors) : null,
      limitReq,
      limitConn: a.limitConnections !== null ? { zone: `ingress_sidecar_conn_${id}`, connections: a.limitConnections } : null,
      auth,
    };
    return { settings, unavailable };
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
    let map = this.corsPatterns.get(pattern);
    if (!map) {
      // Short names: nginx keeps variable names in a hash whose buckets are 64 bytes by default,
      // and long names need buckets of their own. 32 bits of digest, and never two patterns on one.
      const taken = new Set([...this.corsPatterns.values()].map((m) => m.variable));
      let id = digest(pattern, 8);
      for (let i = 1; taken.has(`isc_cors_${id}`); i++) id = digest(`${pattern}\n${i}`, 8);
      map = { variable: `isc_cors_${id}`, preflight: `isc_cpf_${id}`, pattern };
      this.corsPatterns.set(pattern, map);
    }
    return { origin: { variable: map.variable, preflight: map.preflight }, ...common };
  }

  private authFile(auth: AuthConfig): { path: string } | { problem: string } {
    const dir = this.opts.privateDir;
    if (dir === null) return { problem: 'this sidecar has no private directory for htpasswd files (translate got neither privateDir nor tls)' };
    if (!/^\/[A-Za-z0-9._/-]+$/.test(dir)) return { problem: 'the certificate directory path has characters nginx would interpret' };
    const secret = this.secrets.get(auth.secret);
    if (!secret) return { problem: `Secret ${auth.secret} not found` };
    const r = htpasswd(secret, auth.secretType);
    if ('problem' in r) return { problem: `Secret ${auth.secret}: ${r.problem}` };
    // Named by content, like certificates: a changed Secret is a new file and a reload.
    const file = `${digest(`htpasswd\n${r.content}`, 32)}.pem`;
    this.files.set(file, withPem({ file }, r.content));
    return { path: path.join(dir, file) };
  }

  /** The internal locations a server's locations name: mirror targets and error pages, sorted. */
  serverLocations(server: Server): { mirrors: MirrorLocation[]; errorLocations: ErrorLocation[] } {
    const mirrors = new Map<string, MirrorLocation>();
    const errors = new Map<string, ErrorLocation>();
    for (const l of server.locations) {
      const m = l.settings.mirror;
      const t = m ? this.mirrorTargets.get(m.uri) : undefined;
      if (m && t && !mirrors.has(m.uri)) {
        const defaultPort = t.target.scheme === 'https' ? 443 : 80;
        const path = t.target.path.length === 0 ? [{ variable: 'request_uri' as const }] : t.target.path;
        mirrors.set(m.uri, {
          uri: m.uri,
          ingress: t.ingress,
          // Per server file: two files must never define one upstream.
          upstream: `isc_mirror_${digest(`${server.file}\n${m.uri}`, 16)}`,
          address: `${t.target.host}:${t.target.port}`,
          scheme: t.target.scheme,
          hostHeader: t.target.port === defaultPort ? t.target.host : `${t.target.host}:${t.target.port}`,
          sniName: t.target.host.replace(/^\[|\]$/g, ''),
          path: path.map((p) => ('text' in p ? p.text : '${request_uri}')).join(''),
          body: t.body,
        });
      }
      for (const e of l.settings.errorPages) errors.set(e.location, this.errorLocations.get(e.location)!);
    }
    const by = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
    return { mirrors: [...mirrors.values()].sort(by((m) => m.uri)), errorLocations: [...errors.values()].sort(by((e) => e.name)) };
  }

  /** The zones, maps and files that the servers' locations name, sorted. */
  collect(servers: Server[]): {
    limitReqZones: Array<{ name: string; rate: string }>;
    limitConnZones: string[];
    corsMaps: CorsMap[];
    files: CertificateFile[];
    affinityKeys: RoutingModel['affinityKeys'];
    affinityCookies: RoutingModel['affinityCookies'];
  } {
    const req = new Set<string>();
    const conn = new Set<string>();
    const cors = new Set<string>();
    const files = new Set<string>();
    const cookies = new Set<string>();
    for (const s of servers) {
      for (const l of s.locations) {
        for (const z of l.settings.limitReq) req.add(z.zone);
        if (l.settings.limitConn) conn.add(l.settings.limitConn.zone);
        const origin = l.settings.cors?.origin;
        if (origin && 'variable' in origin) cors.add(origin.variable);
        if (l.settings.auth) files.add(path.basename(l.settings.auth.userFile));
        if (l.settings.setCookie) cookies.add(l.settings.setCookie);
      }
    }
    const affinityCookies = [...cookies].map((v) => this.affinityCookies.get(v)!);
    const keys = new Map(affinityCookies.map((c) => [c.key, { variable: c.key, cookie: c.cookie }]));
    const byName = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
    return {
      limitReqZones: [...req].map((name) => ({ name, rate: this.zoneRates.get(name)! })).sort(byName((z) => z.name)),
      limitConnZones: [...conn].sort(),
      corsMaps: [...this.corsPatterns.values()].filter((m) => cors.has(m.variable)).sort(byName((m) => m.variable)),
      files: [...files].map((f) => this.files.get(f)!).sort(byName((f) => f.file)),
      affinityKeys: [...keys.values()].sort(byName((k) => k.variable)),
      affinityCookies: affinityCookies.sort(byName((c) => c.variable)),
    };
  }
}

function rewriteReplacement(t: RewriteTarget): string {
  return t.map((p) => ('text' in p ? p.text : `$${p.capture}`)).join('');
}

function redirectUrl(u: RedirectUrl): string {
  return u.map((p) => ('text' in p ? p.text : `\${${p.variable}}`)).join('');
}

/**
 * The htpasswd lines of a Secret: `auth-file`, the `auth` key holds an htpasswd file; `auth-map`,
 * each key is a user and its value the password hash. Reasons never quote the Secret's data.
 */
export function htpasswd(secret: V1Secret, type: AuthConfig['secretType']): { content: string } | { problem: string } {
  const data: unknown = secret.data;
  if (typeof data !== 'object' || data === null) return { problem: 'has no data' };
  const entries = Object.entries(data as Record<string, unknown>);
  const decode = (v: unknown): string | null => {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v.replace(/\s/g, ''))) return null;
    const bytes = Buffer.from(v, 'base64');
    const text = bytes.toString('utf8');
    return Buffer.from(text, 'utf8').equals(bytes) ? text : null;
  };
  const lines: string[] = [];
  if (type === 'auth-file') {
    const raw = (data as Record<string, unknown>)['auth'];
    if (raw === undefined) return { problem: 'has no "auth" key (auth-secret-type auth-file)' };
    const text = decode(raw);
    if (text === null) return { problem: 'its "auth" key is not base64 of UTF-8 text' };
    if (text.length > MAX_HTPASSWD_BYTES) return { problem: 'its "auth" key is larger than 1 MiB' };
    const all = text.split('\n');
    for (let i = 0; i < all.length; i++) {
      const line = all[i]!.replace(/\r$/, '').trim();
      if (line === '' || line.startsWith('#')) continue;
      if (!HTPASSWD_LINE.test(line)) return { problem: `line ${i + 1} of its "auth" key is not USER:PASSWORD-HASH in printable ASCII` };
      lines.push(line);
    }
  } else {
    for (const [user, value] of entries) {
      const hash = decode(value);
      const line = `${user}:${hash?.trim() ?? ''}`;
      if (hash === null || !HTPASSWD_USER.test(user) || !HTPASSWD_LINE.test(line)) return { problem: 'a key or value is not a user name and password hash in printable ASCII (auth-secret-type auth-map)' };
      lines.push(line);
    }
    lines.sort();
  }
  if (lines.length === 0) return { problem: 'names no user' };
  if (lines.length > MAX_USERS) return { problem: `names more than ${MAX_USERS} users` };
  return { content: `${lines.join('\n')}\n` };
}
