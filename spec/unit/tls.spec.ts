// src/translate/certificates.ts: what a Secret must hold for its certificate to reach nginx, and what reaches it.
import { deepStrictEqual, equal, match, ok } from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import {
  certificateFromPem,
  certificateFromSecret,
  hostProblem,
  validityProblem,
  type Certificate,
} from '../../src/translate/certificates.ts';
import { InvalidValue, parseHost } from '../../src/grammar.ts';
import { makeCert, tlsSecret, type TestCert } from '../helpers/certs.ts';

// A usable certificate: the parsers throw InvalidValue with the reason for any other.
const good = (c: Certificate): Certificate => c;

/** The reason the parse refuses the certificate with. */
function bad(parse: () => Certificate): string {
  try {
    parse();
  } catch (err) {
    if (err instanceof InvalidValue) return err.message;
    throw err;
  }
  throw new Error('expected the certificate to be refused');
}

describe('tls: certificates from kubernetes.io/tls Secrets', function () {
  this.timeout(30_000);
  let shop: TestCert;
  let other: TestCert;
  let wildcard: TestCert;
  let rsa: TestCert;
  let ca: TestCert;
  let leaf: TestCert;

  before(() => {
    shop = makeCert({ dns: ['shop.test', 'www.shop.test'] });
    other = makeCert({ dns: ['other.test'] });
    wildcard = makeCert({ dns: ['*.apps.test'] });
    rsa = makeCert({ dns: ['rsa.test'], key: 'rsa' });
    ca = makeCert({ cn: 'Test CA', isCa: true, days: 60 });
    leaf = makeCert({ dns: ['chain.test'], ca });
  });

  it('accepts a certificate and its key, and names the file by a digest of the content', () => {
    const c = good(certificateFromSecret(tlsSecret('s', shop.crt, shop.key)));
    match(c.file, /^[0-9a-f]{32}\.pem$/);
    deepStrictEqual(c.dnsNames, ['shop.test', 'www.shop.test']);
    // Re-encoded from what parsed: certificate, then the key, nothing else.
    deepStrictEqual(c.pem.match(/-----BEGIN [A-Z ]+-----/g), [
      '-----BEGIN CERTIFICATE-----',
      '-----BEGIN PRIVATE KEY-----',
    ]);
    equal(new X509Certificate(c.pem).fingerprint256, new X509Certificate(shop.crt).fingerprint256);
    // Same content, same name; another certificate, another name.
    equal(good(certificateFromPem(shop.crt, shop.key)).file, c.file);
    ok(good(certificateFromPem(other.crt, other.key)).file !== c.file);
  });

  it('keeps the PEM text out of JSON and util.inspect', () => {
    const c = good(certificateFromSecret(tlsSecret('s', shop.crt, shop.key)));
    const keyBody = shop.key.split('\n')[1]!;
    ok(!JSON.stringify(c).includes(keyBody));
    ok(!inspect(c, { depth: 5 }).includes(keyBody));
    ok(c.pem.includes('PRIVATE KEY'));
  });

  it('accepts RSA keys (PKCS#1 too) and chains, leaf first', () => {
    good(certificateFromSecret(tlsSecret('s', rsa.crt, rsa.key)));
    const chain = good(certificateFromSecret(tlsSecret('s', leaf.crt, leaf.key)));
    equal(chain.pem.match(/BEGIN CERTIFICATE/g)?.length, 2);
    deepStrictEqual(chain.dnsNames, ['chain.test']);
  });

  it('drops explanatory text around PEM blocks (openssl pkcs12 "Bag Attributes") and never copies it', () => {
    const noisy = `Bag Attributes\n    friendlyName: shop; include /etc/passwd;\nsubject=/CN=shop.test\n${shop.crt}\ntrailing } text`;
    const c = good(certificateFromPem(noisy, `Key Attributes: <No Attributes>\n${shop.key}`));
    ok(!c.pem.includes('include') && !c.pem.includes('Bag') && !c.pem.includes('}'));
  });

  const refusals: Array<[string, () => Certificate, RegExp]> = [
    [
      'a Secret of another type',
      () => certificateFromSecret(tlsSecret('s', shop.crt, shop.key, { type: 'Opaque' })),
      /its type is "Opaque", not kubernetes.io\/tls/,
    ],
    [
      'a Secret without tls.key',
      () =>
        certificateFromSecret({
          ...tlsSecret('s', shop.crt, shop.key),
          data: { 'tls.crt': Buffer.from(shop.crt).toString('base64') },
        }),
      /no tls.key/,
    ],
    ['a Secret without data', () => certificateFromSecret({ ...tlsSecret('s', '', ''), data: undefined }), /no data/],
    [
      'data that is not base64',
      () => certificateFromSecret({ ...tlsSecret('s', '', ''), data: { 'tls.crt': 'not base64!', 'tls.key': 'x' } }),
      /no tls.crt/,
    ],
    [
      'a key of another certificate',
      () => certificateFromPem(shop.crt, other.key),
      /tls.key does not belong to the first certificate/,
    ],
    ['text that is not PEM', () => certificateFromPem('hello', shop.key), /tls.crt holds no PEM block/],
    [
      'garbage with nginx syntax inside a PEM block',
      () =>
        certificateFromPem(
          `-----BEGIN CERTIFICATE-----\nMIIB;}\nload_module /tmp/x.so;\n-----END CERTIFICATE-----\n`,
          shop.key,
        ),
      /not valid base64/,
    ],
    [
      'base64 that is not a certificate',
      () =>
        certificateFromPem(
          `-----BEGIN CERTIFICATE-----\n${Buffer.from('ssl_engine x; }').toString('base64')}\n-----END CERTIFICATE-----\n`,
          shop.key,
        ),
      /does not parse as X.509/,
    ],
    [
      'a BEGIN without END',
      () => certificateFromPem(shop.crt.replace('-----END CERTIFICATE-----', ''), shop.key),
      /no matching END/,
    ],
    [
      'a key where the certificate belongs',
      () => certificateFromPem(shop.key, shop.key),
      /CERTIFICATE blocks only, not PRIVATE KEY/,
    ],
    ['two keys', () => certificateFromPem(shop.crt, shop.key + other.key), /exactly one private key/],
    [
      'an encrypted key',
      () => certificateFromPem(shop.crt, shop.key.replaceAll('PRIVATE KEY', 'ENCRYPTED PRIVATE KEY')),
      /encrypted/,
    ],
    [
      'a legacy encrypted key',
      () => certificateFromPem(shop.crt, shop.key.replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\n\n')),
      /headers/,
    ],
    [
      'a key that does not parse',
      () =>
        certificateFromPem(
          shop.crt,
          `-----BEGIN PRIVATE KEY-----\n${Buffer.from('nope').toString('base64')}\n-----END PRIVATE KEY-----\n`,
        ),
      /private key does not parse/,
    ],
  ];
  for (const [what, run, reason] of refusals) {
    it(`refuses ${what}, with a reason that quotes no content`, () => {
      const r = bad(run);
      match(r, reason);
      ok(!r.includes('-----') && !r.includes('load_module') && !r.includes('ssl_engine'), r);
    });
  }

  it('refuses an RSA key smaller than 2048 bits', () => {
    const weak = makeCert({ dns: ['weak.test'], key: 'rsa1024' });
    match(
      bad(() => certificateFromPem(weak.crt, weak.key)),
      /RSA key of 1024 bits is too small/,
    );
  });

  it('says whether the certificate is valid at a given time', () => {
    const c = good(certificateFromPem(shop.crt, shop.key));
    equal(validityProblem(c, new Date()), null);
    match(validityProblem(c, new Date(Date.now() + 40 * 86400_000)) ?? '', /^the certificate expired at \d{4}-/);
    match(validityProblem(c, new Date(Date.now() - 86400_000)) ?? '', /^the certificate is not valid before \d{4}-/);
  });

  it('covers exact hosts by its DNS names, wildcards included, never by the subject CN', () => {
    const c = good(certificateFromPem(shop.crt, shop.key));
    equal(hostProblem(c, parseHost('shop.test')), null);
    equal(hostProblem(c, parseHost('www.shop.test')), null);
    equal(
      hostProblem(c, parseHost('other.test')),
      'the certificate is not valid for other.test (its DNS names: shop.test, www.shop.test)',
    );
    const w = good(certificateFromPem(wildcard.crt, wildcard.key));
    equal(hostProblem(w, parseHost('a.apps.test')), null);
    match(hostProblem(w, parseHost('a.b.apps.test')) ?? '', /not valid for a.b.apps.test/);
    match(hostProblem(w, parseHost('apps.test')) ?? '', /not valid for apps.test/);
    const cnOnly = makeCert({ cn: 'cn.test' });
    match(
      hostProblem(good(certificateFromPem(cnOnly.crt, cnOnly.key)), parseHost('cn.test')) ?? '',
      /its DNS names: none/,
    );
  });

  it('covers a wildcard Ingress host only with that very wildcard', () => {
    const w = good(certificateFromPem(wildcard.crt, wildcard.key));
    equal(hostProblem(w, parseHost('*.apps.test')), null);
    const one = makeCert({ dns: ['a.apps.test'] });
    match(
      hostProblem(good(certificateFromPem(one.crt, one.key)), parseHost('*.apps.test')) ?? '',
      /not valid for \*\.apps\.test/,
    );
  });
});
