// The DNS server on real loopback sockets, as a resolver reaches it: UDP and TCP on one port,
// truncation and the TCP fallback, TCP framing (several queries in one segment, one query split
// across segments), bad packets, and what its metrics count. nginx itself asks in dns-nginx.spec.ts.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { EndpointAnswers, type EndpointTarget } from '../../src/dns/answers.ts';
import { addressHost, serviceHost, serviceQueryName } from '../../src/dns/names.ts';
import { DnsServer } from '../../src/dns/server.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Metrics } from '../../src/ops/metrics.ts';

type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode: string };

const web = serviceHost('shop', 'web', 80);
const big = serviceHost('shop', 'big', 80);
const many = (n: number): EndpointTarget[] =>
  Array.from({ length: n }, (_, i) => ({ ip: `10.0.${i >> 8}.${i & 255}`, port: 8080 }));

function query(name: string, type: dnsPacket.RecordType, id: number): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] });
}

/** One UDP exchange; null when nothing came back within `timeoutMs`. */
async function udpAsk(host: string, port: number, msg: Buffer, timeoutMs = 2000): Promise<Decoded | null> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  try {
    return await new Promise<Decoded | null>((resolve, reject) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      socket.on('message', (reply) => {
        clearTimeout(timer);
        resolve(dnsPacket.decode(reply) as Decoded);
      });
      socket.on('error', reject);
      socket.send(msg, port, host);
    });
  } finally {
    socket.close();
  }
}

/** Writes `chunks` to one TCP connection and reads `count` framed responses. */
async function tcpAsk(port: number, chunks: Buffer[], count: number): Promise<Decoded[]> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const replies: Decoded[] = [];
  try {
    return await new Promise<Decoded[]>((resolve, reject) => {
      let buffered = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error(`got ${replies.length} of ${count} responses`)), 5000);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const length = buffered.readUInt16BE(0);
          replies.push(dnsPacket.decode(buffered.subarray(2, 2 + length)) as Decoded);
          buffered = buffered.subarray(2 + length);
        }
        if (replies.length >= count) {
          clearTimeout(timer);
          resolve(replies);
        }
      });
      socket.on('error', reject);
      void (async () => {
        for (const c of chunks) {
          socket.write(c);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
    });
  } finally {
    socket.destroy();
  }
}

const framed = (msg: Buffer) => Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 255]), msg]);

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as Array<{ value: number; labels: Record<string, string | number> }>;
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

describe('DNS server (real UDP and TCP sockets)', function () {
  this.timeout(30_000);
  let server: DnsServer;
  let answers: EndpointAnswers;
  let metrics: Metrics;

  before(async () => {
    answers = new EndpointAnswers({ unavailablePort: 20000 });
    metrics = new Metrics();
    server = new DnsServer({ host: '127.0.0.1', port: 0, answers, logger: createMemoryLogger().logger, metrics });
    await server.start();
    answers.replace(
      new Map([
        [web, [{ ip: '10.0.0.1', port: 8080 }]],
        [big, many(40)],
      ]),
    );
  });
  after(async () => {
    await server?.stop();
  });

  it('answers over UDP and over TCP on the one port it chose', async () => {
    assert.ok(server.port > 0);
    const udp = await udpAsk('127.0.0.1', server.port, query(serviceQueryName(web, false), 'SRV', 11));
    assert.equal(udp?.id, 11);
    assert.equal(udp?.rcode, 'NOERROR');
    assert.deepEqual(
      udp?.answers?.map((a) => (a as dnsPacket.SrvAnswer).data.target),
      [addressHost('10.0.0.1')],
    );
    const [tcp] = await tcpAsk(server.port, [framed(query(addressHost('10.0.0.1'), 'A', 12))], 1);
    assert.equal(tcp?.id, 12);
    assert.deepEqual(
      tcp?.answers?.map((a) => (a as { data: string }).data),
      ['10.0.0.1'],
    );
  });

  it('truncates a large answer over UDP and gives it whole over TCP, as nginx then asks', async () => {
    const name = serviceQueryName(big, false);
    const udp = await udpAsk('127.0.0.1', server.port, query(name, 'SRV', 21));
    assert.equal(udp?.flag_tc, true);
    assert.deepEqual(udp?.answers, []);
    const [tcp] = await tcpAsk(server.port, [framed(query(name, 'SRV', 22))], 1);
    assert.equal(tcp?.flag_tc, false);
    assert.equal(tcp?.answers?.length, 40);
    assert.ok((await metricValue(metrics, 'ingress_sidecar_dns_truncated_total')) >= 1);
  });

  it('reads several TCP queries in one segment and one query split across segments', async () => {
    const a = framed(query(serviceQueryName(web, false), 'SRV', 31));
    const b = framed(query(addressHost('10.0.0.1'), 'A', 32));
    const c = framed(query(serviceQueryName(big, false), 'SRV', 33));
    const replies = await tcpAsk(
      server.port,
      [Buffer.concat([a, b]), c.subarray(0, 1), c.subarray(1, 30), c.subarray(30)],
      3,
    );
    assert.deepEqual(
      replies.map((r) => [r.id, r.rcode, r.answers?.length]),
      [
        [31, 'NOERROR', 1],
        [32, 'NOERROR', 1],
        [33, 'NOERROR', 40],
      ],
    );
  });

  it('answers FORMERR to a bad packet, counts it, and goes on answering', async () => {
    const before = await metricValue(metrics, 'ingress_sidecar_dns_errors_total', { kind: 'bad_packet' });
    const good = query(serviceQueryName(web, false), 'SRV', 41);
    const formerr = await udpAsk('127.0.0.1', server.port, good.subarray(0, 20));
    assert.equal(formerr?.rcode, 'FORMERR');
    assert.equal(formerr?.id, 41);
    assert.equal(await udpAsk('127.0.0.1', server.port, Buffer.from([1, 2, 3]), 300), null);
    const [tcp] = await tcpAsk(server.port, [framed(Buffer.from('not dns at all')), framed(good)], 2);
    assert.equal(tcp?.rcode, 'FORMERR');
    assert.equal((await udpAsk('127.0.0.1', server.port, good))?.rcode, 'NOERROR');
    assert.equal(await metricValue(metrics, 'ingress_sidecar_dns_errors_total', { kind: 'bad_packet' }), before + 3);
  });

  it('counts queries by type, response code and transport', async () => {
    const srv = await metricValue(metrics, 'ingress_sidecar_dns_queries_total', { type: 'SRV', rcode: 'NOERROR' });
    await udpAsk('127.0.0.1', server.port, query(serviceQueryName(serviceHost('x', 'y', 1), false), 'SRV', 51));
    await udpAsk('127.0.0.1', server.port, query('example.com', 'TXT', 52));
    assert.ok(srv >= 4);
    assert.equal(
      await metricValue(metrics, 'ingress_sidecar_dns_queries_total', {
        type: 'SRV',
        rcode: 'NXDOMAIN',
        transport: 'udp',
      }),
      1,
    );
    assert.equal(
      await metricValue(metrics, 'ingress_sidecar_dns_queries_total', {
        type: 'other',
        rcode: 'REFUSED',
        transport: 'udp',
      }),
      1,
    );
    assert.ok(
      (await metricValue(metrics, 'ingress_sidecar_dns_queries_total', { type: 'SRV', transport: 'tcp' })) >= 2,
    );
  });

  it('listens on IPv6 loopback too, and frees its port when stopped', async () => {
    const v6 = new DnsServer({ host: '::1', port: 0, answers, logger: createMemoryLogger().logger });
    await v6.start();
    const reply = await udpAsk('::1', v6.port, query(serviceQueryName(web, false), 'SRV', 61));
    assert.equal(reply?.rcode, 'NOERROR');
    const port = v6.port;
    await v6.stop();
    const again = new DnsServer({ host: '::1', port, answers, logger: createMemoryLogger().logger });
    await again.start();
    assert.equal(again.port, port);
    await again.stop();
  });

  it('says why it cannot listen on a port that is taken', async () => {
    const other = new DnsServer({ host: '127.0.0.1', port: server.port, answers, logger: createMemoryLogger().logger });
    await assert.rejects(other.start(), /EADDRINUSE/);
  });
});
