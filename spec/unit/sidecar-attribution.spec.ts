import assert from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import { NginxConfigError } from '../../src/nginx/apply.ts';
import type { RoutingModel } from '../../src/model.ts';
import { bisectRefused } from '../../src/sync/settle.ts';
import { ingressAt, refusedCertificateIn } from '../../src/sync/sidecar.ts';

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

describe('bisecting an nginx refusal that names no Ingress', () => {
  const ing = (name: string, created?: string) =>
    ({ metadata: { name, namespace: 'default', ...(created ? { creationTimestamp: new Date(created) } : {}) } }) as V1Ingress;
  const refusal = new NginxConfigError('refused', 'nginx: [emerg] unknown "x" variable', undefined, undefined, 'unknown "x" variable');
  /** nginx as a predicate: refuses a set that holds any of `bad`, or all of each group in `together`. */
  const nginxRefusing = (bad: string[], together: string[][] = []) => async (set: V1Ingress[]) => {
    const names = new Set(set.map((i) => i.metadata!.name!));
    const culprit = bad.find((b) => names.has(b)) ?? together.find((g) => g.every((n) => names.has(n)))?.join('+');
    return culprit ? new NginxConfigError('refused', `because of ${culprit}`, undefined, undefined, `because of ${culprit}`) : null;
  };

  it('finds k culprits among n in at most 1 + k (ceil(log2 n) + 1) checks, each with its own message', async () => {
    const all = Array.from({ length: 100 }, (_, i) => ing(`i${String(i).padStart(3, '0')}`));
    const found = await bisectRefused(all, refusal, nginxRefusing(['i007', 'i050', 'i093']));
    assert.deepEqual(found?.culprits.map((c) => [c.ingress, c.error.summary]), [
      ['default/i007', 'because of i007'],
      ['default/i050', 'because of i050'],
      ['default/i093', 'because of i093'],
    ]);
    assert.equal(found?.complete, true);
    assert.ok(found!.checks <= 1 + 3 * (7 + 1), `checks: ${found!.checks}`);
  });

  it('blames the newer of two Ingresses that nginx refuses only together', async () => {
    const found = await bisectRefused([ing('new', '2025-01-01T00:00:00Z'), ing('old', '2020-01-01T00:00:00Z'), ing('other', '2022-01-01T00:00:00Z')], refusal, nginxRefusing([], [['new', 'old']]));
    assert.deepEqual(found?.culprits.map((c) => c.ingress), ['default/new']);
  });

  it('blames nobody when nginx refuses the config without any Ingress', async () => {
    const found = await bisectRefused([ing('a'), ing('b')], refusal, async () => refusal);
    assert.equal(found, null);
  });

  it('stops at the culprit limit, saying the rest is still refused', async () => {
    const all = Array.from({ length: 10 }, (_, i) => ing(`i${i}`));
    const found = await bisectRefused(all, refusal, nginxRefusing(['i1', 'i2', 'i3']), 2);
    assert.deepEqual([found?.culprits.map((c) => c.ingress), found?.complete], [['default/i1', 'default/i2'], false]);
  });
});
