// Narrow grammars for every value that can reach nginx.conf. Translation parses API strings
// through these before the model holds them; rendering quotes them once more (nginxValue in
// src/nginx/quote.ts) so that even a grammar mistake cannot end a directive early.

import { isIP } from 'node:net';

/** A value that failed its grammar; the message says which field and why, for the user. */
export class InvalidValue extends Error {}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

/** RFC 1123 subdomain, as Kubernetes names and Ingress hosts use. */
export function isDnsSubdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every((l) => DNS_LABEL.test(l));
}

export function isDnsLabel(s: string): boolean {
  return DNS_LABEL.test(s);
}

export type ParsedHost = { kind: 'exact'; host: string } | { kind: 'wildcard'; host: string; suffix: string };

/**
 * An Ingress host: a lowercase DNS name (no IP, no port), or `*.` followed by one. Kubernetes'
 * API server enforces the same; the directory source has no API server in front of it.
 */
export function parseHost(raw: string): ParsedHost {
  const why = (reason: string) => new InvalidValue(`host ${JSON.stringify(raw)}: ${reason}`);
  if (raw.includes(':')) throw why('must not contain a port or be an IPv6 address');
  if (isIP(raw)) throw why('must be a DNS name, not an IP address');
  if (raw.startsWith('*.')) {
    const suffix = raw.slice(2);
    if (!isDnsSubdomain(suffix)) throw why('a wildcard must be "*." followed by a lowercase DNS name');
    return { kind: 'wildcard', host: raw, suffix };
  }
  if (raw.includes('*')) throw why('"*" is allowed only as the whole first label ("*.example.com")');
  if (!isDnsSubdomain(raw)) throw why('must be a lowercase RFC 1123 DNS name (a-z, 0-9, "-", ".")');
  return { kind: 'exact', host: raw };
}

/** An nginx server_name that matches a host as Ingress defines it. */
export function serverNameFor(h: ParsedHost): string {
  if (h.kind === 'exact') return h.host;
  // nginx's own "*.foo.com" also matches a.b.foo.com; Ingress wildcards cover exactly one label.
  return `~^[^.]+\\.${h.suffix.replaceAll('.', '\\.')}$`;
}

// RFC 3986 pchar plus "/" (percent-escapes are decoded before this check).
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const INVALID_SEQUENCES = ['//', '/./', '/../', '%2f', '%2F'];
const INVALID_SUFFIXES = ['/..', '/.'];

/**
 * An Ingress path, as the nginx location literal that matches it. nginx matches locations
 * against the decoded, normalised URI, so percent-escapes are decoded here, and sequences that
 * normalisation removes (which could never match) are refused as the API server refuses them.
 */
export function parsePath(raw: string): string {
  const why = (reason: string) => new InvalidValue(`path ${JSON.stringify(raw)}: ${reason}`);
  if (!raw.startsWith('/')) throw why('must be an absolute path starting with "/"');
  if (raw.length > 2048) throw why('is longer than 2048 characters');
  if (!PATH_CHARS.test(raw)) throw why('may contain only URL path characters (RFC 3986)');
  for (const seq of INVALID_SEQUENCES) if (raw.includes(seq)) throw why(`must not contain "${seq}"`);
  for (const suf of INVALID_SUFFIXES) if (raw.endsWith(suf)) throw why(`must not end with "${suf}"`);
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw why('has an invalid percent-escape');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) throw why('must not encode control characters');
  // Checked again after decoding: "/%2e%2e/" is "/../" to nginx.
  for (const seq of ['//', '/./', '/../']) if (decoded.includes(seq)) throw why(`must not encode "${seq}"`);
  for (const suf of INVALID_SUFFIXES) if (decoded.endsWith(suf)) throw why(`must not encode a trailing "${suf}"`);
  return decoded;
}

/** A Kubernetes object name in a namespace (namespaces and most names are DNS labels/subdomains). */
export function checkObjectName(
  kind: string,
  name: string | undefined,
  grammar: 'label' | 'label1035' | 'subdomain',
): string {
  const ok =
    name !== undefined &&
    (grammar === 'label'
      ? DNS_LABEL.test(name)
      : grammar === 'label1035'
        ? DNS_1035_LABEL.test(name)
        : isDnsSubdomain(name));
  if (!ok) throw new InvalidValue(`${kind} name ${JSON.stringify(name ?? '')} is not a valid Kubernetes name`);
  return name;
}

export function isPortName(s: string): boolean {
  return IANA_SVC_NAME.test(s);
}

export function isPortNumber(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** An endpoint address as nginx's `server` directive takes it, or null when it is not an IP. */
export function upstreamAddress(ip: unknown, port: number): string | null {
  if (typeof ip !== 'string') return null;
  // Node accepts IPv6 zone IDs (fe80::1%eth0); nginx's upstream parser does not.
  if (ip.includes('%')) return null;
  const family = isIP(ip);
  if (family === 4) return `${ip}:${port}`;
  // nginx's ngx_inet6_addr refuses some forms Node accepts ("::" for a single trailing group, as in
  // 1:2:3:4:5:6:7::, which froze every reload). The RFC 5952 form (WHATWG URL's serializer: "::" only
  // for two or more zero groups, lowercase hex, no embedded IPv4) is one nginx always parses.
  if (family === 6) return `${canonicalIpv6(ip)}:${port}`;
  return null;
}

/**
 * A DNS server for nginx's `resolver`: an IP address, optionally with a port (`10.96.0.10`,
 * `10.96.0.10:53`, `[fd00::a]:5353`, `fd00::a`); returns it as nginx takes it (IPv6 in brackets,
 * RFC 5952), or null. Names are refused: nginx would resolve them once, at load, through the system.
 */
export function resolverAddress(raw: unknown): string | null {
  if (typeof raw !== 'string' || raw.includes('%')) return null;
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(raw) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(raw);
  const [host, portText] = m ? [m[1]!, m[2]] : [raw, undefined];
  const port = portText === undefined ? null : Number(portText);
  if (port !== null && (!isPortNumber(port) || portText !== String(port))) return null;
  const family = isIP(host);
  if (family === 4 && /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(host))
    return port === null ? host : `${host}:${port}`;
  // A bare IPv6 address has colons: only the bracketed form may carry a port.
  if (family === 6 && (raw.startsWith('[') || port === null)) {
    const v6 = canonicalIpv6(host);
    return port === null ? v6 : `${v6}:${port}`;
  }
  return null;
}

/** An IPv6 address (Node's isIP says 6, no zone) in RFC 5952 form, in brackets. */
export function canonicalIpv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname;
}

// The values Go's strconv.ParseBool accepts, which is what ingress-nginx reads boolean
// annotations with: Ingresses moving from it keep working unchanged.
const TRUE_VALUES = new Set(['true', 'True', 'TRUE', 't', 'T', '1']);
const FALSE_VALUES = new Set(['false', 'False', 'FALSE', 'f', 'F', '0']);

/** A boolean annotation's value; throws InvalidValue naming the annotation otherwise. */
export function parseBoolAnnotation(name: string, value: unknown): boolean {
  if (typeof value === 'string') {
    if (TRUE_VALUES.has(value)) return true;
    if (FALSE_VALUES.has(value)) return false;
  }
  const shown =
    typeof value === 'string'
      ? JSON.stringify(value.slice(0, 64)) + (value.length > 64 ? '...' : '')
      : `a ${typeof value}`;
  throw new InvalidValue(`annotation ${name} must be "true" or "false", not ${shown}`);
}
