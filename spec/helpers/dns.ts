// A DNS server on loopback for tests: answers A queries for the names it is given (and NXDOMAIN
// for the rest), over UDP, and counts the questions, so a test can see nginx's resolver ask.
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';

export interface TestDns {
  /** `127.0.0.1:PORT`, as --resolver takes it. */
  address: string;
  /** Name (lowercase, no trailing dot) -> IPv4 address; change it while running. */
  records: Map<string, string>;
  /** Every question asked, as `TYPE name`. */
  questions: string[];
  close(): Promise<void>;
}

export async function startDns(records: Record<string, string>, ttl = 1): Promise<TestDns> {
  const socket = dgram.createSocket('udp4');
  const table = new Map(Object.entries(records));
  const questions: string[] = [];
  socket.on('message', (msg, rinfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    questions.push(`${q.type} ${q.name}`);
    const ip = table.get(q.name.toLowerCase().replace(/\.$/, ''));
    const answers: dnsPacket.Answer[] = ip && q.type === 'A' ? [{ type: 'A', name: q.name, ttl, data: ip }] : [];
    const reply = dnsPacket.encode({
      id: query.id,
      type: 'response',
      // Authoritative; NXDOMAIN (rcode 3) for a name we do not know, an empty answer for AAAA of one we do.
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | (ip ? 0 : 3),
      questions: [q],
      answers,
    });
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const { port } = socket.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    records: table,
    questions,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
