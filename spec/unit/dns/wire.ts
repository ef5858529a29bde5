// What the DNS specs share: queries encoded with dns-packet, passed through the Responder
// (answers + codec + cache, no sockets), and the responses decoded again and checked as nginx's
// resolver checks them.
import assert from 'node:assert/strict';
import dnsPacket, { type Packet, type RecordType, type SrvAnswer } from 'dns-packet';
import { EndpointAnswers, type EndpointTarget } from '../../../src/dns/answers.ts';
import { serviceHost } from '../../../src/dns/names.ts';
import { Responder, type Transport } from '../../../src/dns/responder.ts';

export const UNAVAILABLE = 20000;
export const web = serviceHost('shop', 'web', 80);
export const api = serviceHost('shop', 'api', 443);
export const empty = serviceHost('shop', 'empty', 80);

/** `random` as the Responder takes it: 0 picks the first variant (TTL 0), 0.99 the last. */
export function setup(random: () => number = () => 0) {
  const answers = new EndpointAnswers({ unavailablePort: UNAVAILABLE });
  return { answers, responder: new Responder(answers, { random }) };
}

/** dns-packet decodes the response code; its types leave it out. */
export type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode: string };
export const decode = (bytes: Buffer): Decoded => dnsPacket.decode(bytes) as Decoded;

let nextId = 1;
export function query(name: string, type: RecordType | 'ANY', opts: { id?: number; flags?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? nextId++,
    flags: opts.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as RecordType }],
  });
}

export function ask(responder: Responder, msg: Buffer, transport: Transport = 'tcp') {
  const out = responder.respond(msg, transport);
  assert.equal(out.kind, 'answer');
  const packet = decode(out.bytes);
  // nginx drops a response unless it is a standard query's response without Z, AD or CD bits.
  assert.equal((packet.flags ?? 0) & 0x7870, 0, 'opcode and Z/AD/CD bits clear');
  assert.equal(packet.type, 'response');
  assert.equal(packet.id, msg.readUInt16BE(0), 'the query ID');
  assert.deepEqual(packet.questions, decode(msg).questions, 'the question echoed');
  return { out, packet };
}

export function srvTargets(
  packet: Packet,
): Array<{ target: string; port: number; priority: number; weight: number; ttl: number }> {
  return (packet.answers ?? []).map((a) => {
    assert.equal(a.type, 'SRV');
    const { data, ttl } = a as SrvAnswer;
    return {
      target: data.target,
      port: data.port,
      priority: data.priority ?? -1,
      weight: data.weight ?? -1,
      ttl: ttl ?? -1,
    };
  });
}

export const targets = (...t: Array<[string, number]>): EndpointTarget[] => t.map(([ip, port]) => ({ ip, port }));
