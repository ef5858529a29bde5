// Hosts and addresses that an Ingress author names as a place for nginx to send requests to
// (mirror-target): only canonical forms, and never the pod itself or the cloud's metadata service.
//
// Why canonical forms: nginx parses only dotted-quad IPv4 itself; any other host goes to the
// system resolver, whose inet_aton reads "2852039166", "0xa9fea9fe", "0251.0376.0251.0376" and
// "169.254.43518" all as 169.254.169.254. So a host is a dotted quad without leading zeros, a
// bracketed IPv6 address, or a DNS name whose last label cannot be read as a number (no real
// top-level domain is numeric); everything else is refused before it reaches the model.
//
// What this cannot see: a DNS name that resolves to a refused address (nginx resolves it, not
// us). docs/security.md says to block those with egress policy.

import { isIP } from 'node:net';
import { isDnsSubdomain } from '../grammar.ts';

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
/** A label inet_aton would read as (part of) a number: decimal, octal or hexadecimal. */
const NUMERIC_LABEL = /^(0x[0-9a-f]*|[0-9]+)$/;

/**
 * Names that always mean the local host or a cloud metadata service: localhost (RFC 6761: it and
 * its subdomains resolve to loopback), GCE's metadata.google.internal and metadata.goog, and the
 * bare "metadata" that GCE and Azure resolve.
 */
const FORBIDDEN_NAMES = /^(localhost|.+\.localhost|metadata|metadata\.google\.internal|metadata\.goog)$/;

export type TargetHost = { kind: 'ipv4' | 'dns'; host: string } | { kind: 'ipv6'; host: string };

/**
 * A request target's host as written in a URL (IPv6 in brackets), lowercase; returns the host as
 * nginx should see it (IPv6 bracketed), or throws `fail(reason)`.
 */
export function parseTargetHost(raw: string, fail: (reason: string) => Error): TargetHost {
  const host = raw.toLowerCase();
  if (host.startsWith('[')) {
    const bare = host.endsWith(']') ? host.slice(1, -1) : '';
    if (bare.includes('%') || isIP(bare) !== 6)
      throw fail('must name a DNS host, a dotted-quad IPv4 address or a bracketed IPv6 address');
    refuseIpv6(bare, fail);
    return { kind: 'ipv6', host: `[${bare}]` };
  }
  if (DOTTED_QUAD.test(host)) {
    refuseIpv4(host.split('.').map(Number), fail);
    return { kind: 'ipv4', host };
  }
  const labels = host.split('.');
  if (!isDnsSubdomain(host)) throw fail('must name a DNS host, a dotted-quad IPv4 address or a bracketed IPv6 address');
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    throw fail(
      'is an IPv4 address in a form other than dotted-quad (or a name that resolvers read as one); write it as four decimal numbers without leading zeros',
    );
  }
  if (FORBIDDEN_NAMES.test(host)) throw fail('names the local host or a cloud metadata service, which is refused');
  return { kind: 'dns', host };
}

/** Throws `fail(why)` when requests must not go to an IPv4 address (four octets). */
function refuseIpv4([a, b, c, d]: number[], fail: (reason: string) => Error): void {
  if (a === 127) throw fail('is a loopback address (the pod itself), which is refused');
  if (a === 169 && b === 254)
    throw fail('is a link-local address (cloud metadata services live there), which is refused');
  if (a === 0) throw fail('is an unspecified ("this host") address, which is refused');
  if (a! >= 224) throw fail('is a multicast or reserved address, which is refused');
  // Alibaba Cloud's metadata service.
  if (a === 100 && b === 100 && c === 100 && d === 200)
    throw fail('is a cloud metadata service address, which is refused');
}

/** Throws `fail(why)` when requests must not go to an IPv6 address (valid text form). */
function refuseIpv6(text: string, fail: (reason: string) => Error): void {
  const g = ipv6Groups(text);
  const zeroUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroUpTo(8)) throw fail('is the unspecified address, which is refused');
  if (zeroUpTo(7) && g[7] === 1) throw fail('is the loopback address (the pod itself), which is refused');
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible) reach the IPv4 address: write that instead.
  if (zeroUpTo(5) && g[5] === 0xffff)
    throw fail('is an IPv4-mapped address; write the IPv4 address as a dotted quad instead');
  if (zeroUpTo(6)) throw fail('is an IPv4-compatible address; write the IPv4 address as a dotted quad instead');
  // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds, as do 6to4 and Teredo prefixes.
  if (g[0] === 0x64 && g[1] === 0xff9b)
    throw fail('is a NAT64 address of an IPv4 address; write the IPv4 address as a dotted quad instead');
  if (g[0] === 0x2002 || (g[0] === 0x2001 && g[1] === 0))
    throw fail('is a 6to4 or Teredo address that embeds an IPv4 address, which is refused');
  if ((g[0]! & 0xffc0) === 0xfe80) throw fail('is a link-local address, which is refused');
  if ((g[0]! & 0xff00) === 0xff00) throw fail('is a multicast address, which is refused');
  // AWS's IPv6 metadata service.
  if (g[0] === 0xfd00 && g[1] === 0x0ec2)
    throw fail('is in fd00:ec2::/32, where a cloud metadata service lives, which is refused');
}

/** The eight 16-bit groups of a valid IPv6 text form (an embedded dotted quad is two groups). */
function ipv6Groups(text: string): number[] {
  let t = text;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(t);
  if (v4) {
    const [, a, b, c, d] = v4.map(Number);
    t = `${t.slice(0, v4.index)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head = '', tail] = t.split('::');
  const part = (s: string) => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  const h = part(head);
  if (tail === undefined) return h;
  const tl = part(tail);
  return [...h, ...new Array<number>(8 - h.length - tl.length).fill(0), ...tl];
}
