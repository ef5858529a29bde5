// Flag values about where Ingress status comes from, and the address form status holds. Kept free
// of @kubernetes/client-node so that src/config.ts (loaded in every mode) does not load it: the
// directory mode never talks to an API server.
import { isIP } from 'node:net';
import { isDnsSubdomain } from '../grammar.ts';

/** The Lease name replicas elect a status writer on (`--election-id`). */
export const DEFAULT_ELECTION_ID = 'ingress-sidecar-leader';

/** One entry of status.loadBalancer.ingress. */
export interface LoadBalancerAddress {
  ip?: string;
  hostname?: string;
}

export type PublishFrom =
  { kind: 'service'; namespace: string; name: string } | { kind: 'addresses'; addresses: LoadBalancerAddress[] };

/** `--publish-service NS/NAME`. Throws an Error whose message suits a ConfigError. */
export function parsePublishService(value: string): { namespace: string; name: string } {
  const parts = value.split('/');
  const [namespace, name] = parts;
  if (
    parts.length !== 2 ||
    !namespace ||
    !name ||
    !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace) ||
    !/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)
  ) {
    throw new Error(`--publish-service must be NAMESPACE/NAME of a Service, got ${JSON.stringify(value)}`);
  }
  return { namespace, name };
}

/**
 * `--publish-address ADDR[,ADDR]`: IPs become {ip}, DNS names {hostname}. Throws an Error whose
 * message suits a ConfigError.
 */
export function parsePublishAddresses(value: string): LoadBalancerAddress[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === ''))
    throw new Error(
      `--publish-address must be a comma-separated list of IPs or DNS names, got ${JSON.stringify(value)}`,
    );
  return normalize(
    items.map((s) => {
      if (isIP(s)) return { ip: s };
      const host = s.toLowerCase();
      if (!isDnsSubdomain(host))
        throw new Error(`--publish-address: ${JSON.stringify(s)} is neither an IP address nor a DNS name`);
      return { hostname: host };
    }),
  );
}

/** Sorted, de-duplicated, only ip/hostname: the form written and compared. */
export function normalize(addrs: readonly LoadBalancerAddress[]): LoadBalancerAddress[] {
  const byKey = new Map<string, LoadBalancerAddress>();
  for (const a of addrs) {
    const clean: LoadBalancerAddress = {};
    if (a.ip) clean.ip = a.ip;
    if (a.hostname) clean.hostname = a.hostname;
    if (clean.ip || clean.hostname) byKey.set(addrKey(clean), clean);
  }
  return [...byKey.keys()].sort().map((k) => byKey.get(k)!);
}

export function addrKey(a: LoadBalancerAddress): string {
  return `${a.ip ?? ''}|${a.hostname ?? ''}`;
}
