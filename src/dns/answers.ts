// What the sidecar's DNS server says, without I/O: the ready endpoints of each service host (set
// whole by replace()) and, for one question, the records, response code and authority. The server
// (server.ts) decodes, encodes and caches; this module decides.
//
// What nginx (>= 1.27.3, ngx_http_upstream_zone_module.c and ngx_resolver.c) does with answers,
// which is why they look as they do:
// - It re-asks each `server NAME service=... resolve` TTL + 1 s after an answer (the TTL counted
//   in whole seconds), from one worker, and writes the peers into the shared zone. A worker asks
//   for every upstream at once when it starts, and with one fixed TTL they stay in step: at
//   10,000 upstreams a burst of 10,000 questions every 2 s, more than the sockets' buffers hold
//   (a quarter were dropped, each costing that upstream a 5 s resend). So SRV answers carry a
//   TTL of 0 or 1 at random: nginx re-asks after 1 or 2 s, an endpoint change still reaches it
//   within 2 s, and the refreshes spread out within seconds (upstreams / 1.5 s questions a second).
// - NXDOMAIN empties the upstream; any other error (SERVFAIL, a timeout) keeps the peers it has
//   and asks again after max(resolver_timeout, 1 s). So an unknown host is NXDOMAIN, but a server
//   that has not been told the endpoints yet (just restarted) answers SERVFAIL.
// - SRV records of the lowest priority are the peers (higher ones are backups); the weight
//   becomes the peer's weight (0 is read as 1). All records here have priority 10 and weight 1:
//   plain round robin, as the reload path renders.
// - A peer is kept across answers when its target name, address, port and weight are unchanged,
//   so address names encode the address and never change.
// - It asks A and AAAA of each target and caches the address for its TTL; a NODATA for the other
//   family is fine (it needs no SOA, which it never reads; the SOA is there for other resolvers,
//   RFC 2308).
import type { Answer, Question } from 'dns-packet';
import { InvalidValue, isPortNumber } from '../grammar.ts';
import {
  addressHost,
  EMPTY_NAMES,
  ENDPOINTS_DOMAIN,
  parseAddressHost,
  parseServiceHost,
  parseServiceQuery,
} from './names.ts';

export interface EndpointTarget {
  ip: string;
  port: number;
}

export type Rcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED';

export interface Reply {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  /** How many variants of this reply there are (SRV answers differ in TTL): answer(q, 0..n-1). */
  variants: number;
  /**
   * The service host this reply depends on: it is stale once version(host) differs from what it
   * was when the reply was made. Null: the reply never changes.
   */
  depends: string | null;
}

export interface AnswersOptions {
  /**
   * The listener nginx serves 503 on (plain; TLS on the next port): an SRV answer for a known
   * host without ready endpoints points there, so a client sees 503 as on the reload path.
   */
  unavailablePort: number;
  /** The TTLs SRV answers (membership) carry, one picked at random per answer, seconds. */
  srvTtls?: readonly number[];
  /** TTL of address answers, which never change, seconds. */
  addressTtl?: number;
}

export const SRV_TTLS: readonly number[] = [0, 1];
export const ADDRESS_TTL = 300;
const SRV_PRIORITY = 10;
const SRV_WEIGHT = 1;
const UNAVAILABLE_TARGET = addressHost('127.0.0.1');

/** One SRV record's variable part: the target's address name and port. */
interface Srv {
  target: string;
  port: number;
}

interface HostEntry {
  /** The targets as replace() was given them (copied): the same input again costs no parsing. */
  input: readonly EndpointTarget[];
  records: readonly Srv[];
  version: number;
}

export class EndpointAnswers {
  private hosts = new Map<string, HostEntry>();
  private replaced = false;
  private counter = 0;
  private readonly unavailablePort: number;
  private readonly srvTtls: readonly number[];
  /** For negative answers: how long the name may be cached as absent. */
  private readonly negativeTtl: number;
  private readonly addressTtl: number;

  constructor(opts: AnswersOptions) {
    if (!isPortNumber(opts.unavailablePort) || !isPortNumber(opts.unavailablePort + 1))
      throw new InvalidValue(`unavailable port ${opts.unavailablePort}: it and the next port must be 1-65535`);
    this.unavailablePort = opts.unavailablePort;
    this.srvTtls = (opts.srvTtls ?? SRV_TTLS).map((t) => ttl(t, 'srvTtls'));
    if (this.srvTtls.length === 0) throw new InvalidValue('srvTtls: at least one TTL');
    this.negativeTtl = Math.max(...this.srvTtls);
    this.addressTtl = ttl(opts.addressTtl ?? ADDRESS_TTL, 'addressTtl');
  }

  /** True once replace() has been called: until then membership questions get SERVFAIL. */
  get ready(): boolean {
    return this.replaced;
  }

  /** How many service hosts are known. */
  get size(): number {
    return this.hosts.size;
  }

  /**
   * Sets every service host's ready endpoints at once (hosts absent from `map` are unknown:
   * NXDOMAIN). Throws InvalidValue, changing nothing, when a host or target is not well formed.
   */
  replace(map: ReadonlyMap<string, readonly EndpointTarget[]>): void {
    const next = new Map<string, HostEntry>();
    for (const [host, targets] of map) {
      const old = this.hosts.get(host);
      // The common case at scale: most hosts unchanged, given in the same order as last time.
      if (old && sameInput(old.input, targets)) {
        next.set(host, old);
        continue;
      }
      if (!old && !parseServiceHost(host))
        throw new InvalidValue(`service host ${JSON.stringify(host)}: not a service host`);
      const records = normalize(host, targets);
      const input = targets.map((t) => ({ ip: t.ip, port: t.port }));
      const same = this.replaced && old !== undefined && sameRecords(old.records, records);
      next.set(host, { input, records: same ? old.records : records, version: same ? old.version : ++this.counter });
    }
    this.hosts = next;
    this.replaced = true;
  }

  /**
   * Changes whenever the replies for `host` may change: -1 before the first replace(), 0 while it
   * is unknown, a new positive number each time its targets change.
   */
  version(host: string): number {
    if (!this.replaced) return -1;
    return this.hosts.get(host)?.version ?? 0;
  }

  /** The reply to one question (any case; class IN is the caller's check); `variant` < reply.variants. */
  answer(q: Question, variant = 0): Reply {
    const name = q.name.toLowerCase().replace(/\.$/, '');
    // A string: dns-packet also decodes ANY and types it has no name for (UNKNOWN_65).
    const qtype: string = q.type;
    if (name !== ENDPOINTS_DOMAIN && !name.endsWith(`.${ENDPOINTS_DOMAIN}`)) return refused();

    const address = parseAddressHost(name);
    if (address) {
      const type = address.family === 4 ? 'A' : 'AAAA';
      if (qtype !== type && qtype !== 'ANY') return this.negative('NOERROR', this.addressTtl, null);
      return {
        rcode: 'NOERROR',
        answers: [{ type, name: q.name, ttl: this.addressTtl, data: address.ip }],
        authorities: [],
        variants: 1,
        depends: null,
      };
    }

    const service = parseServiceQuery(name);
    if (service) {
      const depends = service.host;
      if (!this.replaced) return { rcode: 'SERVFAIL', answers: [], authorities: [], variants: 1, depends };
      const entry = this.hosts.get(service.host);
      if (!entry) return this.negative('NXDOMAIN', this.negativeTtl, depends);
      if (qtype !== 'SRV' && qtype !== 'ANY') return this.negative('NOERROR', this.negativeTtl, depends);
      const records =
        entry.records.length > 0
          ? entry.records
          : [{ target: UNAVAILABLE_TARGET, port: this.unavailablePort + (service.tls ? 1 : 0) }];
      return {
        rcode: 'NOERROR',
        answers: records.map((r) => ({
          type: 'SRV',
          name: q.name,
          ttl: this.srvTtls[variant % this.srvTtls.length]!,
          data: { priority: SRV_PRIORITY, weight: SRV_WEIGHT, port: r.port, target: r.target },
        })),
        authorities: [],
        variants: this.srvTtls.length,
        depends,
      };
    }

    // A service host and its `_tcp` child exist (their children are the SRV names): NODATA.
    const host = name.startsWith('_tcp.') ? name.slice('_tcp.'.length) : name;
    if (parseServiceHost(host)) {
      if (!this.replaced) return { rcode: 'SERVFAIL', answers: [], authorities: [], variants: 1, depends: host };
      return this.negative(this.hosts.has(host) ? 'NOERROR' : 'NXDOMAIN', this.negativeTtl, host);
    }
    if (EMPTY_NAMES.has(name)) {
      if (name === ENDPOINTS_DOMAIN && (qtype === 'SOA' || qtype === 'ANY'))
        return { rcode: 'NOERROR', answers: [this.soa(this.addressTtl)], authorities: [], variants: 1, depends: null };
      return this.negative('NOERROR', this.addressTtl, null);
    }
    return this.negative('NXDOMAIN', this.addressTtl, null);
  }

  /** NXDOMAIN or NODATA, with the SOA whose minimum tells resolvers how long to cache that. */
  private negative(rcode: 'NOERROR' | 'NXDOMAIN', seconds: number, depends: string | null): Reply {
    return { rcode, answers: [], authorities: [this.soa(seconds)], variants: 1, depends };
  }

  private soa(seconds: number): Answer {
    return {
      type: 'SOA',
      name: ENDPOINTS_DOMAIN,
      ttl: seconds,
      data: {
        mname: ENDPOINTS_DOMAIN,
        rname: `hostmaster.${ENDPOINTS_DOMAIN}`,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: seconds,
      },
    };
  }
}

/** REFUSED: a name outside ENDPOINTS_DOMAIN (this is no recursive resolver). */
export function refused(): Reply {
  return { rcode: 'REFUSED', answers: [], authorities: [], variants: 1, depends: null };
}

function ttl(seconds: number, what: string): number {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > 86400)
    throw new InvalidValue(`${what} ${seconds}: must be 0-86400 seconds`);
  return seconds;
}

/** Checked, duplicates dropped, sorted (address name, then port): one set, one byte-identical answer. */
function normalize(host: string, targets: readonly EndpointTarget[]): Srv[] {
  const byKey = new Map<string, Srv>();
  for (const t of targets) {
    if (!isPortNumber(t.port))
      throw new InvalidValue(`${host}: endpoint port ${JSON.stringify(t.port)} is not 1-65535`);
    const target = addressHost(t.ip); // throws for what is not an address
    byKey.set(`${target} ${String(t.port).padStart(5, '0')}`, { target, port: t.port });
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

function sameInput(a: readonly EndpointTarget[], b: readonly EndpointTarget[]): boolean {
  return a.length === b.length && a.every((t, i) => t.ip === b[i]!.ip && t.port === b[i]!.port);
}

function sameRecords(a: readonly Srv[], b: readonly Srv[]): boolean {
  return a.length === b.length && a.every((r, i) => r.target === b[i]!.target && r.port === b[i]!.port);
}
