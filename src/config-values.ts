// The value parsers of the flag table (config-flags.ts).
import { isDnsSubdomain, resolverAddress } from './grammar.ts';

// ---- value parsers: each throws an Error completing the sentence `"<value>" ...` ----

export function portOrZero(raw: string): number {
  return raw.trim() === '0' ? 0 : port(raw);
}

export function namespacedName(raw: string): string {
  const [ns, name, ...rest] = raw.split('/');
  if (rest.length > 0 || !ns || !name || !DNS1123_LABEL.test(ns) || ns.length > 63 || !isDnsSubdomain(name)) {
    throw new Error('must be NAMESPACE/NAME');
  }
  return raw;
}

export function hostPort(raw: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(raw);
  if (!m || Number(m[2]) > 65535) throw new Error('must be HOST:PORT, e.g. 0.0.0.0:10254 or [::]:10254');
  return raw;
}

/** The path reaches nginx.conf: a narrow grammar, no quoting tricks needed. */
export function accessLogPath(raw: string): string | null {
  if (raw === 'off') return null;
  if (!/^\/[A-Za-z0-9._/-]+$/.test(raw) || raw.includes('/../'))
    throw new Error('must be off or an absolute path of letters, digits, ".", "_", "-" and "/"');
  return raw;
}

/**
 * Paths under the conf dir reach nginx.conf (certificate and htpasswd files), in directives that
 * interpolate `$variables`: a narrow grammar, as for --access-log.
 */
export function plainPath(raw: string): string {
  nonEmpty(raw);
  if (!/^[A-Za-z0-9._/-]+$/.test(raw) || raw.split('/').includes('..')) {
    throw new Error('must be a path of letters, digits, ".", "_", "-" and "/" (it is written into nginx.conf)');
  }
  return raw;
}

export function nonEmpty(raw: string): string {
  if (raw === '') throw new Error('must not be empty');
  return raw;
}

function integer(raw: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`is not ${what}`);
  return Number(raw);
}

export function port(raw: string): number {
  return integer(raw, 1, 65535, 'a port number (an integer from 1 to 65535)');
}

export function milliseconds(raw: string): number {
  // The ceiling is setTimeout's: longer delays fire at once.
  return integer(raw, 0, 2 ** 31 - 1, 'a non-negative integer number of milliseconds (at most 2147483647)');
}

export function count(raw: string): number {
  return integer(raw, 0, 1_000_000, 'a non-negative integer (at most 1000000)');
}

export function percent(raw: string): number {
  return integer(raw, 1, 100, 'a percentage (an integer from 1 to 100)');
}

export function boolean(raw: string): boolean {
  const v = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new Error('is not a boolean (true or false)');
}

export function oneOf<T extends string>(allowed: readonly T[]): (raw: string) => T {
  return (raw) => {
    const found = allowed.find((a) => a === raw);
    if (found === undefined) throw new Error(`is not one of ${allowed.join(', ')}`);
    return found;
  };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function dns1123Label(raw: string): string {
  if (raw.length > 63 || !DNS1123_LABEL.test(raw)) {
    throw new Error(
      'is not a DNS-1123 label (a namespace name: lower-case letters, digits and "-", at most 63 characters)',
    );
  }
  return raw;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function dns1123Subdomain(raw: string): string {
  if (raw.length > 253 || !DNS1123_SUBDOMAIN.test(raw)) {
    throw new Error('is not a DNS-1123 subdomain (lower-case letters, digits, "-" and ".", at most 253 characters)');
  }
  return raw;
}

/** --resolver: DNS servers for nginx's `resolver`, comma-separated (`10.96.0.10`, `10.0.0.2:53`, `[fd00::a]:53`). */
export function resolverList(raw: string): string[] {
  const items = raw.split(',').map((x) => x.trim());
  const out = items.map(resolverAddress);
  if (items.length === 0 || out.some((x) => x === null))
    throw new Error('must be a comma-separated list of IP addresses, each with an optional :PORT (IPv6 in brackets)');
  return [...new Set(out as string[])];
}

/**
 * The `nameserver` lines of resolv.conf (what a pod's cluster DNS is), as nginx's `resolver`
 * takes them; those nginx cannot use (a link-local IPv6 address with a zone) are left out.
 */
export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const address = m ? resolverAddress(m[1]) : null;
    if (address && !out.includes(address)) out.push(address);
  }
  return out;
}
