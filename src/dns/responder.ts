// From a query's bytes to the response's bytes, without sockets: decoding and encoding with
// dns-packet, the DNS header rules, UDP truncation, and the cache that keeps answering cheap.
//
// nginx re-asks every upstream's SRV name each TTL + 1 s, so at 10,000 upstreams this runs
// thousands of times a second with the same few questions: encoded responses are kept per
// question (and transport), every variant of one (SRV answers come with one of two TTLs, picked
// at random per answer), and reused with only the ID changed, until the service host they depend
// on changes (EndpointAnswers.version).
import dnsPacket, { type Packet, type Question } from 'dns-packet';
import { refused, type EndpointAnswers, type Rcode, type Reply } from './answers.ts';

export type Transport = 'udp' | 'tcp';

/** RFC 1035: without EDNS (nginx sends none) a UDP response is at most 512 bytes; more sets TC. */
export const UDP_MAX_BYTES = 512;
/** A TCP message's length is 16 bits: a larger answer keeps as many records as fit. */
export const TCP_MAX_BYTES = 65535;

export type Outcome =
  | {
      kind: 'answer';
      bytes: Buffer;
      /** The question's type, for metrics. */
      qtype: string;
      rcode: Rcode;
      /** UDP answer too large: TC set, the client asks again over TCP. */
      truncated: boolean;
      /** Records left out of a TCP answer larger than a DNS message can be. */
      trimmed: number;
      /** Reused from the cache (only the ID changed). */
      cached: boolean;
    }
  /** Not a query we can read: FORMERR when the header was readable, else nothing to send. */
  | { kind: 'bad'; bytes: Buffer | null; reason: string }
  /** A response, not a query: never answered (two servers must not echo each other forever). */
  | { kind: 'ignored' };

const RCODES: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const HEADER_BYTES = 12;
const QR = 0x8000;
const OPCODE_MASK = 0x7800;

interface Cached {
  /** One encoding per variant of the reply. */
  variants: Buffer[];
  depends: string;
  version: number;
  qtype: string;
  rcode: Rcode;
  truncated: boolean;
  trimmed: number;
}

export class Responder {
  private readonly answers: EndpointAnswers;
  private readonly random: () => number;
  private readonly cache = new Map<string, Cached>();

  /** `random` picks among a reply's variants (tests pass their own). */
  constructor(answers: EndpointAnswers, opts: { random?: () => number } = {}) {
    this.answers = answers;
    this.random = opts.random ?? Math.random;
  }

  /** How many encoded responses are kept (for tests and benchmarks). */
  get cached(): number {
    return this.cache.size;
  }

  respond(msg: Buffer, transport: Transport): Outcome {
    // From the header alone, before dns-packet allocates a list for each count: a response is
    // never answered, and a query has one question, no answers and at most an OPT record.
    if (msg.length < HEADER_BYTES) return { kind: 'bad', bytes: null, reason: 'shorter than a DNS header' };
    if (msg.readUInt16BE(2) & QR) return { kind: 'ignored' };
    const [qd, an, ns, ar] = [4, 6, 8, 10].map((at) => msg.readUInt16BE(at)) as [number, number, number, number];
    if (qd !== 1 || an !== 0 || ns !== 0 || ar > 1) return bad(msg, `section counts ${qd}/${an}/${ns}/${ar}`);
    let query: Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch (err) {
      return bad(msg, (err as Error).message);
    }
    const q = query.questions?.[0];
    if (!q) return bad(msg, 'no question');
    const questions = [q];
    if ((query.flags ?? 0) & OPCODE_MASK) return this.uncached(query, questions, 'NOTIMP', transport);
    if (q.class !== undefined && q.class !== 'IN') {
      // dns-packet cannot encode a class it does not know: leave the question out then.
      return this.uncached(query, q.class.startsWith('UNKNOWN_') ? [] : questions, 'REFUSED', transport);
    }

    const key = `${transport}${flagRd(query)}${q.type} ${q.name}`;
    const hit = this.cache.get(key);
    if (hit && hit.version === this.answers.version(hit.depends)) {
      const bytes = Buffer.from(this.pick(hit.variants));
      bytes.writeUInt16BE(query.id ?? 0, 0);
      const { qtype, rcode, truncated, trimmed } = hit;
      return { kind: 'answer', bytes, qtype, rcode, truncated, trimmed, cached: true };
    }

    const first = this.answers.answer(q);
    const out = encode(query, q, first, transport);
    const variants = [out.bytes];
    for (let v = 1; v < first.variants; v++)
      variants.push(encode(query, q, this.answers.answer(q, v), transport).bytes);
    if (first.depends !== null) {
      // Bounded: random names must not grow it without end. Emptying it costs one encode per name.
      if (this.cache.size >= 4 * this.answers.size + 1024) this.cache.clear();
      const version = this.answers.version(first.depends);
      const { qtype, rcode, truncated, trimmed } = out;
      const kept = variants.map((b) => Buffer.from(b));
      this.cache.set(key, { variants: kept, qtype, rcode, truncated, trimmed, depends: first.depends, version });
    }
    return { kind: 'answer', ...out, bytes: this.pick(variants), cached: false };
  }

  private pick(variants: Buffer[]): Buffer {
    return variants.length === 1 ? variants[0]! : variants[Math.floor(this.random() * variants.length)]!;
  }

  private uncached(query: Packet, questions: Question[], rcode: Rcode, transport: Transport): Outcome {
    const reply: Reply = { ...refused(), rcode };
    return { kind: 'answer', ...encode(query, questions, reply, transport), cached: false };
  }
}

function flagRd(query: Packet): 0 | 1 {
  return (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED ? 1 : 0;
}

/** Header flags of a response: the query's opcode and RD copied, authoritative, no recursion. */
function responseFlags(query: Packet, rcode: Rcode, truncated = false): number {
  return (
    ((query.flags ?? 0) & (OPCODE_MASK | dnsPacket.RECURSION_DESIRED)) |
    dnsPacket.AUTHORITATIVE_ANSWER |
    (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
    RCODES[rcode]
  );
}

function encode(
  query: Packet,
  q: Question | Question[],
  reply: Reply,
  transport: Transport,
): { bytes: Buffer; qtype: string; rcode: Rcode; truncated: boolean; trimmed: number } {
  const questions = Array.isArray(q) ? q : [q];
  const qtype = questions[0]?.type ?? 'none';
  const packet: Packet = {
    type: 'response',
    id: query.id ?? 0,
    flags: responseFlags(query, reply.rcode),
    questions,
    answers: reply.answers,
    authorities: reply.authorities,
  };
  let bytes = dnsPacket.encode(packet);
  if (transport === 'udp' && bytes.length > UDP_MAX_BYTES) {
    // The question only: nginx (and any resolver) asks again over TCP and ignores the rest.
    const flags = responseFlags(query, reply.rcode, true);
    bytes = dnsPacket.encode({ type: 'response', id: packet.id, flags, questions });
    return { bytes, qtype, rcode: reply.rcode, truncated: true, trimmed: 0 };
  }
  let trimmed = 0;
  if (bytes.length > TCP_MAX_BYTES) {
    const all = reply.answers;
    const fits = (n: number) => dnsPacket.encodingLength({ ...packet, answers: all.slice(0, n) }) <= TCP_MAX_BYTES;
    const base = dnsPacket.encodingLength({ ...packet, answers: [] });
    let keep = Math.floor(((TCP_MAX_BYTES - base) * all.length) / (bytes.length - base));
    while (keep > 0 && !fits(keep)) keep--;
    while (keep < all.length && fits(keep + 1)) keep++;
    trimmed = all.length - keep;
    bytes = dnsPacket.encode({ ...packet, answers: all.slice(0, keep) });
  }
  return { bytes, qtype, rcode: reply.rcode, truncated: false, trimmed };
}

/** FORMERR, with the ID and opcode of a query whose header was readable. */
function bad(msg: Buffer, reason: string): Outcome {
  const query: Packet = { id: msg.readUInt16BE(0), flags: msg.readUInt16BE(2) };
  const bytes = dnsPacket.encode({ type: 'response', id: query.id, flags: responseFlags(query, 'FORMERR') });
  return { kind: 'bad', bytes, reason };
}
