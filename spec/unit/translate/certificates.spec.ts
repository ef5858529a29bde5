// src/translate/certificates.ts reports an unusable certificate by throwing InvalidValue (the one
// way of the pure layer); spec/unit/tls.spec.ts covers the reasons themselves.
import { equal, throws } from 'node:assert/strict';
import { InvalidValue } from '../../../src/grammar.ts';
import { certificateFromPem, certificateFromSecret, pemBlocks } from '../../../src/translate/certificates.ts';
import { makeCert, tlsSecret, type TestCert } from '../../helpers/certs.ts';

describe('translate: certificates throw InvalidValue', function () {
  this.timeout(30_000);
  let shop: TestCert;
  let other: TestCert;

  before(() => {
    shop = makeCert({ dns: ['shop.test'] });
    other = makeCert({ dns: ['other.test'] });
  });

  const invalid = (pattern: RegExp) => (err: unknown) => err instanceof InvalidValue && pattern.test(err.message);

  it('returns the certificate of a usable chain and key', () => {
    equal(certificateFromPem(shop.crt, shop.key).dnsNames[0], 'shop.test');
  });

  it('throws the reason, the second time too (refusals are remembered)', () => {
    throws(() => certificateFromPem(shop.crt, other.key), invalid(/tls.key does not belong to the first certificate/));
    throws(() => certificateFromPem(shop.crt, other.key), invalid(/tls.key does not belong to the first certificate/));
  });

  it('throws for a Secret that cannot be used, the second time too', () => {
    const secret = tlsSecret('s', shop.crt, shop.key, { type: 'Opaque' });
    throws(() => certificateFromSecret(secret), invalid(/its type is "Opaque"/));
    throws(() => certificateFromSecret(secret), invalid(/its type is "Opaque"/));
  });

  it('pemBlocks throws for text that is not PEM', () => {
    throws(() => pemBlocks('hello', 'tls.crt'), invalid(/^tls.crt holds no PEM block$/));
    equal(pemBlocks(shop.crt, 'tls.crt').length, 1);
  });
});
