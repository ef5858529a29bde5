// Parsed annotations -> the model's per-location settings, and what they need outside the
// location: limit_req/limit_conn zones and CORS origin maps at http level (names derived from
// digests, never from input) and htpasswd files (named by a digest of their content, like
// certificates). Pure: translate calls it with the Secrets of the snapshot. Each group's file
// builds its part of the settings; this composes them per Ingress and per location.

import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { DEFAULT_LOCATION_SETTINGS } from '../model.ts';
import type { CertificateFile, CorsMap, LocationSettings, RoutingModel, Server } from '../model.ts';
import { InvalidValue } from '../grammar.ts';
import { accessSettings } from './access.ts';
import { AuthFiles } from './auth.ts';
import { AffinityCookies } from './balancing.ts';
import { CorsMaps, corsVariables } from './cors.ts';
import { MirrorAndErrorLocations } from './mirror-errors.ts';
import { proxySettings } from './proxy.ts';
import { RateLimitZones } from './rate-limits.ts';
import { redirectSettings, rewriteReplacement } from './redirect.ts';
import { snippetSettings } from './snippet-annotations.ts';
import { digest } from './values.ts';
import type { IngressAnnotations } from './index.ts';

// Re-exported: translate, render and the specs import them from here.
export { ZONE_SIZE } from './rate-limits.ts';
export { affinityKeyVariable, affinityKeysFor, defaultCookiePath, stickyCookie } from './balancing.ts';
export { INTERNAL_PATH_PREFIX } from './mirror-errors.ts';
export { htpasswd } from './auth.ts';
export { digest } from './values.ts';

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
  private readonly base = new Map<string, SettingsResult>();
  private readonly zones = new RateLimitZones();
  private readonly corsMaps = new CorsMaps();
  private readonly authFiles: AuthFiles;
  private readonly affinityCookies = new AffinityCookies();
  private readonly internal: MirrorAndErrorLocations;
  private readonly opts: BuilderOptions;

  constructor(opts: BuilderOptions) {
    this.opts = opts;
    this.authFiles = new AuthFiles(opts.secrets, opts.privateDir);
    this.internal = new MirrorAndErrorLocations({ report: opts.report, errorUpstream: opts.errorUpstream });
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
    if (a.rewriteTarget)
      settings.rewrite = { regex: ctx.rewriteRegex, replacement: rewriteReplacement(a.rewriteTarget) };
    // persistent: the upstream's sticky cookie sets it (translate/backends.ts variantOf).
    if (a.affinity?.mode === 'balanced')
      settings.setCookie = this.affinityCookies.setCookie(a.affinity, ctx.cookiePath);
    return { ...base, settings };
  }

  private build(ingress: string, a: IngressAnnotations): SettingsResult {
    // Not served as asked (translate reports why): 503, and nothing of its settings in nginx.conf.
    // The reasons quote the refused values, which may hold DEL (JSON.stringify leaves it): escaped
    // here, as the comment that names them in nginx.conf must be one line of printable text.
    if (a.denied.length > 0)
      return {
        settings: DEFAULT_LOCATION_SETTINGS,
        unavailable: a.denied
          .join('; ')
          // eslint-disable-next-line no-control-regex
          .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
      };
    const rateLimits = this.zones.settings(digest(ingress, 16), a);
    let unavailable: string | null = null;
    let auth: LocationSettings['auth'] = null;
    try {
      auth = this.authFiles.settings(a.auth).auth;
    } catch (err) {
      if (!(err instanceof InvalidValue)) throw err;
      unavailable = `auth-type basic: ${err.message}`;
      this.opts.report(ingress, `${unavailable}; its paths answer 503`);
    }
    const settings: LocationSettings = {
      ...DEFAULT_LOCATION_SETTINGS,
      ...snippetSettings(a),
      ...this.internal.settings(ingress, a),
      ...proxySettings(a),
      ...redirectSettings(a),
      ...accessSettings(a),
      ...this.corsMaps.settings(a.cors),
      ...rateLimits,
      auth,
    };
    return { settings, unavailable };
  }

  /** The internal locations a server's locations name: mirror targets and error pages, sorted. */
  serverLocations(server: Server): ReturnType<MirrorAndErrorLocations['serverLocations']> {
    return this.internal.serverLocations(server);
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
        for (const v of corsVariables(l.settings.cors)) cors.add(v);
        if (l.settings.auth) files.add(path.basename(l.settings.auth.userFile));
        if (l.settings.setCookie) cookies.add(l.settings.setCookie);
      }
    }
    const affinityCookies = [...cookies].map((v) => this.affinityCookies.cookie(v));
    const keys = new Map(affinityCookies.map((c) => [c.key, { variable: c.key, cookie: c.cookie }]));
    const byName =
      <T>(key: (x: T) => string) =>
      (a: T, b: T) =>
        key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
    return {
      limitReqZones: [...req].map((name) => ({ name, rate: this.zones.rate(name) })).sort(byName((z) => z.name)),
      limitConnZones: [...conn].sort(),
      corsMaps: this.corsMaps.collect(cors),
      files: [...files].map((f) => this.authFiles.file(f)).sort(byName((f) => f.file)),
      affinityKeys: [...keys.values()].sort(byName((k) => k.variable)),
      affinityCookies: affinityCookies.sort(byName((c) => c.variable)),
    };
  }
}
