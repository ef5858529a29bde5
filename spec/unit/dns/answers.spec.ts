// What the sidecar's DNS server answers, byte for byte as a resolver reads it: queries are encoded
// with dns-packet, passed through the Responder (answers + codec + cache, no sockets) and the
// responses decoded again.
import assert from 'node:assert/strict';
import dnsPacket, { type Packet, type RecordType, type SrvAnswer } from 'dns-packet';
import { EndpointAnswers, type EndpointTarget } from '../../../src/dns/answers.ts';
import { addressHost, ENDPOINTS_DOMAIN, serviceHost, serviceQueryName } from '../../../src/dns/names.ts';
import { Responder, type Transport } from '../../../src/dns/responder.ts';
import { InvalidValue } from '../../../src/grammar.ts';

const UNAVAILABLE = 20000;
const web = serviceHost('shop', 'web', 80);
const api = serviceHost('shop', 'api', 443);
const empty = serviceHost('shop', 'empty', 80);

/** `random` as the Responder takes it: 0 picks the first variant (TTL 0), 0.99 the last. */
function setup(random: () => number = () => 0) {
  const answers = new EndpointAnswers({ unavailablePort: UNAVAILABLE });
  return { answers, responder: new Responder(answers, { random }) };
}

/** dns-packet decodes the response code; its types leave it out. */
type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode: string };
const decode = (bytes: Buffer): Decoded => dnsPacket.decode(bytes) as Decoded;

let nextId = 1;
function query(name: string, type: RecordType | 'ANY', opts: { id?: number; flags?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? nextId++,
    flags: opts.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as RecordType }],
  });
}

function ask(responder: Responder, msg: Buffer, transport: Transport = 'tcp') {
  const out = responder.respond(msg, transport);
  assert.equal(out.kind, 'answer');
  const packet = decode(out.bytes);
  // nginx drops a response unless it is a standard query's response without Z, AD or CD bits.
  assert.equal((packet.flags ?? 0) & 0xf870 & ~0x0400, 0x0000, 'opcode and Z/AD/CD bits clear');
  assert.equal(packet.type, 'response');
  assert.equal(packet.id, msg.readUInt16BE(0), 'the query ID');
  assert.deepEqual(packet.questions, decode(msg).questions, 'the question echoed');
  return { out, packet };
}

function srvTargets(
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

const targets = (...t: Array<[string, number]>): EndpointTarget[] => t.map(([ip, port]) => ({ ip, port }));

describe('DNS answers', () => {
  describe('before the endpoints are known (a sidecar just restarted)', () => {
    it('answers SERVFAIL for SRV names, so nginx keeps the peers it has', () => {
      const { responder } = setup();
      for (const tls of [false, true]) {
        const { packet } = ask(responder, query(serviceQueryName(web, tls), 'SRV'));
        assert.equal(packet.rcode, 'SERVFAIL');
        assert.deepEqual(packet.answers, []);
      }
    });

    it('still answers address names, which never change', () => {
      const { responder } = setup();
      const { packet } = ask(responder, query(addressHost('10.0.0.7'), 'A'));
      assert.equal(packet.rcode, 'NOERROR');
      assert.deepEqual(
        packet.answers?.map((a) => [a.type, (a as { data: string }).data]),
        [['A', '10.0.0.7']],
      );
    });
  });

  describe('SRV', () => {
    it('gives one record per ready endpoint: priority 10, weight 1, the address name and port', () => {
      const { answers, responder } = setup(() => 0.99);
      answers.replace(new Map([[web, targets(['10.0.0.2', 8080], ['10.0.0.1', 8080], ['fd00::5', 9090])]]));
      const { packet } = ask(responder, query(serviceQueryName(web, false), 'SRV'));
      assert.equal(packet.rcode, 'NOERROR');
      assert.equal(packet.flag_aa, true, 'authoritative');
      assert.equal(packet.flag_rd, true, 'RD copied');
      assert.equal(packet.flag_ra, false, 'no recursion');
      assert.deepEqual(srvTargets(packet), [
        { target: addressHost('10.0.0.1'), port: 8080, priority: 10, weight: 1, ttl: 1 },
        { target: addressHost('10.0.0.2'), port: 8080, priority: 10, weight: 1, ttl: 1 },
        { target: addressHost('fd00::5'), port: 9090, priority: 10, weight: 1, ttl: 1 },
      ]);
    });

    it('drops duplicate endpoints and orders them, so one set is one answer', () => {
      const { answers, responder } = setup();
      answers.replace(
        new Map([[web, targets(['10.0.0.2', 80], ['10.0.0.1', 81], ['10.0.0.1', 80], ['10.0.0.2', 80])]]),
      );
      const first = ask(responder, query(serviceQueryName(web, false), 'SRV', { id: 9 })).out;
      assert.deepEqual(
        srvTargets(decode(first.kind === 'answer' ? first.bytes : Buffer.alloc(0))).map((t) => [t.target, t.port]),
        [
          [addressHost('10.0.0.1'), 80],
          [addressHost('10.0.0.1'), 81],
          [addressHost('10.0.0.2'), 80],
        ],
      );
      const other = new EndpointAnswers({ unavailablePort: UNAVAILABLE });
      other.replace(new Map([[web, targets(['10.0.0.1', 80], ['10.0.0.2', 80], ['10.0.0.1', 81])]]));
      const second = new Responder(other, { random: () => 0 }).respond(
        query(serviceQueryName(web, false), 'SRV', { id: 9 }),
        'tcp',
      );
      assert.ok(first.kind === 'answer' && second.kind === 'answer');
      assert.deepEqual(second.bytes, first.bytes);
    });

    it('carries a TTL of 0 or 1 at random, one per answer, so that nginx re-asks after 1 or 2 s', () => {
      const picks = [0, 0.7, 0.2, 0.9, 0.4, 0.6];
      const { answers, responder } = setup(() => picks.shift() ?? 0);
      answers.replace(new Map([[web, targets(['10.0.0.1', 80], ['10.0.0.2', 80])]]));
      const ttls = [0, 1, 2, 3, 4, 5].map((i) => {
        const { out, packet } = ask(responder, query(serviceQueryName(web, false), 'SRV'));
        assert.equal(out.kind === 'answer' && out.cached, i > 0, 'cached after the first');
        const perRecord = srvTargets(packet).map((t) => t.ttl);
        assert.equal(new Set(perRecord).size, 1, 'one TTL for the whole answer');
        return perRecord[0];
      });
      assert.deepEqual(ttls, [0, 1, 0, 1, 0, 1]);
      // Math.random, as the server runs it: both, about evenly.
      const real = new Responder(answers);
      const counts = [0, 0];
      for (let i = 0; i < 400; i++) {
        const out = real.respond(query(serviceQueryName(web, false), 'SRV'), 'udp');
        assert.ok(out.kind === 'answer');
        counts[srvTargets(decode(out.bytes))[0]!.ttl]!++;
      }
      assert.ok(counts[0]! > 100 && counts[1]! > 100, JSON.stringify(counts));
    });

    it('points a host without ready endpoints at the unavailable listener: its port for plain, the next for TLS', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[empty, []]]));
      const plain = ask(responder, query(serviceQueryName(empty, false), 'SRV')).packet;
      assert.equal(plain.rcode, 'NOERROR');
      assert.deepEqual(
        srvTargets(plain).map((t) => [t.target, t.port]),
        [[addressHost('127.0.0.1'), UNAVAILABLE]],
      );
      const tls = ask(responder, query(serviceQueryName(empty, true), 'SRV')).packet;
      assert.deepEqual(
        srvTargets(tls).map((t) => [t.target, t.port]),
        [[addressHost('127.0.0.1'), UNAVAILABLE + 1]],
      );
    });

    it('answers NXDOMAIN with the SOA for an unknown host (nginx then empties that upstream)', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      const { packet } = ask(responder, query(serviceQueryName(api, false), 'SRV'));
      assert.equal(packet.rcode, 'NXDOMAIN');
      assert.deepEqual(packet.answers, []);
      assert.deepEqual(
        packet.authorities?.map((a) => [a.type, a.name, (a as { data: { minimum: number } }).data.minimum]),
        [['SOA', ENDPOINTS_DOMAIN, 1]],
      );
    });

    it('answers NODATA for other types of a known SRV name and of its host', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      for (const [name, type] of [
        [serviceQueryName(web, false), 'A'],
        [serviceQueryName(web, false), 'TXT'],
        [web, 'A'],
        [web, 'SRV'],
        [`_tcp.${web}`, 'A'],
      ] as const) {
        const { packet } = ask(responder, query(name, type));
        assert.equal(packet.rcode, 'NOERROR', `${type} ${name}`);
        assert.deepEqual(packet.answers, [], `${type} ${name}`);
        assert.deepEqual(
          packet.authorities?.map((a) => a.type),
          ['SOA'],
          `${type} ${name}`,
        );
      }
      assert.equal(ask(responder, query(api, 'A')).packet.rcode, 'NXDOMAIN');
    });

    it('matches names in any case and echoes the question as asked', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      const name = serviceQueryName(web, false).toUpperCase();
      const { packet } = ask(responder, query(name, 'SRV'));
      assert.equal(packet.rcode, 'NOERROR');
      assert.equal(packet.answers?.[0]?.name, name);
    });
  });

  describe('addresses', () => {
    it('answers A for an ip4 name and NODATA with the SOA for AAAA, TTL 300', () => {
      const { responder } = setup();
      const name = addressHost('10.1.2.3');
      const a = ask(responder, query(name, 'A')).packet;
      assert.deepEqual(
        a.answers?.map((r) => [r.type, (r as { ttl: number }).ttl, (r as { data: string }).data]),
        [['A', 300, '10.1.2.3']],
      );
      const aaaa = ask(responder, query(name, 'AAAA')).packet;
      assert.equal(aaaa.rcode, 'NOERROR');
      assert.deepEqual(aaaa.answers, []);
      assert.deepEqual(
        aaaa.authorities?.map((r) => [r.type, (r as { data: { minimum: number } }).data.minimum]),
        [['SOA', 300]],
      );
    });

    it('answers AAAA for an ip6 name and NODATA for A', () => {
      const { responder } = setup();
      const name = addressHost('fd00::1');
      const aaaa = ask(responder, query(name, 'AAAA')).packet;
      assert.deepEqual(
        aaaa.answers?.map((r) => [r.type, (r as { data: string }).data]),
        [['AAAA', 'fd00::1']],
      );
      const a = ask(responder, query(name, 'A')).packet;
      assert.equal(a.rcode, 'NOERROR');
      assert.deepEqual(a.answers, []);
    });
  });

  describe('everything else', () => {
    it('refuses names outside the endpoints domain (no recursion here)', () => {
      const { responder } = setup();
      for (const name of ['example.com', 'internal', 'ingress-sidecar.internal', `x${ENDPOINTS_DOMAIN}`])
        assert.equal(ask(responder, query(name, 'A')).packet.rcode, 'REFUSED', name);
    });

    it('answers NXDOMAIN for other names inside it, and the SOA at its apex', () => {
      const { responder, answers } = setup();
      answers.replace(new Map());
      for (const name of [`x.${ENDPOINTS_DOMAIN}`, `1-2-3.ip4.${ENDPOINTS_DOMAIN}`, `a.b.ip6.${ENDPOINTS_DOMAIN}`])
        assert.equal(ask(responder, query(name, 'A')).packet.rcode, 'NXDOMAIN', name);
      const soa = ask(responder, query(ENDPOINTS_DOMAIN, 'SOA')).packet;
      assert.deepEqual(
        soa.answers?.map((a) => a.type),
        ['SOA'],
      );
      assert.equal(ask(responder, query(ENDPOINTS_DOMAIN, 'A')).packet.rcode, 'NOERROR');
    });

    it('answers FORMERR to what it cannot read, when the header says who asked, and nothing otherwise', () => {
      const { responder } = setup();
      const good = query(serviceQueryName(web, false), 'SRV', { id: 4242 });
      const cut = responder.respond(good.subarray(0, 20), 'udp');
      assert.equal(cut.kind, 'bad');
      assert.ok(cut.kind === 'bad' && cut.bytes);
      const formerr = decode(cut.bytes);
      assert.equal(formerr.rcode, 'FORMERR');
      assert.equal(formerr.id, 4242);
      assert.deepEqual(responder.respond(Buffer.from([1, 2, 3]), 'udp'), {
        kind: 'bad',
        bytes: null,
        reason: 'shorter than a DNS header',
      });
      // A name compressed with a pointer forward is unreadable.
      const pointer = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 40, 0, 1, 0, 1])]);
      assert.equal(responder.respond(pointer, 'tcp').kind, 'bad');
      // Random bytes never throw.
      for (let i = 0; i < 2000; i++) {
        const junk = Buffer.from(Array.from({ length: 1 + (i % 80) }, (_, j) => (i * 7919 + j * 104729) & 0xff));
        const out = responder.respond(junk, i % 2 ? 'udp' : 'tcp');
        assert.ok(['answer', 'bad', 'ignored'].includes(out.kind));
      }
    });

    it('answers no response (a DNS server must not answer answers)', () => {
      const { responder } = setup();
      const response = dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'x', type: 'A' }] });
      assert.deepEqual(responder.respond(response, 'udp'), { kind: 'ignored' });
    });

    it('answers FORMERR to several questions, NOTIMP to other opcodes, REFUSED to other classes', () => {
      const { responder } = setup();
      const two = dnsPacket.encode({
        type: 'query',
        id: 5,
        questions: [
          { name: addressHost('10.0.0.1'), type: 'A' },
          { name: addressHost('10.0.0.2'), type: 'A' },
        ],
      });
      const none = dnsPacket.encode({ type: 'query', id: 6, questions: [] });
      for (const msg of [two, none]) {
        const out = responder.respond(msg, 'udp');
        assert.ok(out.kind === 'bad' && out.bytes);
        const formerr = decode(out.bytes);
        assert.equal(formerr.rcode, 'FORMERR');
        assert.equal(formerr.id, msg.readUInt16BE(0));
      }
      const status = query(addressHost('10.0.0.1'), 'A', { flags: 2 << 11 });
      const notimp = responder.respond(status, 'udp');
      assert.ok(notimp.kind === 'answer');
      assert.equal(decode(notimp.bytes).rcode, 'NOTIMP');
      const chaos = dnsPacket.encode({
        type: 'query',
        id: 7,
        questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }],
      });
      assert.equal(ask(responder, chaos).packet.rcode, 'REFUSED');
    });
  });

  describe('size', () => {
    const many = (n: number) =>
      targets(...Array.from({ length: n }, (_, i): [string, number] => [`10.0.${i >> 8}.${i & 255}`, 8080]));

    it('sets TC on UDP when the answer exceeds 512 bytes, with only the question; TCP has it all', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, many(40)]]));
      const udp = ask(responder, query(serviceQueryName(web, false), 'SRV'), 'udp');
      assert.ok(udp.out.kind === 'answer' && udp.out.truncated);
      assert.equal(udp.packet.flag_tc, true);
      assert.deepEqual(udp.packet.answers, []);
      const tcp = ask(responder, query(serviceQueryName(web, false), 'SRV'), 'tcp');
      assert.equal(tcp.packet.flag_tc, false);
      assert.equal(srvTargets(tcp.packet).length, 40);
    });

    it('fits 3 endpoints of a short Service name into 512 bytes of UDP (dns-packet does not compress names)', () => {
      const { answers, responder } = setup();
      let fit = 0;
      for (let n = 1; n <= 10; n++) {
        answers.replace(new Map([[web, many(n)]]));
        const out = responder.respond(query(serviceQueryName(web, false), 'SRV'), 'udp');
        if (out.kind === 'answer' && !out.truncated) fit = n;
      }
      assert.equal(fit, 3);
    });

    it('keeps as many records as a TCP message holds when the answer is larger', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, many(1000)]]));
      const { out, packet } = ask(responder, query(serviceQueryName(web, false), 'SRV'), 'tcp');
      assert.ok(out.kind === 'answer');
      assert.ok(out.bytes.length <= 65535);
      assert.ok(out.trimmed > 0);
      assert.equal(srvTargets(packet).length + out.trimmed, 1000);
      // Not one more would fit.
      assert.ok(out.bytes.length + 130 > 65535, `${out.bytes.length} bytes`);
    });
  });

  describe('cache', () => {
    it('reuses the encoded answer for the same question, with only the ID changed', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      const first = responder.respond(query(serviceQueryName(web, false), 'SRV', { id: 1 }), 'udp');
      const second = responder.respond(query(serviceQueryName(web, false), 'SRV', { id: 2 }), 'udp');
      assert.ok(first.kind === 'answer' && second.kind === 'answer');
      assert.equal(first.cached, false);
      assert.equal(second.cached, true);
      assert.deepEqual(second.bytes.subarray(2), first.bytes.subarray(2));
      assert.equal(second.bytes.readUInt16BE(0), 2);
      assert.equal(first.bytes.readUInt16BE(0), 1, 'the first answer was not changed by the second');
    });

    it('answers anew once replace() changes that host, and keeps the cached answer when it did not', () => {
      const { answers, responder } = setup();
      const name = serviceQueryName(web, false);
      const ports = () => srvTargets(ask(responder, query(name, 'SRV')).packet).map((t) => t.port);
      const cached = () => {
        const out = responder.respond(query(name, 'SRV'), 'tcp');
        return out.kind === 'answer' && out.cached;
      };
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      assert.deepEqual(ports(), [80]);
      answers.replace(
        new Map([
          [web, targets(['10.0.0.1', 80])],
          [api, targets(['10.0.0.9', 443])],
        ]),
      );
      assert.equal(cached(), true, 'another host changed');
      answers.replace(
        new Map([
          [web, targets(['10.0.0.1', 81])],
          [api, targets(['10.0.0.9', 443])],
        ]),
      );
      assert.deepEqual(ports(), [81]);
      answers.replace(new Map([[api, targets(['10.0.0.9', 443])]]));
      assert.equal(ask(responder, query(name, 'SRV')).packet.rcode, 'NXDOMAIN');
      answers.replace(new Map([[web, []]]));
      assert.deepEqual(ports(), [UNAVAILABLE]);
      answers.replace(new Map([[web, targets(['10.0.0.1', 81])]]));
      assert.deepEqual(ports(), [81]);
    });

    it('answers anew after the first replace() (SERVFAIL is not kept)', () => {
      const { answers, responder } = setup();
      const name = serviceQueryName(web, false);
      assert.equal(ask(responder, query(name, 'SRV')).packet.rcode, 'SERVFAIL');
      assert.equal(ask(responder, query(`x${name}`, 'SRV')).packet.rcode, 'NXDOMAIN');
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      assert.equal(ask(responder, query(name, 'SRV')).packet.rcode, 'NOERROR');
    });

    it('stays bounded when asked random names', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      for (let i = 0; i < 5000; i++)
        responder.respond(query(serviceQueryName(serviceHost('ns', `s${i}`, 80), false), 'SRV'), 'udp');
      assert.ok(responder.cached <= 4 * answers.size + 1024, `${responder.cached} cached`);
    });
  });

  describe('replace()', () => {
    it('refuses a malformed host, address or port, and keeps the answers it had', () => {
      const { answers, responder } = setup();
      answers.replace(new Map([[web, targets(['10.0.0.1', 80])]]));
      for (const bad of [
        new Map([['example.com', targets(['10.0.0.1', 80])]]),
        new Map([[web, targets(['10.0.0.300', 80])]]),
        new Map([[web, targets(['fe80::1%eth0', 80])]]),
        new Map([[web, targets(['10.0.0.1', 0])]]),
        new Map([[web, targets(['10.0.0.1', 70000])]]),
        new Map([
          [api, targets(['10.0.0.2', 80])],
          [web, targets(['nope', 80])],
        ]),
      ])
        assert.throws(() => answers.replace(bad), InvalidValue);
      assert.deepEqual(
        srvTargets(ask(responder, query(serviceQueryName(web, false), 'SRV')).packet).map((t) => t.port),
        [80],
      );
      assert.equal(ask(responder, query(serviceQueryName(api, false), 'SRV')).packet.rcode, 'NXDOMAIN');
    });

    it('refuses an unavailable port without a next port, and TTLs out of range', () => {
      assert.throws(() => new EndpointAnswers({ unavailablePort: 65535 }), InvalidValue);
      assert.throws(() => new EndpointAnswers({ unavailablePort: 0 }), InvalidValue);
      assert.throws(() => new EndpointAnswers({ unavailablePort: 1000, srvTtls: [-1] }), InvalidValue);
      assert.throws(() => new EndpointAnswers({ unavailablePort: 1000, srvTtls: [] }), InvalidValue);
      assert.throws(() => new EndpointAnswers({ unavailablePort: 1000, addressTtl: 1.5 }), InvalidValue);
    });
  });
});
