// The routing model: what nginx should do, already validated. Templates only lay it out.

import type { SnippetDirective } from './annotations/snippets.ts';

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

/** nginx `return` codes that send a Location header. */
export type RedirectCode = 301 | 302 | 303 | 307 | 308;

/**
 * Per-location settings from an Ingress's nginx.ingress.kubernetes.io annotations, already
 * validated (src/annotations/index.ts); null or empty: not set, the server's defaults apply.
 */
export interface LocationSettings {
  /** backend-protocol: `proxy_pass http://` (the default) or `https://`, `grpc_pass grpc://` or `grpcs://`. */
  backendProtocol: 'http' | 'https' | 'grpc' | 'grpcs';
  /** client_max_body_size: digits and an optional k, m or g; "0" lifts the limit. */
  bodySize: string | null;
  /** proxy_connect_timeout, proxy_send_timeout, proxy_read_timeout, in seconds. */
  connectTimeout: number | null;
  sendTimeout: number | null;
  readTimeout: number | null;
  buffering: boolean | null;
  /** proxy_buffer_size, and the size of each of the 4 proxy_buffers. */
  bufferSize: string | null;
  /**
   * `rewrite REGEX REPLACEMENT break;`: the regex is built by translate from a validated path; the
   * replacement is URL path text whose only `$` are the captures `$1` to `$9`.
   */
  rewrite: { regex: string; replacement: string } | null;
  /** The X-Forwarded-Prefix request header: letters, digits, "-._~:/". */
  xForwardedPrefix: string | null;
  /** app-root: a path (no `$`); a request for `/` is answered 302 to it. */
  appRoot: string | null;
  /**
   * permanent-redirect or temporal-redirect: every request is answered with this status and URL.
   * The URL is URL text whose only `$` start `${request_uri}`, `${host}`, `${scheme}`,
   * `${args}` or `${is_args}`.
   */
  redirect: { code: RedirectCode; url: string } | null;
  /** Normalised CIDRs: `deny` each of `deny`; then, when `allow` is not empty, allow each and deny all. */
  deny: string[];
  allow: string[];
  cors: LocationCors | null;
  /** limit_req per zone (rps, rpm); the zones are the model's `limitReqZones`. */
  limitReq: Array<{ zone: string; burst: number }>;
  /** limit_conn; the zone is one of the model's `limitConnZones`. */
  limitConn: { zone: string; connections: number } | null;
  /** auth_basic: the realm (no `$`, `"`, `\`, not "off") and the htpasswd file (a derived path). */
  auth: { realm: string; userFile: string } | null;
  /** affinity: `add_header Set-Cookie $<variable>` (derived): the cookie when the request had none, else empty. */
  setCookie: string | null;
  /** mirror-target: `mirror <uri>`, one of the server's `mirrors`. */
  mirror: { uri: string; body: boolean } | null;
  /** custom-http-errors: `error_page <code> = @<location>` per code, one of the server's `errorLocations`. */
  errorPages: Array<{ code: number; location: string }>;
  /** configuration-snippet (--allow-snippet-annotations): parsed directives, rendered token by token. */
  snippet: SnippetDirective[] | null;
  /** preserve-trailing-slash: the HTTPS redirect keeps a trailing "/" of the request URI; else it is cut, as ingress-nginx does. */
  preserveTrailingSlash: boolean;
}

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

/** A map in the main file that says whether a request's Origin is allowed. */
export interface CorsMap {
  /** Variable names, derived (`isc_cors_<digest>`, `isc_cpf_<digest>`), without `$`. */
  variable: string;
  preflight: string;
  /** PCRE matched case-insensitively against the whole Origin header; built from validated origins. */
  pattern: string;
}

/** Settings of a location no Ingress annotation touches. */
export const DEFAULT_LOCATION_SETTINGS: LocationSettings = Object.freeze({
  backendProtocol: 'http',
  bodySize: null,
  connectTimeout: null,
  sendTimeout: null,
  readTimeout: null,
  buffering: null,
  bufferSize: null,
  rewrite: null,
  xForwardedPrefix: null,
  appRoot: null,
  redirect: null,
  deny: [],
  allow: [],
  cors: null,
  limitReq: [],
  limitConn: null,
  auth: null,
  setCookie: null,
  mirror: null,
  errorPages: [],
  snippet: null,
  preserveTrailingSlash: false,
});

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
  /** The Ingress whose spec.tls asked for TLS on this host; null on the default server. */
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
   * TLS on the HTTPS port with this certificate, or null: no HTTPS listener for this host. The
   * default server always has one when HTTPS is on (the default certificate, for unknown SNI).
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
  servers: UpstreamServer[];
  /**
   * How nginx picks a server: round robin (its default), least_conn (load-balance: ewma), or a
   * consistent hash of `key`: nginx variable text whose `$` start allowed or derived variables.
   */
  balance: { kind: 'round_robin' } | { kind: 'least_conn' } | { kind: 'hash'; key: string };
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
