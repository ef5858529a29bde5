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
}
