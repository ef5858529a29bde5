// mirror-target may name only canonical hosts, never the pod itself or a cloud metadata service:
// nginx hands non-dotted-quad hosts to the system resolver, whose inet_aton reads numeric forms.
import { deepStrictEqual, equal, throws } from 'node:assert/strict';
import { parseMirrorTarget } from '../../src/annotations/index.ts';
import { InvalidValue } from '../../src/grammar.ts';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';
import { model, server } from './translate/common.ts';

const M = 'nginx.ingress.kubernetes.io/mirror-target';
const host = (url: string) => parseMirrorTarget(M, url).host;
const refused = (url: string, why: RegExp) =>
  throws(
    () => parseMirrorTarget(M, url),
    (err: unknown) => err instanceof InvalidValue && why.test(err.message),
    url,
  );

describe('SSRF: mirror-target hosts', () => {
  it('refuses every other spelling of 169.254.169.254 (and of 127.0.0.1) that resolvers accept', () => {
    for (const h of [
      '2852039166',
      '0xa9fea9fe',
      '0251.0376.0251.0376',
      '169.254.43518',
      '169.0xfe.169.254',
      '0x7f.1',
      '2130706433',
      '127.1',
      '0177.0.0.1',
      '169.254.169.0254',
    ]) {
      refused(`http://${h}/`, /in a form other than dotted-quad/);
    }
  });

  it('refuses loopback, link-local, unspecified and multicast addresses in every family and form', () => {
    const cases: Array<[string, RegExp]> = [
      ['169.254.169.254', /link-local/],
      ['169.254.0.1', /link-local/],
      ['127.0.0.1', /loopback/],
      ['127.255.0.3', /loopback/],
      ['0.0.0.0', /unspecified/],
      ['224.0.0.1', /multicast/],
      ['255.255.255.255', /multicast or reserved/],
      ['100.100.100.200', /metadata/],
      ['[::ffff:169.254.169.254]', /IPv4-mapped/],
      ['[::ffff:127.0.0.1]', /IPv4-mapped/],
      ['[::ffff:a9fe:a9fe]', /IPv4-mapped/],
      ['[0:0:0:0:0:ffff:7f00:1]', /IPv4-mapped/],
      ['[::169.254.169.254]', /IPv4-compatible/],
      ['[64:ff9b::a9fe:a9fe]', /NAT64/],
      ['[2002:a9fe:a9fe::1]', /6to4/],
      ['[::1]', /loopback/],
      ['[0:0:0:0:0:0:0:1]', /loopback/],
      ['[::]', /unspecified/],
      ['[fe80::1]', /link-local/],
      ['[FEBF::1]', /link-local/],
      ['[fe80::1%25eth0]', /must be an http:\/\/ or https:\/\/ URL/],
      ['[ff02::1]', /multicast/],
      ['[fd00:ec2::254]', /metadata/],
      ['localhost', /local host or a cloud metadata/],
      ['api.localhost', /local host or a cloud metadata/],
      ['metadata.google.internal', /local host or a cloud metadata/],
      ['METADATA.GOOGLE.INTERNAL', /local host or a cloud metadata/],
      ['metadata', /local host or a cloud metadata/],
      ['[169.254.169.254]', /bracketed IPv6/],
    ];
    for (const [h, why] of cases) refused(`http://${h}/copy`, why);
  });

  it('accepts canonical public and private addresses and DNS names, and keeps them as written (lowercase)', () => {
    deepStrictEqual(
      [
        '10.0.0.5',
        '192.168.1.1',
        '8.8.8.8',
        '[2001:db8::1]',
        '[fd12:3456::1]',
        'mirror.shop.svc.cluster.local',
        'Mirror.Example.com',
        '1password.com',
        'x.0ab',
      ].map((h) => host(`https://${h}:8443/`)),
      [
        '10.0.0.5',
        '192.168.1.1',
        '8.8.8.8',
        '[2001:db8::1]',
        '[fd12:3456::1]',
        'mirror.shop.svc.cluster.local',
        'mirror.example.com',
        '1password.com',
        'x.0ab',
      ],
    );
  });

  it('an Ingress whose mirror-target is refused answers 503 at its paths, and says why', () => {
    const ing = ingress('m', [rule('shop.test', path('/', 'Prefix', 'web'))], {
      annotations: { [M]: 'http://0xa9fea9fe/latest/meta-data/' },
    });
    const m = model(snapshot({ ingresses: [ing], backends: [backendService('web')] }));
    equal(server(m, 'shop.test').locations[0]!.action.kind, 'unavailable');
    equal(server(m, 'shop.test').mirrors.length, 0);
    equal(
      m.rejections.some(
        (r) =>
          r.ingress === 'default/m' &&
          /mirror-target.*"0xa9fea9fe" is an IPv4 address in a form other than dotted-quad/.test(r.reason),
      ),
      true,
      JSON.stringify(m.rejections),
    );
  });
});
