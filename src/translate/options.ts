// What translate is asked to do: the options the sidecar (src/sync/translate-options.ts) builds.

export interface TranslateOptions {
  ingressClass: string;
  httpPort: number;
  ipv6: boolean;
  /** JSON access log for our servers; absent or null leaves access logging to nginx.conf. */
  accessLog?: string | null;
  /** TLS termination; absent: no HTTPS listener, and spec.tls is reported as not enabled. */
  tls?: TlsOptions;
  /**
   * The time certificates must be valid at. Required with `tls` (translate reads no clock; the
   * sidecar passes the time of each pass).
   */
  now?: Date;
  /**
   * The nginx version the config is for (`nginx -v`): it decides the HTTP/2 syntax (absent: the
   * pre-1.25.1 syntax, which later versions accept with a warning) and how ExternalName names are
   * resolved (1.27.3 and later: in the upstream; absent or older: through a variable proxy_pass),
   * and whether affinity-mode persistent can be served (1.29.6 and later: nginx's sticky cookie).
   */
  nginxVersion?: string;
  /**
   * --resolver: the DNS servers nginx resolves ExternalName Services with (`ip`, `ip:port`,
   * `[ipv6]:port`; in a pod, the cluster DNS of /etc/resolv.conf). Absent or empty: ExternalName
   * backends cannot be served (they answer 503, with the reason).
   */
  resolver?: readonly string[];
  /**
   * Reload-free endpoints (the sidecar decides: nginx 1.27.3 or later, --endpoints-mode): Service
   * upstreams name a host the sidecar's DNS responder at `resolver` (`ip:port`) answers with the
   * ready endpoints, and a Service without ready endpoints is still proxied (to the loopback
   * listener on `unavailablePort` that answers 503, where the responder points). Absent: endpoints
   * are written into the files.
   */
  dynamicEndpoints?: { resolver: string; unavailablePort: number };
  /**
   * Where private files (htpasswd files of auth-type basic) go when TLS is off; absolute. With
   * TLS they go to tls.certDir, the one directory the sidecar's CertStore writes. Neither: such
   * Ingresses cannot be served (they answer 503).
   */
  privateDir?: string;
  /**
   * --allow-snippet-annotations: configuration-snippet and server-snippet are parsed (src/annotations/snippets.ts)
   * and rendered. Absent or false: they are refused and reported, as everything else unknown.
   */
  allowSnippets?: boolean;
  /**
   * --allow-cross-namespace-canary: a canary Ingress may split the traffic of a main Ingress in
   * another namespace. Absent or false: only in its own namespace (a tenant who may write an
   * Ingress must not take another namespace's requests).
   */
  allowCrossNamespaceCanary?: boolean;
  /**
   * --allow-cross-namespace-hosts: Ingresses of every namespace share a host, as in ingress-nginx
   * (paths still go to the oldest Ingress that claims them). Absent or false: a host is served by
   * one namespace, its oldest Ingress's.
   */
  allowCrossNamespaceHosts?: boolean;
  /**
   * --default-backend-service NAMESPACE/NAME: the Service (its first port) that answers what no
   * Ingress's defaultBackend does (unmatched paths, hosts no rule names) and custom-http-errors
   * without a default-backend annotation. Absent: 404.
   */
  defaultBackendService?: string;
  /** --watch-ingress-without-class: also serve Ingresses that name no class (see isOurs). */
  watchIngressWithoutClass?: boolean;
  /**
   * Ingresses (namespace/name) nginx refused (src/sync/settle.ts): they keep their paths, which answer
   * 503, and nothing of their annotations is rendered. The caller reports why.
   */
  closed?: ReadonlySet<string>;
}

export interface TlsOptions {
  /** The port nginx listens on for HTTPS. */
  httpsPort: number;
  /** The port in HTTP -> HTTPS redirects, as clients see it (443 in front of a pod's 8443). Default 443. */
  httpsRedirectPort?: number;
  /** Absolute directory where the certificate files live (`<confDir>/ingress-sidecar-certs`). */
  certDir: string;
  /** Self-signed certificate and key (PEM), generated once by the caller: the last-resort default. */
  defaultCertificate: { pem: string };
  /** `namespace/name` of a kubernetes.io/tls Secret to use as the default certificate instead. */
  defaultSslCertificate?: string;
  /**
   * Certificate files (by name) that nginx refused to load, with its message: Secrets whose
   * certificate is one of them count as unusable. The sidecar fills it from `nginx -t`.
   */
  refusedCertificates?: ReadonlyMap<string, string>;
}
