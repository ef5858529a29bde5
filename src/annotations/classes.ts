// Every nginx.ingress.kubernetes.io/* annotation ingress-nginx knows, by class. One place for the
// fact "what happens to an annotation this sidecar does not implement":
//
// - implemented: parsed in src/annotations/index.ts (SUPPORTED_ANNOTATIONS);
// - ignorable: its absence changes nothing a client could rely on (logging, tracing, buffers,
//   retries, performance): reported once, and the Ingress is served;
// - must-not-ignore: access control, TLS and protocol semantics, anything whose absence lets more
//   through or sends traffic somewhere else. An Ingress that carries one is not served: its paths
//   answer 503 (so that they cannot fall through to another route), with a Warning naming it.
//
// A must-not-ignore annotation whose value only asks for ingress-nginx's default (`ssl-passthrough:
// "false"`) changes nothing and is ignorable. Unknown names under the prefix are ignorable.
// Names and defaults: ingress-nginx's internal/ingress/annotations/*/main.go.

export type AnnotationClass = 'implemented' | 'ignorable' | 'must-not-ignore';

interface Unimplemented {
  class: 'ignorable' | 'must-not-ignore';
  /** What an Ingress loses without it, for the report. */
  why: string;
  /** Values (lowercased) that ask for nothing beyond ingress-nginx's default: the annotation is then ignorable. */
  defaults?: readonly string[];
}

const EXTERNAL_AUTH =
  'external authentication (auth_request) is not implemented: served without it, requests would reach the backend unauthenticated';
const CLIENT_CERT =
  'client-certificate authentication is not implemented: served without it, clients without a valid certificate would get through';
const BACKEND_TLS =
  'TLS settings towards the backend are not implemented: served without them, the backend would not be verified, or would get another client certificate or server name';
const MODSECURITY =
  'stock nginx has no ModSecurity: served without it, requests the WAF would block would reach the backend';
const SNIPPET =
  'snippets are off (--allow-snippet-annotations): the nginx configuration it carries (often access control or headers) would not apply';

const mustNot = (why: string, defaults?: readonly string[]): Unimplemented => ({
  class: 'must-not-ignore',
  why,
  ...(defaults ? { defaults } : {}),
});
const ignorable = (why: string): Unimplemented => ({ class: 'ignorable', why });

/** ingress-nginx's annotations that this sidecar does not implement (names without the prefix). */
export const UNIMPLEMENTED: Readonly<Record<string, Unimplemented>> = Object.freeze({
  // Access control.
  'auth-url': mustNot(EXTERNAL_AUTH),
  'auth-signin': mustNot(EXTERNAL_AUTH),
  'auth-signin-redirect-param': mustNot(EXTERNAL_AUTH),
  'auth-method': mustNot(EXTERNAL_AUTH),
  'auth-response-headers': mustNot(EXTERNAL_AUTH),
  'auth-request-redirect': mustNot(EXTERNAL_AUTH),
  'auth-cache-key': mustNot(EXTERNAL_AUTH),
  'auth-cache-duration': mustNot(EXTERNAL_AUTH),
  'auth-keepalive': mustNot(EXTERNAL_AUTH),
  'auth-keepalive-share-vars': mustNot(EXTERNAL_AUTH),
  'auth-keepalive-requests': mustNot(EXTERNAL_AUTH),
  'auth-keepalive-timeout': mustNot(EXTERNAL_AUTH),
  'auth-proxy-set-headers': mustNot(EXTERNAL_AUTH),
  'auth-always-set-cookie': mustNot(EXTERNAL_AUTH),
  'auth-snippet': mustNot(EXTERNAL_AUTH),
  'enable-global-auth': ignorable('this sidecar has no global external authentication to enable or disable'),
  'auth-tls-secret': mustNot(CLIENT_CERT),
  'auth-tls-verify-client': mustNot(CLIENT_CERT),
  'auth-tls-verify-depth': mustNot(CLIENT_CERT),
  'auth-tls-error-page': mustNot(CLIENT_CERT),
  'auth-tls-pass-certificate-to-upstream': mustNot(CLIENT_CERT),
  'auth-tls-match-cn': mustNot(CLIENT_CERT),
  satisfy: mustNot('satisfy is not implemented: the allowlist and authentication would not combine as asked', ['all']),
  'limit-whitelist': mustNot(
    'rate-limit exemptions are not implemented: the exempted clients would be limited like every other',
  ),
  'limit-allowlist': mustNot(
    'rate-limit exemptions are not implemented: the exempted clients would be limited like every other',
  ),
  'enable-modsecurity': mustNot(MODSECURITY, ['false']),
  'enable-owasp-core-rules': mustNot(MODSECURITY, ['false']),
  'modsecurity-transaction-id': ignorable('stock nginx has no ModSecurity'),
  'modsecurity-snippet': mustNot(MODSECURITY),
  // TLS and protocols.
  'ssl-passthrough': mustNot(
    'TLS passthrough is not implemented: the sidecar would terminate TLS itself, with another certificate, instead of passing the connection to the backend',
    ['false'],
  ),
  'ssl-ciphers': mustNot(
    'per-Ingress TLS ciphers are not implemented: clients could negotiate ciphers this Ingress excludes',
  ),
  'ssl-prefer-server-ciphers': ignorable(
    'per-Ingress cipher preference is not implemented (the ciphers offered stay the same)',
  ),
  'proxy-ssl-secret': mustNot(BACKEND_TLS),
  'proxy-ssl-verify': mustNot(BACKEND_TLS, ['off']),
  'proxy-ssl-verify-depth': mustNot(BACKEND_TLS),
  'proxy-ssl-name': mustNot(BACKEND_TLS),
  'proxy-ssl-server-name': mustNot(BACKEND_TLS, ['off']),
  'proxy-ssl-ciphers': mustNot(BACKEND_TLS),
  'proxy-ssl-protocols': mustNot(BACKEND_TLS),
  'proxy-http-version': mustNot('proxy-http-version is not implemented: the backend would be spoken to in HTTP/1.1', [
    '1.1',
  ]),
  // Where requests and clients go.
  'upstream-vhost': mustNot(
    "upstream-vhost is not implemented: the backend would get the client's Host header and could serve another site",
  ),
  'server-alias': mustNot(
    'server-alias is not implemented: requests for the alias names would reach whatever else serves them',
  ),
  'from-to-www-redirect': mustNot(
    'from-to-www-redirect is not implemented: requests for the other name would reach whatever else serves it',
  ),
  'proxy-redirect-from': mustNot(
    "proxy-redirect-from/-to are not implemented: Location headers would send clients to the backend's own address",
    ['off'],
  ),
  'proxy-redirect-to': mustNot(
    "proxy-redirect-from/-to are not implemented: Location headers would send clients to the backend's own address",
  ),
  'proxy-cookie-domain': mustNot("proxy-cookie-domain is not implemented: cookies would keep the backend's domain", [
    'off',
  ]),
  'proxy-cookie-path': mustNot(
    "proxy-cookie-path is not implemented: cookies would keep the backend's path and reach more of the site",
    ['off'],
  ),
  'use-port-in-redirects': mustNot(
    'use-port-in-redirects is not implemented: redirects would send clients to the default port',
    ['false'],
  ),
  'custom-headers': mustNot(
    'custom-headers is not implemented: the response headers it names (often security headers) would not be sent',
  ),
  'canary-by-header-pattern': mustNot(
    'canary-by-header-pattern is not implemented: requests it selects would go to the main backend instead',
  ),
  'configuration-snippet': mustNot(SNIPPET),
  'server-snippet': mustNot(SNIPPET),
  'stream-snippet': mustNot('stream-snippet (TCP/UDP configuration) is not implemented'),
  // Ignorable: logging, tracing, buffers, retries, performance, and companions of features refused.
  'affinity-canary-behavior': ignorable('canaries and affinity combine as docs/annotations.md describes'),
  'session-cookie-expires': ignorable('an Expires of its own is not sent (session-cookie-max-age is)'),
  'session-cookie-domain': ignorable('the affinity cookie is a host-only cookie'),
  'session-cookie-conditional-samesite-none': ignorable('SameSite=None is sent to every client that asked for it'),
  'upstream-hash-by-subset': ignorable('consistent hashing spreads over every endpoint'),
  'upstream-hash-by-subset-size': ignorable('consistent hashing spreads over every endpoint'),
  'mirror-host': ignorable("mirrored requests carry the mirror target's host; their answers are discarded"),
  'client-body-buffer-size': ignorable("nginx's default request body buffer applies"),
  'connection-proxy-header': ignorable(
    'the Connection header to the backend keeps connections alive (WebSockets pass)',
  ),
  'enable-access-log': ignorable('access logging follows --access-log'),
  'enable-rewrite-log': ignorable('rewrite logging is off'),
  'enable-opentelemetry': ignorable('stock nginx has no OpenTelemetry module'),
  'opentelemetry-trust-incoming-span': ignorable('stock nginx has no OpenTelemetry module'),
  'opentelemetry-operation-name': ignorable('stock nginx has no OpenTelemetry module'),
  'http2-push-preload': ignorable('nginx removed HTTP/2 server push in 1.25.1'),
  'proxy-buffers-number': ignorable('4 proxy buffers are used'),
  'proxy-busy-buffers-size': ignorable("nginx's default applies"),
  'proxy-max-temp-file-size': ignorable("nginx's default applies"),
  'proxy-request-buffering': ignorable("request bodies are buffered (nginx's default)"),
  'proxy-next-upstream': ignorable("nginx's default retries (error, timeout) apply"),
  'proxy-next-upstream-timeout': ignorable("nginx's default retries apply"),
  'proxy-next-upstream-tries': ignorable("nginx's default retries apply"),
  'limit-rate': ignorable('responses are not bandwidth-limited'),
  'limit-rate-after': ignorable('responses are not bandwidth-limited'),
  'relative-redirects': ignorable('redirects keep absolute Location headers'),
  'disable-proxy-intercept-errors': ignorable("custom-http-errors intercepts the backend's errors"),
  'fastcgi-index': ignorable('backend-protocol FCGI is refused'),
  'fastcgi-params-configmap': ignorable('backend-protocol FCGI is refused'),
});

/** The class of an annotation name (with its prefix) and value, given what this sidecar implements. */
export function classify(
  name: string,
  value: unknown,
  implemented: ReadonlySet<string>,
  prefix: string,
): { class: AnnotationClass; why: string | null } {
  if (implemented.has(name)) return { class: 'implemented', why: null };
  const entry = Object.hasOwn(UNIMPLEMENTED, name.slice(prefix.length))
    ? UNIMPLEMENTED[name.slice(prefix.length)]
    : undefined;
  if (!entry) return { class: 'ignorable', why: null };
  if (
    entry.class === 'must-not-ignore' &&
    entry.defaults &&
    typeof value === 'string' &&
    entry.defaults.includes(value.trim().toLowerCase())
  ) {
    return { class: 'ignorable', why: `its value asks for ingress-nginx's default` };
  }
  return { class: entry.class, why: entry.why };
}
