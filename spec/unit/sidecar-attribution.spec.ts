import assert from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import { NginxConfigError } from '../../src/nginx/config-test.ts';
import type { RoutingModel } from '../../src/model.ts';
import { generateSelfSignedCertificate } from '../../src/nginx/cert-store.ts';
import { Renderer } from '../../src/nginx/render.ts';
import { bisectRefused, refusedCertificateIn } from '../../src/sync/settle.ts';
import { UPSTREAMS_FILE, translate, type TranslateOptions } from '../../src/translate/index.ts';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';

describe("naming the Ingress behind a line nginx refused (render's record of who wrote which lines)", () => {
  const A = (name: string) => `nginx.ingress.kubernetes.io/${name}`;
  const model = (tls?: TranslateOptions['tls']) =>
    translate(
      snapshot({
        ingresses: [
          ingress('one', [rule('a.test', path('/x', 'Prefix', 'web'))], {
            age: 0,
            ...(tls ? { tls: [{ hosts: ['a.test'] }] } : {}),
          }),
          ingress('two', [rule('a.test', path('/y', 'Exact', 'web'))], {
            age: 1,
            annotations: {
              [A('mirror-target')]: 'http://mirror.test/copy',
              [A('server-snippet')]: 'add_header X-Two 1;',
            },
          }),
        ],
        backends: [backendService('web')],
      }),
      {
        ingressClass: 'nginx',
        httpPort: 80,
        ipv6: false,
        allowSnippets: true,
        now: new Date(),
        ...(tls ? { tls } : {}),
      },
    );
  const FILE = 'ingress-sidecar-server-a.test.conf';
  /** The 1-based number of the first line matching `pattern` at or after line `from`. */
  const lineOf = (text: string, pattern: RegExp, from = 1) =>
    text.split('\n').findIndex((l, i) => i + 1 >= from && pattern.test(l)) + 1;

  it('is the Ingress of the location, mirror-target block or server-snippet around that line', () => {
    const rendered = new Renderer().render(model());
    const text = rendered.files.get(FILE)!;
    assert.equal(
      rendered.ingressAt(FILE, lineOf(text, /proxy_pass/, lineOf(text, /location \/x\/ \{/))),
      'default/one',
    );
    assert.equal(
      rendered.ingressAt(FILE, lineOf(text, /proxy_pass/, lineOf(text, /location = \/y \{/))),
      'default/two',
    );
    assert.equal(rendered.ingressAt(FILE, lineOf(text, /add_header X-Two 1;/)), 'default/two');
    assert.equal(
      rendered.ingressAt(FILE, lineOf(text, /^upstream /)),
      'default/two',
      'the mirror-target upstream before the server',
    );
    assert.equal(rendered.ingressAt(FILE, lineOf(text, /internal;/)), 'default/two', 'the mirror-target location');
  });

  it('is unknown for the lines that several Ingresses share, and in files no Ingress wrote', () => {
    const rendered = new Renderer().render(model());
    const text = rendered.files.get(FILE)!;
    // The "Default /" location is no Ingress's (the comment scan this replaced blamed the one before it).
    for (const shared of [/server_name/, /^server \{/, /listen 80;/, /root \/nonexistent/, /return 404;/])
      assert.equal(rendered.ingressAt(FILE, lineOf(text, shared)), null, String(shared));
    assert.equal(rendered.ingressAt(FILE, text.split('\n').lastIndexOf('}') + 1), null, "the server's closing brace");
    assert.equal(rendered.ingressAt(UPSTREAMS_FILE, 3), null);
    assert.equal(rendered.ingressAt('ingress-sidecar-server-nothing.conf', 1), null);
  });

  it('agrees with the "from Ingress" comments people read, also for a server reused from the previous render', () => {
    const renderer = new Renderer();
    for (const rendered of [renderer.render(model()), renderer.render(model())]) {
      const lines = rendered.files.get(FILE)!.split('\n');
      const owned = rendered.ownedLines(FILE);
      assert.deepEqual(
        owned.map((o) => o.ingress),
        ['default/two', 'default/two', 'default/one', 'default/one', 'default/two', 'default/two'],
      );
      for (const o of owned) {
        const first = lines.slice(o.from - 1, o.to).find((l) => l.trim() !== '');
        assert.match(first ?? '', new RegExp(`from Ingress ${o.ingress}\\b`));
      }
    }
  });

  it('does not blame the Ingress that gave a host TLS for the server-level lines after it', async () => {
    const rendered = new Renderer().render(
      model({ httpsPort: 443, certDir: '/c', defaultCertificate: await generateSelfSignedCertificate() }),
    );
    const text = rendered.files.get(FILE)!;
    assert.match(text, /TLS for Ingress default\/one/);
    assert.equal(rendered.ingressAt(FILE, lineOf(text, /ssl_certificate /)), null);
    assert.equal(rendered.ingressAt(FILE, lineOf(text, /proxy_http_version/)), null);
  });
});

describe('naming the certificate behind an nginx refusal', () => {
  const model = (defaultSecret: string | null) =>
    ({
      defaultServer: {
        host: null,
        tls: { certPath: `/c/${'d'.repeat(32)}.pem`, secret: defaultSecret, ingress: null },
      },
      servers: [
        { host: 'a.test', tls: { certPath: `/c/${'a'.repeat(32)}.pem`, secret: 'default/a', ingress: 'default/a' } },
      ],
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
});

describe('bisecting an nginx refusal that names no Ingress', () => {
  const ing = (name: string, created?: string) =>
    ({
      metadata: { name, namespace: 'default', ...(created ? { creationTimestamp: new Date(created) } : {}) },
    }) as V1Ingress;
  const refusal = new NginxConfigError(
    'refused',
    'nginx: [emerg] unknown "x" variable',
    undefined,
    undefined,
    'unknown "x" variable',
  );
  /** nginx as a predicate: refuses a set that holds any of `bad`, or all of each group in `together`. */
  const nginxRefusing =
    (bad: string[], together: string[][] = []) =>
    async (set: V1Ingress[]) => {
      const names = new Set(set.map((i) => i.metadata!.name!));
      const culprit = bad.find((b) => names.has(b)) ?? together.find((g) => g.every((n) => names.has(n)))?.join('+');
      return culprit
        ? new NginxConfigError('refused', `because of ${culprit}`, undefined, undefined, `because of ${culprit}`)
        : null;
    };

  it('finds k culprits among n in at most 1 + k (ceil(log2 n) + 1) checks, each with its own message', async () => {
    const all = Array.from({ length: 100 }, (_, i) => ing(`i${String(i).padStart(3, '0')}`));
    const found = await bisectRefused(all, refusal, nginxRefusing(['i007', 'i050', 'i093']));
    assert.deepEqual(
      found?.culprits.map((c) => [c.ingress, c.error.summary]),
      [
        ['default/i007', 'because of i007'],
        ['default/i050', 'because of i050'],
        ['default/i093', 'because of i093'],
      ],
    );
    assert.equal(found?.complete, true);
    assert.ok(found!.checks <= 1 + 3 * (7 + 1), `checks: ${found!.checks}`);
  });

  it('blames the newer of two Ingresses that nginx refuses only together', async () => {
    const found = await bisectRefused(
      [ing('new', '2025-01-01T00:00:00Z'), ing('old', '2020-01-01T00:00:00Z'), ing('other', '2022-01-01T00:00:00Z')],
      refusal,
      nginxRefusing([], [['new', 'old']]),
    );
    assert.deepEqual(
      found?.culprits.map((c) => c.ingress),
      ['default/new'],
    );
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
