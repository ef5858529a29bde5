// The routing model: what nginx should do, already validated. Templates only lay it out.

/** What a location does with a request. */
export type Action =
  | { kind: 'proxy'; upstream: string }
  /** The path is claimed, but its backend cannot serve: a Service, port or endpoint is missing. */
  | { kind: 'unavailable'; reason: string }
  /** Nothing matched and no default backend exists: nginx's own 404. */
  | { kind: 'notFound' };

export interface Location {
  /** `exact` renders `location = PATH`, `prefix` renders `location PATH`. */
  match: 'exact' | 'prefix';
  /** The literal nginx compares with the normalised request URI. */
  path: string;
  /** The Ingress rule this came from, as the user wrote it. */
  route: { pathType: 'Exact' | 'Prefix' | 'ImplementationSpecific' | 'Default'; path: string };
  /** namespace/name of the Ingress that owns this location. */
  ingress: string;
  /** namespace/name:port of the backend Service, for people reading the config. */
  service: string;
  action: Action;
  /**
   * Plain-HTTP requests are answered with a 308 to https: the host has TLS (unless the Ingress
   * says `ssl-redirect: "false"`) or the Ingress says `force-ssl-redirect: "true"`.
   */
  sslRedirect: boolean;
}

export interface ServerTls {
  /** Absolute path of the file holding chain and key: certDir + a digest of the content. */
  certPath: string;
  /** `namespace/name` of the Secret the certificate came from; null for the generated default. */
  secret: string | null;
  /** The Ingress whose spec.tls asked for TLS on this host; null on the default server. */
  ingress: string | null;
}

/** A certificate file to write into certDir before the config that names it is applied. */
export interface CertificateFile {
  /** `<32 hex digits>.pem`, derived from the content. */
  readonly file: string;
  /** Chain and key. Not enumerable, so that JSON (logs, /routes) and util.inspect leave it out. */
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
}

export interface UpstreamServer {
  /** `ip:port` or `[ipv6]:port`. */
  address: string;
}

export interface Upstream {
  /** `namespace_service_port`: Kubernetes names cannot contain "_", so it is unambiguous. */
  name: string;
  service: string;
  servers: UpstreamServer[];
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
  /** Every certificate file the servers name, sorted by file, each once. */
  certificates: CertificateFile[];
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
