// The Responder's codec and cache, as a resolver sees them: what it answers to packets it cannot
// read or will not answer, truncation and the TCP size limit, the cache and the TTL variants.
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { addressHost, serviceHost, serviceQueryName } from '../../../src/dns/names.ts';
import { Responder } from '../../../src/dns/responder.ts';
import { api, ask, decode, query, setup, srvTargets, targets, UNAVAILABLE, web } from './wire.ts';

describe('DNS responder', () => {
  describe('what it will not answer', () => {
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

  describe('TTL', () => {
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
});
