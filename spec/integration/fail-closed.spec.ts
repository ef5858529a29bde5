// Migrating manifests never degrade silently, through a real nginx: what ingress-nginx users'
// Ingresses do here when the sidecar cannot honour them (fail closed: 503, reported), and the
// routes ingress-nginx serves that must not vanish.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCert, tlsSecretYaml } from '../helpers/certs.ts';
import { httpGet } from '../helpers/nginx.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';
const prefixed = (a: Record<string, string>) => Object.fromEntries(Object.entries(a).map(([k, v]) => [`${P}${k}`, v]));

describe('fail closed and no silent route loss, through a real nginx', function () {
  this.timeout(120_000);
  let stack: Stack;
  let n = 0;

  before(async () => {
    const cert = makeCert({ dns: ['slash.test'] });
    stack = await startStack({
      backends: ['alpha', 'beta'],
      files: { 'tls.yaml': tlsSecretYaml('slash-tls', cert) },
      tls: {},
    });
  });
  after(async () => {
    await stack?.stop();
  });

  const write = (yaml: string) => stack.write(`ing-${n++}.yaml`, yaml);
  /** Polls (bounded) until `check` holds for GET host+path; returns the last answer. */
  async function until(
    host: string,
    urlPath: string,
    check: (status: number, who: string) => boolean,
    headers: Record<string, string> = {},
  ) {
    const deadline = Date.now() + 8000;
    let last = { status: 0, who: '', location: '' };
    for (let settled = false; ;) {
      while (Date.now() < deadline) {
        const a = await httpGet(stack.port, host, urlPath, headers).catch((err: Error) => ({
          status: 0,
          body: err.message,
          headers: {} as Record<string, string>,
        }));
        let who: string;
        try {
          who = (JSON.parse(a.body) as { service: string }).service;
        } catch {
          who = '';
        }
        last = { status: a.status, who, location: String(a.headers.location ?? '') };
        if (check(last.status, last.who)) break;
        await sleep(25);
      }
      if (!check(last.status, last.who) || settled) break;
      await stack.sidecar.idle();
      settled = true;
    }
    return last;
  }
  const rejection = async (ingress: string, re: RegExp) => {
    const deadline = Date.now() + 5000;
    const find = () =>
      stack.logs.find((l) => l.message === 'Ingress rejected' && l.ingress === ingress && re.test(String(l.reason)));
    while (Date.now() < deadline && !find()) await sleep(25);
    assert.ok(
      find(),
      `no "Ingress rejected" for ${ingress} matching ${re}: ${JSON.stringify(stack.logs.filter((l) => l.ingress === ingress))}`,
    );
  };

  it("external auth (oauth2-proxy's auth-url/auth-signin) answers 503, never the app, and does not fall through to another route", async () => {
    await write(
      ingressYaml('public', [{ host: 'auth.test', paths: [['/', 'Prefix', 'alpha']] }], {
        created: '2026-01-01T00:00:00Z',
      }),
    );
    await write(
      ingressYaml('admin', [{ host: 'auth.test', paths: [['/admin', 'Prefix', 'beta']] }], {
        created: '2026-01-02T00:00:00Z',
        annotations: prefixed({
          'auth-url': 'https://$host/oauth2/auth',
          'auth-signin': 'https://$host/oauth2/start?rd=$escaped_request_uri',
        }),
      }),
    );
    assert.equal((await until('auth.test', '/admin/users', (s) => s === 503)).status, 503);
    assert.equal(
      (await until('auth.test', '/', (_s, w) => w === 'alpha')).who,
      'alpha',
      'the other Ingress keeps serving',
    );
    await rejection(
      'default/admin',
      /annotation nginx\.ingress\.kubernetes\.io\/auth-signin is not implemented and must not be ignored: external authentication/,
    );
    await rejection('default/admin', /auth-url is not implemented and must not be ignored.*its paths answer 503/);
  });

  it('client certificates (auth-tls-verify-client) and ssl-passthrough answer 503 on plain HTTP, no redirect to a dead end', async () => {
    await write(
      ingressYaml('mtls', [{ host: 'mtls.test', paths: [['/', 'Prefix', 'alpha']] }], {
        annotations: prefixed({ 'auth-tls-secret': 'default/ca', 'auth-tls-verify-client': 'on' }),
      }),
    );
    assert.equal((await until('mtls.test', '/', (s) => s === 503)).status, 503);
    await rejection(
      'default/mtls',
      /auth-tls-verify-client is not implemented and must not be ignored: client-certificate authentication/,
    );
    // Argo CD's documented Ingress.
    await write(
      ingressYaml('argocd', [{ host: 'argocd.test', paths: [['/', 'Prefix', 'alpha']] }], {
        annotations: prefixed({ 'ssl-passthrough': 'true', 'force-ssl-redirect': 'true', 'backend-protocol': 'HTTPS' }),
      }),
    );
    assert.equal((await until('argocd.test', '/', (s) => s === 503)).status, 503);
    await rejection('default/argocd', /ssl-passthrough is not implemented and must not be ignored: TLS passthrough/);
    // Asking only for the default is ignorable: served.
    await write(
      ingressYaml('nopass', [{ host: 'nopass.test', paths: [['/', 'Prefix', 'beta']] }], {
        annotations: prefixed({ 'ssl-passthrough': 'false' }),
      }),
    );
    assert.equal((await until('nopass.test', '/', (_s, w) => w === 'beta')).who, 'beta');
  });

  it('an access-control value or Secret it cannot use answers 503 instead of letting the path fall through', async () => {
    await write(
      ingressYaml('open', [{ host: 'acl.test', paths: [['/', 'Prefix', 'alpha']] }], {
        created: '2026-01-01T00:00:00Z',
      }),
    );
    await write(
      ingressYaml('ranges', [{ host: 'acl.test', paths: [['/internal', 'Prefix', 'beta']] }], {
        created: '2026-01-02T00:00:00Z',
        annotations: prefixed({ 'allowlist-source-range': '10.0.0.0/33' }),
      }),
    );
    await write(
      ingressYaml('basic', [{ host: 'acl.test', paths: [['/staff', 'Prefix', 'beta']] }], {
        created: '2026-01-03T00:00:00Z',
        annotations: prefixed({ 'auth-type': 'basic', 'auth-secret': 'no-such-secret' }),
      }),
    );
    assert.equal((await until('acl.test', '/internal/x', (s) => s === 503)).status, 503);
    assert.equal((await until('acl.test', '/staff', (s) => s === 503)).status, 503);
    assert.equal((await until('acl.test', '/other', (_s, w) => w === 'alpha')).who, 'alpha');
    await rejection(
      'default/ranges',
      /allowlist-source-range: "10\.0\.0\.0\/33" has a prefix length outside 0-32; its paths answer 503/,
    );
  });

  it('Prefix /foo/bar and /foo/bar/ to two Services: /foo/bar to the first, everything below to the second', async () => {
    await write(
      ingressYaml('bare', [{ host: 'prio.test', paths: [['/foo/bar', 'Prefix', 'alpha']] }], {
        created: '2026-01-01T00:00:00Z',
      }),
    );
    await write(
      ingressYaml('slashed', [{ host: 'prio.test', paths: [['/foo/bar/', 'Prefix', 'beta']] }], {
        created: '2026-01-02T00:00:00Z',
      }),
    );
    assert.equal((await until('prio.test', '/foo/bar/x', (_s, w) => w === 'beta')).who, 'beta');
    assert.equal((await until('prio.test', '/foo/bar/', (_s, w) => w === 'beta')).who, 'beta');
    assert.equal((await until('prio.test', '/foo/bar', (_s, w) => w === 'alpha')).who, 'alpha');
    assert.equal((await until('prio.test', '/foo/barx', (s) => s === 404)).status, 404);
  });

  it('a regex Prefix path with use-regex and rewrite-target is refused with the fix, not matched literally in silence', async () => {
    await write(
      ingressYaml('literal', [{ host: 'regex.test', paths: [['/foo/bar/(.+)', 'Prefix', 'alpha']] }], {
        annotations: prefixed({ 'use-regex': 'true', 'rewrite-target': '/new/backend/$1' }),
      }),
    );
    await rejection(
      'default/literal',
      /looks like a regular expression, but pathType Prefix matches it literally; use pathType: ImplementationSpecific/,
    );
    // The same with the pathType the fix names: served, and rewritten.
    await write(
      ingressYaml('regex', [{ host: 'regex2.test', paths: [['/foo/bar/(.+)', 'ImplementationSpecific', 'alpha']] }], {
        annotations: prefixed({ 'use-regex': 'true', 'rewrite-target': '/new/backend/$1' }),
      }),
    );
    const a = await httpGet(stack.port, 'regex2.test', '/foo/bar/baz');
    for (let i = 0; i < 200 && a.status !== 200; i++)
      Object.assign(a, await httpGet(stack.port, 'regex2.test', '/foo/bar/baz'), await sleep(25));
    assert.equal(a.status, 200);
    assert.equal((JSON.parse(a.body) as { url: string }).url, '/new/backend/baz');
  });

  it("a regex path nginx (PCRE2) cannot compile is refused with the reason before nginx sees it; the host's other Ingress serves", async () => {
    // JavaScript's regex engine accepts this class range, PCRE2 refuses it: the grammar checks it
    // as PCRE2 reads it (src/annotations/index.ts parseRegexPath), so nginx never refuses the config.
    await write(
      ingressYaml('pcre', [{ host: 'pcre.test', paths: [['/[\\d-z]', 'ImplementationSpecific', 'beta']] }], {
        annotations: prefixed({ 'use-regex': 'true' }),
      }),
    );
    await write(ingressYaml('after', [{ host: 'pcre.test', paths: [['/', 'Prefix', 'alpha']] }]));
    assert.equal((await until('pcre.test', '/', (_s, w) => w === 'alpha')).who, 'alpha');
    await rejection('default/pcre', /a range in a character class starting at .*, which PCRE2 refuses/);
    assert.ok(
      !stack.logs.some((l) => l.ingress === 'default/pcre' && /^nginx rejected/.test(String(l.reason ?? l.message))),
      'nginx never saw it',
    );
  });

  it('HTTPS redirects cut a trailing slash as ingress-nginx does, unless preserve-trailing-slash', async () => {
    const https = stack.https!;
    const base = `https://slash.test:${https.port}`;
    await write(
      ingressYaml('slash', [{ host: 'slash.test', paths: [['/', 'Prefix', 'alpha']] }], {
        tls: [{ hosts: ['slash.test'], secretName: 'slash-tls' }],
      }),
    );
    assert.equal((await until('slash.test', '/x/', (s) => s === 308)).location, `${base}/x`);
    assert.equal((await httpGet(stack.port, 'slash.test', '/x/y')).headers.location, `${base}/x/y`);
    assert.equal(
      (await httpGet(stack.port, 'slash.test', '/x/?a=1')).headers.location,
      `${base}/x/?a=1`,
      'a query string ends the URI',
    );
    assert.equal((await httpGet(stack.port, 'slash.test', '/')).headers.location, base);
    await write(
      ingressYaml('keep', [{ host: 'slash.test', paths: [['/keep', 'Prefix', 'beta']] }], {
        annotations: prefixed({ 'preserve-trailing-slash': 'true' }),
      }),
    );
    assert.equal((await until('slash.test', '/keep/', (s) => s === 308 && true)).status, 308);
    const deadline = Date.now() + 5000;
    let loc = '';
    while (Date.now() < deadline && loc !== `${base}/keep/`) {
      loc = String((await httpGet(stack.port, 'slash.test', '/keep/')).headers.location);
      await sleep(25);
    }
    assert.equal(loc, `${base}/keep/`);
  });
});
