// The names the sidecar answers for nginx's upstream resolver, in one place. An upstream's server
// is a service host (one per Service port); nginx asks SRV `_http._tcp.<host>` (or `_https` for
// TLS backends) and gets one record per endpoint, whose target name encodes the endpoint's
// address. The address names' answers never change, so nginx may cache them for long; only SRV
// membership changes.
import { isIP } from 'node:net';
import { canonicalIpv6, InvalidValue, isDnsLabel, isPortNumber } from '../grammar.ts';

export const ENDPOINTS_DOMAIN = 'endpoints.ingress-sidecar.internal';
const SUFFIX = `.${ENDPOINTS_DOMAIN}`;
const IP4 = `.ip4${SUFFIX}`;
const IP6 = `.ip6${SUFFIX}`;

/** The names under ENDPOINTS_DOMAIN that exist without records of their own (they have children). */
export const EMPTY_NAMES: ReadonlySet<string> = new Set([ENDPOINTS_DOMAIN, IP4.slice(1), IP6.slice(1)]);

const PORT = /^p([1-9][0-9]{0,4})$/;
const OCTET = /^(0|[1-9][0-9]{0,2})$/;
const GROUP = /^(0|[1-9a-f][0-9a-f]{0,3})$/;

/** `p<port>.<service>.<namespace>.<ENDPOINTS_DOMAIN>`: the name of one Service port's endpoints. */
export function serviceHost(namespace: string, service: string, port: number): string {
  if (!isDnsLabel(namespace)) throw new InvalidValue(`namespace ${JSON.stringify(namespace)}: not a DNS label`);
  if (!isDnsLabel(service)) throw new InvalidValue(`service ${JSON.stringify(service)}: not a DNS label`);
  if (!isPortNumber(port)) throw new InvalidValue(`port ${JSON.stringify(port)}: not 1-65535`);
  return `p${port}.${service}.${namespace}${SUFFIX}`;
}

/** The inverse of serviceHost (lowercase names only), or null. */
export function parseServiceHost(host: string): { namespace: string; service: string; port: number } | null {
  if (!host.endsWith(SUFFIX)) return null;
  const labels = host.slice(0, -SUFFIX.length).split('.');
  if (labels.length !== 3) return null;
  const [p, service, namespace] = labels as [string, string, string];
  const m = PORT.exec(p);
  const port = m ? Number(m[1]) : 0;
  if (!isPortNumber(port) || !isDnsLabel(service) || !isDnsLabel(namespace)) return null;
  return { namespace, service, port };
}

/** The `service=` parameter nginx's `server ... resolve` takes: it asks SRV `_<service>._tcp.<host>`. */
export function srvService(tls: boolean): 'http' | 'https' {
  return tls ? 'https' : 'http';
}

/** The SRV name nginx asks for a service host. */
export function serviceQueryName(host: string, tls: boolean): string {
  return `_${srvService(tls)}._tcp.${host}`;
}

/** An SRV question's name as `{ tls, host }` (lowercase names only), or null. */
export function parseServiceQuery(name: string): { tls: boolean; host: string } | null {
  const tls = name.startsWith('_https._tcp.');
  if (!tls && !name.startsWith('_http._tcp.')) return null;
  const host = name.slice(tls ? '_https._tcp.'.length : '_http._tcp.'.length);
  return parseServiceHost(host) ? { tls, host } : null;
}

/**
 * A name that encodes an endpoint address: `10-1-2-3.ip4.<ENDPOINTS_DOMAIN>`, or for IPv6 all
 * eight groups without leading zeros, `fd00-0-0-0-0-0-0-1.ip6.<ENDPOINTS_DOMAIN>`. One address has
 * exactly one name, so nginx's peers (matched by name and address) stay the same across answers.
 */
export function addressHost(ip: string): string {
  const family = ip.includes('%') ? 0 : isIP(ip);
  if (family === 4) {
    const octets = ip.split('.');
    if (octets.every((o) => OCTET.test(o) && Number(o) <= 255)) return `${octets.join('-')}${IP4}`;
  } else if (family === 6) {
    return `${expandIpv6(canonicalIpv6(ip).slice(1, -1)).join('-')}${IP6}`;
  }
  throw new InvalidValue(`endpoint address ${JSON.stringify(ip)}: not an IPv4 or IPv6 address`);
}

/** The inverse of addressHost (lowercase names only, its exact form): the address, or null. */
export function parseAddressHost(name: string): { ip: string; family: 4 | 6 } | null {
  if (name.endsWith(IP4)) {
    const octets = name.slice(0, -IP4.length).split('-');
    if (octets.length !== 4 || !octets.every((o) => OCTET.test(o) && Number(o) <= 255)) return null;
    return { ip: octets.join('.'), family: 4 };
  }
  if (name.endsWith(IP6)) {
    const groups = name.slice(0, -IP6.length).split('-');
    if (groups.length !== 8 || !groups.every((g) => GROUP.test(g))) return null;
    return { ip: canonicalIpv6(groups.join(':')).slice(1, -1), family: 6 };
  }
  return null;
}

/** The eight groups of an RFC 5952 address (no embedded IPv4), as hex without leading zeros. */
function expandIpv6(canonical: string): string[] {
  const [head, tail] = canonical.split('::') as [string, string | undefined];
  const groups = (s: string) => (s ? s.split(':') : []);
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const zeros = Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16).toString(16));
}

/**
 * The most ready endpoints a Service port may have to be answered by DNS: an SRV record takes
 * ~130 bytes here (dns-packet does not compress names), and nginx reads at most 65,535 bytes over
 * TCP, ~420 records. Above this the endpoints go into the files (a change reloads).
 */
export const MAX_ANSWERED_ENDPOINTS = 300;
