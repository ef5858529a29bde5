import assert from 'node:assert/strict';
import type { RoutingModel } from '../src/model.ts';
import { ingressAt, refusedCertificateIn } from '../src/sidecar.ts';

describe('naming the Ingress behind a line nginx refused', () => {
  const file = [
    'server {',
    '    server_name a.test;',
    '    # serves Ingress default/one',
    '    # serves Ingress default/two',
    '',
    '    # Prefix /x from Ingress default/one -> Service default/web:80',
    '    location /x/ {',
    '        proxy_pass http://default_web_80;',
    '    }',
    '',
    '    # Exact /y from Ingress other/two -> Service other/api:8080',
    '    location = /y {',
    '        proxy_pass http://other_api_8080;',
    '    }',
    '}',
  ].join('\n');

  it('is the Ingress of the location around that line', () => {
    assert.equal(ingressAt(file, 8), 'default/one');
    assert.equal(ingressAt(file, 13), 'other/two');
  });

  it('is unknown for the server-level lines that several Ingresses share', () => {
    assert.equal(ingressAt(file, 2), null);
    assert.equal(ingressAt(undefined, 2), null);
  });
});

describe('naming the certificate behind an nginx refusal', () => {
  const model = (defaultSecret: string | null) =>
    ({
      defaultServer: { host: null, tls: { certPath: `/c/${'d'.repeat(32)}.pem`, secret: defaultSecret, ingress: null } },
      servers: [{ host: 'a.test', tls: { certPath: `/c/${'a'.repeat(32)}.pem`, secret: 'default/a', ingress: 'default/a' } }],
      certificates: [{ file: `${'a'.repeat(32)}.pem` }, { file: `${'d'.repeat(32)}.pem` }],
    }) as unknown as RoutingModel;

  it('is the Secret certificate file nginx names (it gives no line for certificates)', () => {
    const output = `nginx: [emerg] SSL_CTX_set0_chain("/c/${'a'.repeat(32)}.pem") failed (SSL: error:0A00018E:SSL routines::ca md too weak)`;
    assert.equal(refusedCertificateIn(output, model(null)), `${'a'.repeat(32)}.pem`);
    assert.equal(refusedCertificateIn('nginx: [emerg] something else', model(null)), null);
  });

  it('is never the generated default certificate, which no Secret can replace', () => {
    const output = `cannot load certificate "/c/${'d'.repeat(32)}.pem"`;
    assert.equal(refusedCertificateIn(output, model(null)), null);
    assert.equal(refusedCertificateIn(output, model('ingress/default-cert')), `${'d'.repeat(32)}.pem`);
  });

  it('does not blame the Ingress that gave a host TLS for the server-level lines after it', () => {
    const file = ['server {', '    # TLS certificate: Secret default/a; TLS for Ingress default/a', '    ssl_certificate /c/x.pem;', '    access_log /x json;', '}'].join('\n');
    assert.equal(ingressAt(file, 4), null);
  });
});
