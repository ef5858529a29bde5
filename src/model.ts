// The routing model: what nginx should do, already validated. Templates only lay it out.

import type { SnippetDirective } from './annotations/snippets.ts';
import { DEFAULT_ACCESS, type AccessSettings } from './annotations/access.ts';
import { DEFAULT_AUTH_SETTINGS, type AuthSettings } from './annotations/auth.ts';
import { DEFAULT_BALANCING_SETTINGS, type BalancingSettings, type StickyCookie } from './annotations/balancing.ts';
import { DEFAULT_CORS_SETTINGS, type CorsSettings } from './annotations/cors.ts';
import { DEFAULT_MIRROR_AND_ERRORS_SETTINGS, type MirrorAndErrorsSettings } from './annotations/mirror-errors.ts';
import { DEFAULT_PROXY_SETTINGS, type ProxySettings } from './annotations/proxy.ts';
import { DEFAULT_RATE_LIMIT_SETTINGS, type RateLimitSettings } from './annotations/rate-limits.ts';
import { DEFAULT_REDIRECT_SETTINGS, type RedirectSettings } from './annotations/redirect.ts';
import { DEFAULT_SNIPPET_SETTINGS, type SnippetSettings } from './annotations/snippet-annotations.ts';

// Where the settings' parts are defined, for those who import them from the model.
export type { RedirectCode } from './annotations/redirect.ts';
export type { LocationCors } from './annotations/cors.ts';

/** What a location does with a request. */
export type Action =
  /**
   * `via`: a canary selector's variable (derived, without `$`): per request it names `upstream`
   * or the canary's upstream, and proxy_pass goes where it says.
   */
  | { kind: 'proxy'; upstream: string; via?: string }
  /** The path is claimed, but its backend cannot serve: a Service, port or endpoint is missing. */
  | { kind: 'unavailable'; reason: string }
  /** Nothing matched and no default backend exists: nginx's own 404. */
  | { kind: 'notFound' };

export interface Location {
  /**
   * `exact` renders `location = PATH`, `prefix` renders `location PATH`, `regex` renders
   * `location ~ PATH` (or `~*` with `ignoreCase`).
   */
  match: 'exact' | 'prefix' | 'regex';
  /** The literal nginx compares with the normalised request URI; for `regex`, the PCRE pattern. */
  path: string;
  /** `regex` only: matched case-insensitively (use-regex paths, as ingress-nginx's `~*`). */
  ignoreCase: boolean;
  /** The Ingress rule this came from, as the user wrote it. */
  route: { pathType: 'Exact' | 'Prefix' | 'ImplementationSpecific' | 'Default'; path: string };
  /** namespace/name of the Ingress that owns this location. */
  ingress: string;
  /** namespace/name:port of the backend Service, for people reading the config. */
  service: string;
  /** The canary Ingress that takes a share of this location's requests, and its Service (for the comment). */
  canary?: { ingress: string; service: string };
  action: Action;
  /**
   * Plain-HTTP requests are answered with a 308 to https: the host has TLS (unless the Ingress
   * says `ssl-redirect: "false"`) or the Ingress says `force-ssl-redirect: "true"`.
   */
  sslRedirect: boolean;
  /** What the owning Ingress's annotations ask of this location. */
  settings: LocationSettings;
}

/**
 * Per-location settings from an Ingress's nginx.ingress.kubernetes.io annotations, already
 * validated; null or empty: not set, the server's defaults apply. Each group's part, with its
 * defaults, is in its file under src/annotations/.
 */
export interface LocationSettings
  extends
    ProxySettings,
    RedirectSettings,
    AccessSettings,
    CorsSettings,
    RateLimitSettings,
    AuthSettings,
    BalancingSettings,
    MirrorAndErrorsSettings,
    SnippetSettings {}

/** Settings of a location no Ingress annotation touches: the groups' defaults. */
export const DEFAULT_LOCATION_SETTINGS: LocationSettings = Object.freeze({
  ...DEFAULT_PROXY_SETTINGS,
  ...DEFAULT_REDIRECT_SETTINGS,
  ...DEFAULT_ACCESS,
  ...DEFAULT_CORS_SETTINGS,
  ...DEFAULT_RATE_LIMIT_SETTINGS,
  ...DEFAULT_AUTH_SETTINGS,
  ...DEFAULT_BALANCING_SETTINGS,
  ...DEFAULT_MIRROR_AND_ERRORS_SETTINGS,
  ...DEFAULT_SNIPPET_SETTINGS,
});

/** An internal location that receives the copies of mirror-target. */
export interface MirrorLocation {
  /** `/_ingress_sidecar/mirror/<digest>`: Ingress paths under /_ingress_sidecar/ are refused. */
  uri: string;
  /** The Ingress that asked, for the comment that lets the sidecar blame it when nginx refuses the upstream. */
  ingress: string;
  /** `isc_mirror_<digest>`, in this server's file: nginx resolves a DNS host when it loads it. */
  upstream: string;
  /** `host:port` or `[ipv6]:port`, validated. */
  address: string;
  scheme: 'http' | 'https';
  /** The Host header and TLS server name: the target's host (and port when not the scheme's). */
  hostHeader: string;
  sniName: string;
  /** URL path text whose only `$` start `${request_uri}`. */
  path: string;
  body: boolean;
}

/** A named location that custom-http-errors sends an error to: the default backend, told which error. */
export interface ErrorLocation {
  /** `isc_err_<code>_<digest>` (rendered after a literal `@`). */
  name: string;
  code: number;
  upstream: string;
  scheme: 'http' | 'https';
}

/** A map in the main file that says whether a request's Origin is allowed. */
export interface CorsMap {
  /** Variable names, derived (`isc_cors_<digest>`, `isc_cpf_<digest>`), without `$`. */
  variable: string;
  preflight: string;
  /** PCRE matched case-insensitively against the whole Origin header; built from validated origins. */
  pattern: string;
  /**
   * The CORS header values locations send to an allowed Origin (`value`; null: the Origin itself),
   * each a map of `variable` (`isc_cv_<digest>`): for another Origin, the backend's own `header`.
   */
  values: Array<{ variable: string; header: string; value: string | null }>;
}

/** How a location reads in nginx.conf: `= /foo`, `/foo/`, `~ ^/foo(?:/|$)`, `~* ^/api/(.*)`. */
export function locationLabel(l: Pick<Location, 'match' | 'path' | 'ignoreCase'>): string {
  if (l.match === 'exact') return `= ${l.path}`;
  if (l.match === 'regex') return `${l.ignoreCase ? '~*' : '~'} ${l.path}`;
  return l.path;
}

export interface ServerTls {
  /** Absolute path of the file holding chain and key: certDir + a digest of the content. */
  certPath: string;
  /** `namespace/name` of the Secret the certificate came from; null for the generated default. */
  secret: string | null;
  /**
   * The Ingress whose spec.tls asked for TLS on this host; null on the default server, on a host
   * served with a TLS wildcard's certificate, and on a host without TLS (the default certificate).
   */
  ingress: string | null;
}

/**
 * A private file to write into certDir before the config that names it is applied: a certificate
 * and key, or an htpasswd file.
 */
export interface CertificateFile {
  /** `<32 hex digits>.pem`, derived from the content. */
  readonly file: string;
  /** Chain and key, or htpasswd lines. Not enumerable, so that JSON (logs, /routes) and util.inspect leave it out. */
  readonly pem: string;
}

export interface Server {
  /** The Ingress host, `*.` wildcards included; null for the catch-all default server. */
  host: string | null;
  serverName: string;
  /** File name, derived from the validated host, never taken from input verbatim. */
  file: string;
  /** Sorted: longest path first, exact before prefix; nginx's own precedence agrees. */
  locations: Location[];
  /** namespace/name of every Ingress that contributes to this server, sorted. */
  ingresses: string[];
  /**
   * The certificate this server answers with on the HTTPS port; null only when HTTPS is off. As in
   * ingress-nginx every server listens there: a host no spec.tls names (and no TLS wildcard
   * covers) gets the default certificate, and the default server has it for unknown SNI names.
   */
  tls: ServerTls | null;
  /** mirror-target locations its locations name, sorted by uri. */
  mirrors: MirrorLocation[];
  /** custom-http-errors locations its locations name, sorted by name. */
  errorLocations: ErrorLocation[];
  /** server-snippet of each Ingress that has one (--allow-snippet-annotations), by Ingress. */
  snippets: Array<{ ingress: string; directives: SnippetDirective[] }>;
}

export interface UpstreamServer {
  /** `ip:port` or `[ipv6]:port`. */
  address: string;
}

export interface Upstream {
  /**
   * `namespace_service_port`, and `_https`, `_grpc` or `_grpcs` after it for other backend
   * protocols (nginx's keepalive cache is per upstream: connections of one protocol must never be
   * reused for another). Kubernetes names cannot contain "_", so it is unambiguous.
   */
  name: string;
  service: string;
  /** Ready endpoints (or the cluster IP); empty with `external`, whose name nginx resolves. */
  servers: UpstreamServer[];
  /**
   * An ExternalName Service's DNS name (validated by parseTargetHost: no loopback, metadata or
   * numeric forms) and port, resolved by nginx through RoutingModel.resolver while it runs, as
   * ingress-nginx re-resolves it. `resolve`: nginx 1.27.3 and later, `server NAME:PORT resolve` in
   * this upstream (with a zone). `variable`: older nginx, no upstream block; a variable holding
   * `NAME:PORT` that proxy_pass names, which nginx resolves per request.
   */
  external?: { host: string; port: number; via: 'resolve' | 'variable' };
  /**
   * Reload-free endpoints (nginx 1.27.3 and later): nginx asks the sidecar's DNS responder for
   * this upstream's peers (`server HOST service=http|https resolve`), so `servers` is what the
   * responder answers, not what the files say, and an endpoint change rewrites no file. `host`:
   * src/dns/names.ts serviceHost(); `tls`: the backend speaks TLS (https, grpcs), which picks the
   * TLS listener that answers 503 while the Service has no ready endpoints.
   */
  dynamic?: { host: string; tls: boolean };
  /** service-upstream: the one server is the Service's cluster IP, not its endpoints. */
  clusterIp?: true;
  /**
   * How nginx picks a server: round robin (its default), least_conn (load-balance: ewma), a
   * consistent hash of `key`: nginx variable text whose `$` start allowed or derived variables, or
   * (affinity-mode persistent, nginx 1.29.6 and later) the server a sticky cookie names.
   */
  balance:
    | { kind: 'round_robin' }
    | { kind: 'least_conn' }
    | { kind: 'hash'; key: string }
    | { kind: 'sticky'; cookie: StickyCookie };
}

/**
 * A canary: a variable whose value, per request, is the main or the canary upstream's name:
 * canary-by-header first, then canary-by-cookie, then canary-weight.
 */
export interface CanarySelector {
  /** Derived (`isc_canary_<digest>`), without `$`; `<variable>_c` and `<variable>_w` are its helpers. */
  variable: string;
  main: string;
  canary: string;
  /** The canary Ingress and the main one, for comments and status. */
  ingress: string;
  mainIngress: string;
  /** `http_<name>` (lowercase, "_" for "-") and the exact value, or null for "always"/"never". */
  header: { source: string; value: string | null } | null;
  /** `cookie_<name>`. */
  cookie: string | null;
  /** Percent of the other requests for the canary: 0-100, at most two decimals. */
  weight: number;
}

export interface Rejection {
  /** namespace/name of the Ingress. */
  ingress: string;
  /** `rejected`: nothing of it is served. `partial`: served, less what the reason names. */
  severity: 'rejected' | 'partial';
  reason: string;
}

export interface RoutingModel {
  httpPort: number;
  ipv6: boolean;
  /** Absolute path of the JSON access log (validated by config), or null to inherit nginx.conf's. */
  accessLog: string | null;
  defaultServer: Server;
  servers: Server[];
  upstreams: Upstream[];
  serverNamesHash: { maxSize: number; bucketSize: number };
  /** namespace/name of every Ingress of our class that serves at least one route, sorted. */
  served: string[];
  rejections: Rejection[];
  /** HTTPS settings; null when TLS is not enabled (translate got no `tls` options). */
  https: Https | null;
  /**
   * Every private file the configuration names, sorted by file, each once: certificates (chain
   * and key) and the htpasswd files of auth-type basic, all written into the certificate directory.
   */
  certificates: CertificateFile[];
  /** limit_req_zone per Ingress with limit-rps or limit-rpm: a derived name and `<n>r/s` or `<n>r/m`. */
  limitReqZones: Array<{ name: string; rate: string }>;
  /** limit_conn_zone names, one per Ingress with limit-connections. */
  limitConnZones: string[];
  /** CORS origin maps (cors-allow-origin other than `*`), one per distinct list of origins. */
  corsMaps: CorsMap[];
  /** affinity: per cookie name, the hash key (the cookie, or a fresh random one): derived names. */
  affinityKeys: Array<{ variable: string; cookie: string }>;
  /** affinity: per cookie name and attributes, the Set-Cookie value for a request without the cookie. */
  affinityCookies: Array<{ variable: string; cookie: string; key: string; attributes: string }>;
  canaries: CanarySelector[];
  /** ingress-nginx's variables the served snippets read (src/annotations/snippet-variables.ts), sorted. */
  ingressNginxVariables: string[];
  /**
   * nginx's `resolver` (addresses as nginx takes them: `ip`, `ip:port`, `[ipv6]:port`) when an
   * ExternalName upstream needs it; absent otherwise (nothing is resolved while nginx runs).
   */
  resolver?: string[];
  /**
   * Reload-free endpoints: the sidecar's DNS responder (`ip:port`) that dynamic upstreams resolve
   * through, and the loopback port of the server that answers 503 for an upstream without ready
   * endpoints (the TLS one listens on the next port, when HTTPS is on). Absent: every upstream
   * lists its endpoints in the files, and a change reloads nginx.
   */
  endpointResolver?: { address: string; unavailablePort: number };
  /**
   * Reload-free endpoints: `namespace/service` of the Services whose endpoints these files depend
   * on (listed, or absent and so a 503 or a fallback), sorted: a change of theirs takes a full pass.
   */
  endpointsInFiles?: string[];
  /** Problems that belong to no Ingress (the --default-ssl-certificate Secret), sorted. */
  warnings: string[];
  /**
   * When a certificate in use expires or a refused one becomes valid (ISO 8601): translating
   * again then gives another model. Null when no such time is ahead.
   */
  tlsRecheckAt: string | null;
}

export interface Https {
  /** The port nginx listens on for TLS. */
  port: number;
  /** The port in the redirect's Location: what clients reach (443 in front of a pod's 8443). */
  redirectPort: number;
  /** nginx 1.25.1 and later: `http2 on;`; before: `listen ... ssl http2`. */
  http2: 'directive' | 'listen';
}
