// What the sidecar's DNS server answers for each kind of question, byte for byte as a resolver
// reads it (spec/unit/dns/wire.ts), and what replace() accepts.
import assert from 'node:assert/strict';
import { EndpointAnswers } from '../../../src/dns/answers.ts';
import { addressHost, ENDPOINTS_DOMAIN, serviceQueryName } from '../../../src/dns/names.ts';
import { Responder } from '../../../src/dns/responder.ts';
import { InvalidValue } from '../../../src/grammar.ts';
import { api, ask, decode, empty, query, setup, srvTargets, targets, UNAVAILABLE, web } from './wire.ts';

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
