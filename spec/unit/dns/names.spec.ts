// The DNS names nginx asks the sidecar: service hosts, SRV question names, address names, and
// their strict inverses.
import assert from 'node:assert/strict';
import { InvalidValue } from '../../../src/grammar.ts';
import {
  addressHost,
  ENDPOINTS_DOMAIN,
  parseAddressHost,
  parseServiceHost,
  parseServiceQuery,
  serviceHost,
  serviceQueryName,
  srvService,
} from '../../../src/dns/names.ts';

describe('DNS names', () => {
  describe('service hosts', () => {
    it('names a Service port p<port>.<service>.<namespace> under the endpoints domain, and parses it back', () => {
      assert.equal(ENDPOINTS_DOMAIN, 'endpoints.ingress-sidecar.internal');
      const host = serviceHost('shop', 'web', 8080);
      assert.equal(host, 'p8080.web.shop.endpoints.ingress-sidecar.internal');
      assert.deepEqual(parseServiceHost(host), { namespace: 'shop', service: 'web', port: 8080 });
      for (const port of [1, 80, 65535]) assert.equal(parseServiceHost(serviceHost('a', 'b', port))?.port, port);
    });

    it('refuses what is not a DNS label or a port', () => {
      for (const [ns, svc, port] of [
        ['Shop', 'web', 80],
        ['shop', 'web.x', 80],
        ['shop', '', 80],
        ['shop', 'web', 0],
        ['shop', 'web', 65536],
        ['shop', 'web', 80.5],
      ] as const)
        assert.throws(() => serviceHost(ns, svc, port), InvalidValue, `${ns} ${svc} ${port}`);
    });

    it('parses nothing else', () => {
      for (const name of [
        'p80.web.shop.endpoints.ingress-sidecar.internal.',
        'p080.web.shop.endpoints.ingress-sidecar.internal',
        'p0.web.shop.endpoints.ingress-sidecar.internal',
        'p65536.web.shop.endpoints.ingress-sidecar.internal',
        'P80.web.shop.endpoints.ingress-sidecar.internal',
        '80.web.shop.endpoints.ingress-sidecar.internal',
        'p80.web.endpoints.ingress-sidecar.internal',
        'p80.x.web.shop.endpoints.ingress-sidecar.internal',
        'p80.-web.shop.endpoints.ingress-sidecar.internal',
        'p80.web.shop.endpoints.ingress-sidecar.internal.evil',
        'p80.web.shop.example.com',
        '',
      ])
        assert.equal(parseServiceHost(name), null, name);
    });
  });

  describe('SRV question names', () => {
    it('are _http._tcp.<host> for plain backends and _https._tcp.<host> for TLS ones', () => {
      const host = serviceHost('shop', 'web', 80);
      assert.equal(srvService(false), 'http');
      assert.equal(srvService(true), 'https');
      assert.equal(serviceQueryName(host, false), `_http._tcp.${host}`);
      assert.deepEqual(parseServiceQuery(serviceQueryName(host, false)), { tls: false, host });
      assert.deepEqual(parseServiceQuery(serviceQueryName(host, true)), { tls: true, host });
    });

    it('parse nothing else', () => {
      const host = serviceHost('shop', 'web', 80);
      for (const name of [host, `_grpc._tcp.${host}`, `_http._udp.${host}`, `_http.${host}`, '_http._tcp.example.com'])
        assert.equal(parseServiceQuery(name), null, name);
    });
  });

  describe('address names', () => {
    it('encode IPv4 as dashes under ip4 and parse back', () => {
      assert.equal(addressHost('10.1.2.3'), `10-1-2-3.ip4.${ENDPOINTS_DOMAIN}`);
      assert.equal(addressHost('0.0.0.0'), `0-0-0-0.ip4.${ENDPOINTS_DOMAIN}`);
      assert.deepEqual(parseAddressHost(addressHost('255.255.255.255')), { ip: '255.255.255.255', family: 4 });
    });

    it('encode IPv6 as all eight groups without leading zeros under ip6, one name per address', () => {
      assert.equal(addressHost('fd00::1'), `fd00-0-0-0-0-0-0-1.ip6.${ENDPOINTS_DOMAIN}`);
      // Every spelling of one address is one name, so nginx sees one peer.
      for (const spelling of ['FD00:0000::0001', 'fd00:0:0:0:0:0:0:1', 'fd00::0:1'])
        assert.equal(addressHost(spelling), addressHost('fd00::1'), spelling);
      assert.equal(addressHost('::'), `0-0-0-0-0-0-0-0.ip6.${ENDPOINTS_DOMAIN}`);
      assert.equal(addressHost('1:2:3:4:5:6:7::'), `1-2-3-4-5-6-7-0.ip6.${ENDPOINTS_DOMAIN}`);
      assert.equal(addressHost('::ffff:10.0.0.1'), `0-0-0-0-0-ffff-a00-1.ip6.${ENDPOINTS_DOMAIN}`);
      assert.deepEqual(parseAddressHost(addressHost('2001:db8::ab:cd')), { ip: '2001:db8::ab:cd', family: 6 });
      assert.deepEqual(parseAddressHost(addressHost('::ffff:10.0.0.1')), { ip: '::ffff:a00:1', family: 6 });
    });

    it('round-trip a spread of addresses', () => {
      const ips = ['1.2.3.4', '127.0.0.1', '192.168.100.200', '::1', 'fe80::1234:5678', '2001:db8:1:2:3:4:5:6', '1::'];
      for (const ip of ips) {
        const parsed = parseAddressHost(addressHost(ip));
        assert.ok(parsed, ip);
        assert.equal(addressHost(parsed.ip), addressHost(ip), ip);
      }
    });

    it('refuse what is not an address', () => {
      for (const ip of ['1.2.3', '1.2.3.256', '01.2.3.4', 'fe80::1%eth0', 'example.com', '', '1.2.3.4:80', '[::1]'])
        assert.throws(() => addressHost(ip), InvalidValue, ip);
    });

    it('parse only their exact form', () => {
      for (const name of [
        `10-1-2-3.ip4.${ENDPOINTS_DOMAIN}.x`,
        `10-1-2.ip4.${ENDPOINTS_DOMAIN}`,
        `10-1-2-3-4.ip4.${ENDPOINTS_DOMAIN}`,
        `010-1-2-3.ip4.${ENDPOINTS_DOMAIN}`,
        `10-1-2-256.ip4.${ENDPOINTS_DOMAIN}`,
        `10.1.2.3.ip4.${ENDPOINTS_DOMAIN}`,
        `a-1-2-3.ip4.${ENDPOINTS_DOMAIN}`,
        `fd00-0-0-0-0-0-0-1.ip4.${ENDPOINTS_DOMAIN}`,
        `fd00-0-0-0-0-0-1.ip6.${ENDPOINTS_DOMAIN}`,
        `fd00-00-0-0-0-0-0-1.ip6.${ENDPOINTS_DOMAIN}`,
        `FD00-0-0-0-0-0-0-1.ip6.${ENDPOINTS_DOMAIN}`,
        `fd000-0-0-0-0-0-0-1.ip6.${ENDPOINTS_DOMAIN}`,
        `fd00--1.ip6.${ENDPOINTS_DOMAIN}`,
        `10-1-2-3.ip6.${ENDPOINTS_DOMAIN}`,
        `ip4.${ENDPOINTS_DOMAIN}`,
        `10-1-2-3.ip4.example.com`,
      ])
        assert.equal(parseAddressHost(name), null, name);
    });
  });
});
