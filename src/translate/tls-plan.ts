// The TLS plan: which certificate each host is served with (every host listens on the HTTPS port,
// as in ingress-nginx: a host without TLS gets the default certificate), the default server's
// certificate, the certificate files to write, and which locations redirect plain HTTP to HTTPS. The PEM and
// X.509 parsing is certificates.ts's.

import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { InvalidValue, checkObjectName, type ParsedHost } from '../grammar.ts';
import { HTTP2_DIRECTIVE_SINCE, parseNginxVersion, versionAtLeast } from '../nginx/version.ts';
import type { CertificateFile, Https, ServerTls } from '../model.ts';
import {
  TLS_SECRET_TYPE,
  certificateFromPem,
  certificateFromSecret,
  hostProblem,
  validityProblem,
  withPem,
  type Certificate,
} from './certificates.ts';
import type { HostRoutes } from './hosts.ts';
import type { TlsOptions } from './options.ts';
import type { ParsedIngress, ParsedTls } from './parse.ts';
import type { Report } from './rejections.ts';

/** Never redirected to HTTPS, as in ingress-nginx (`no-tls-redirect-locations`): ACME HTTP-01 challenges. */
const NO_TLS_REDIRECT_PREFIX = '/.well-known/acme-challenge';
/** The first nginx with the `http2` directive (and the deprecation of `listen ... http2`). */

export interface TlsPlan {
  https: Https;
  /** The default server's: the --default-ssl-certificate Secret when usable, else the generated one. */
  defaultTls: ServerTls;
  /** Hosts that spec.tls names (and that have routes), with the certificate each is served with. */
  hosts: Map<string, ServerTls>;
  /**
   * Exact hosts without TLS of their own that a TLS wildcard host covers, with the wildcard's
   * certificate: ingress-nginx looks a certificate up by the exact name, then by `*.` and the rest
   * of it, so such a host is served with the wildcard's certificate and counts as having one
   * (plain HTTP to it redirects, unless its Ingress says ssl-redirect "false").
   */
  inherited: Map<string, ServerTls>;
  certificates: Map<string, CertificateFile>;
  warnings: string[];
  /** Epoch ms of the next certificate validity change, or null. */
  recheckAt: number | null;
}

/** One Ingress's claim on TLS for a host, through one spec.tls entry. */
interface TlsClaim {
  ingress: string;
  secret: ParsedTls['secret'];
}

/**
 * Which certificate each host is served with. A host gets TLS when an Ingress with rules for it
 * names it in spec.tls (an entry without hosts names every host of that Ingress its certificate
 * covers). Claims are weighed oldest Ingress first; the first usable one wins. An unusable Secret
 * (missing, malformed, not valid now, not valid for the host) leaves the host on TLS with the
 * default certificate, and is reported to the Ingress that named it.
 */
export function planTls(
  secrets: V1Secret[],
  ingresses: ParsedIngress[],
  live: HostRoutes[],
  opts: TlsOptions,
  now: Date,
  nginxVersion: string | undefined,
  report: Report,
  sameTenant: (a: string, b: string) => boolean,
): TlsPlan {
  const warnings: string[] = [];
  const certificates = new Map<string, CertificateFile>();
  let recheckAt: number | null = null;
  const later = (at: Date, slackMs = 0) => {
    const ms = at.getTime() + slackMs;
    if (ms > now.getTime() && (recheckAt === null || ms < recheckAt)) recheckAt = ms;
  };
  const use = (cert: Certificate): string => {
    certificates.set(cert.file, certificateFile(cert));
    // The moment after it expires, the host falls back to the default certificate.
    later(cert.notAfter, 1000);
    return path.join(opts.certDir, cert.file);
  };
  const secretsByKey = new Map<string, V1Secret>();
  for (const s of secrets) secretsByKey.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s);
  /** A Secret's certificate; throws InvalidValue with why it cannot be used. */
  const fromSecret = (key: string): Certificate => {
    const secret = secretsByKey.get(key);
    if (!secret) throw new InvalidValue(`Secret ${key} not found (only Secrets of type ${TLS_SECRET_TYPE} are read)`);
    let cert: Certificate;
    try {
      cert = certificateFromSecret(secret);
    } catch (err) {
      throw err instanceof InvalidValue ? new InvalidValue(`Secret ${key}: ${err.message}`) : err;
    }
    const refused = opts.refusedCertificates?.get(cert.file);
    if (refused !== undefined) throw new InvalidValue(`Secret ${key}: nginx refused its certificate: ${refused}`);
    return cert;
  };
  /** The certificate of Secret `key` when it is valid now; throws InvalidValue when not (and notes when it becomes valid). */
  const usableNow = (key: string, cert: Certificate): Certificate => {
    const problem = validityProblem(cert, now);
    if (problem && now < cert.notBefore) later(cert.notBefore);
    if (problem) throw new InvalidValue(`Secret ${key}: ${problem}`);
    return cert;
  };

  // The default certificate.
  let defaultCert: Certificate;
  try {
    defaultCert = certificateFromPem(...splitPem(opts.defaultCertificate.pem));
  } catch (err) {
    // The caller's mistake, not an Ingress's: translate fails.
    if (!(err instanceof InvalidValue)) throw err;
    throw new Error(`translate: options.tls.defaultCertificate is unusable: ${err.message}`, { cause: err });
  }
  let defaultSecret: string | null = null;
  if (opts.defaultSslCertificate !== undefined) {
    const fallback = 'the generated self-signed certificate is used instead';
    const m = /^([^/]*)\/([^/]*)$/.exec(opts.defaultSslCertificate);
    let key: string | null = null;
    try {
      if (m) key = `${checkObjectName('namespace', m[1], 'label')}/${checkObjectName('Secret', m[2], 'subdomain')}`;
    } catch {
      key = null;
    }
    if (key === null) {
      warnings.push(
        `--default-ssl-certificate ${JSON.stringify(opts.defaultSslCertificate.slice(0, 300))} is not NAMESPACE/NAME of a Secret; ${fallback}`,
      );
    } else {
      try {
        defaultCert = usableNow(key, fromSecret(key));
        defaultSecret = key;
      } catch (err) {
        if (!(err instanceof InvalidValue)) throw err;
        warnings.push(`--default-ssl-certificate: ${err.message}; ${fallback}`);
      }
    }
  }
  const defaultTls: ServerTls = { certPath: use(defaultCert), secret: defaultSecret, ingress: null };

  // Claims, per host, oldest Ingress first.
  const liveHosts = new Map(live.map((h) => [h.host!.host, h.host!]));
  const hostOwner = new Map(live.map((h) => [h.host!.host, h.owner!]));
  const claims = new Map<string, TlsClaim[]>();
  for (const p of ingresses) {
    const own = new Map<string, ParsedHost>();
    // Only the namespace that owns a host gives it TLS (translate reports the others' rules).
    for (const r of p.rules) {
      const owner = r.host ? hostOwner.get(r.host.host) : undefined;
      // A rule without paths makes the host's server too (its defaultBackend answers): it gets TLS.
      if (r.host && owner !== undefined && sameTenant(owner, p.key)) own.set(r.host.host, r.host);
    }
    for (const t of p.tls) {
      let targets: string[];
      if (t.hosts) {
        // A host without a rule of this Ingress has nothing of it to serve: nothing to say.
        targets = t.hosts.filter((h) => own.has(h));
      } else {
        // The API: hosts "defaults to the wildcard host setting for the loadbalancer controller";
        // as in ingress-nginx, the entry covers every host of this Ingress its certificate covers.
        const where = `spec.tls[${t.index}] names no hosts`;
        if (t.secret === null) {
          report(p.key, 'partial', `${where} and no secretName: it has no effect`);
          continue;
        }
        if (t.secret instanceof InvalidValue) {
          report(p.key, 'partial', `${t.secret.message}; as ${where}, it has no effect`);
          continue;
        }
        let cert: Certificate;
        try {
          cert = fromSecret(t.secret.key);
        } catch (err) {
          if (!(err instanceof InvalidValue)) throw err;
          report(p.key, 'partial', `${where}, and ${err.message}: no host gets TLS from it`);
          continue;
        }
        targets = [...own].filter(([, h]) => hostProblem(cert, h) === null).map(([h]) => h);
        if (targets.length === 0 && own.size > 0) {
          report(
            p.key,
            'partial',
            `${where}, and the certificate of Secret ${t.secret.key} covers none of this Ingress's hosts: no host gets TLS from it`,
          );
        }
      }
      for (const h of targets) {
        const list = claims.get(h) ?? [];
        list.push({ ingress: p.key, secret: t.secret });
        claims.set(h, list);
      }
    }
  }

  const describe = (s: TlsClaim['secret']) =>
    s === null
      ? 'the default certificate (no secretName)'
      : s instanceof InvalidValue
        ? 'an invalid secretName'
        : `Secret ${s.key}`;
  const same = (a: TlsClaim['secret'], b: TlsClaim['secret']) => describe(a) === describe(b);
  const hosts = new Map<string, ServerTls>();
  for (const host of [...claims.keys()].sort()) {
    const parsedHost = liveHosts.get(host)!;
    /** The certificate a claim serves the host with (null: the default one); throws InvalidValue when it cannot. */
    const certificateOf = (c: TlsClaim): Certificate | null => {
      if (c.secret === null) return null;
      if (c.secret instanceof InvalidValue) throw c.secret;
      const cert = usableNow(c.secret.key, fromSecret(c.secret.key));
      const problem = hostProblem(cert, parsedHost);
      if (problem) throw new InvalidValue(`Secret ${c.secret.key}: ${problem}`);
      return cert;
    };
    let winner: { claim: TlsClaim; cert: Certificate | null } | null = null;
    const failed: Array<{ claim: TlsClaim; reason: string }> = [];
    for (const claim of claims.get(host)!) {
      if (winner) {
        if (!same(claim.secret, winner.claim.secret)) {
          report(
            claim.ingress,
            'partial',
            `TLS for ${host}: ${describe(claim.secret)} is not used; ${host} is served with ${describe(winner.claim.secret)} from ${claim.ingress === winner.claim.ingress ? 'an earlier spec.tls entry' : `the older Ingress ${winner.claim.ingress}`}`,
          );
        }
        continue;
      }
      try {
        winner = { claim, cert: certificateOf(claim) };
      } catch (err) {
        if (!(err instanceof InvalidValue)) throw err;
        failed.push({ claim, reason: err.message });
      }
    }
    const servedWith = winner?.cert ? describe(winner.claim.secret) : 'the default certificate';
    for (const f of failed)
      report(
        f.claim.ingress,
        'partial',
        `TLS for ${host}: ${f.reason}; ${host} is served over HTTPS with ${servedWith}`,
      );
    const owner = winner?.claim.ingress ?? failed[0]!.claim.ingress;
    const secret = winner?.claim.secret;
    hosts.set(
      host,
      winner?.cert && secret && !(secret instanceof InvalidValue)
        ? { certPath: use(winner.cert), secret: secret.key, ingress: owner }
        : { ...defaultTls, ingress: owner },
    );
  }

  const inherited = new Map<string, ServerTls>();
  for (const [host, h] of liveHosts) {
    if (h.kind !== 'exact' || hosts.has(host) || !host.includes('.')) continue;
    const covering = hosts.get(`*.${host.slice(host.indexOf('.') + 1)}`);
    if (covering) inherited.set(host, { ...covering, ingress: null });
  }

  let http2: Https['http2'] = 'listen';
  if (nginxVersion !== undefined) {
    const v = parseNginxVersion(nginxVersion);
    if (!v)
      warnings.push(
        `nginx version ${JSON.stringify(nginxVersion.slice(0, 100))} is not understood; HTTP/2 uses the "listen ... http2" syntax of nginx before 1.25.1`,
      );
    else if (versionAtLeast(v, HTTP2_DIRECTIVE_SINCE)) http2 = 'directive';
  }
  return {
    https: { port: opts.httpsPort, redirectPort: opts.httpsRedirectPort ?? 443, http2 },
    defaultTls,
    hosts,
    inherited,
    certificates,
    warnings,
    recheckAt,
  };
}

/**
 * How a host's server answers on the HTTPS port, and whether a certificate is configured for it
 * (which decides ssl-redirect). As in ingress-nginx, every host listens there: a host without TLS
 * of its own or from a wildcard gets the default certificate, and its own routes, but no redirect
 * (ingress-nginx redirects only where `certificate.configured_for_current_request()`, unless
 * force-ssl-redirect). With TLS off (no plan) no server listens on an HTTPS port.
 */
export function tlsOfHost(plan: TlsPlan | null, host: string): { tls: ServerTls | null; configured: boolean } {
  if (!plan) return { tls: null, configured: false };
  const own = plan.hosts.get(host) ?? plan.inherited.get(host);
  return own ? { tls: own, configured: true } : { tls: plan.defaultTls, configured: false };
}

/** The model's view of a certificate: the file name, and the content kept out of JSON and inspection. */
function certificateFile(cert: Certificate): CertificateFile {
  return withPem({ file: cert.file }, cert.pem);
}

/** A PEM text holding certificates and a key, as [certificates, key]. */
function splitPem(pem: string): [string, string] {
  const blocks = pem.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
  const isCert = (b: string) => b.startsWith('-----BEGIN CERTIFICATE-----');
  return [blocks.filter(isCert).join('\n'), blocks.filter((b) => !isCert(b)).join('\n')];
}

/**
 * Whether a location answers plain HTTP with a redirect to HTTPS: given whether its host has TLS
 * of its own, by Ingress and location path.
 */
export function redirects(tls: TlsPlan | null, denied: ReadonlySet<string>, byKey: ReadonlyMap<string, ParsedIngress>) {
  return (hostTls: boolean) => (ingress: string, locationPath: string) => {
    // A location that is not served answers 503 on either scheme: no redirect to a dead end.
    if (!tls || denied.has(ingress)) return false;
    if (locationPath === NO_TLS_REDIRECT_PREFIX || locationPath.startsWith(`${NO_TLS_REDIRECT_PREFIX}/`)) return false;
    const p = byKey.get(ingress);
    return p?.annotations.forceSslRedirect === true || (hostTls && (p?.annotations.sslRedirect ?? true));
  };
}
