// Every row of the Kubernetes docs' path-matching examples table and hostname wildcard table,
// asserted through a real nginx: which backend answers a request, or 404 (the default backend).
import assert from 'node:assert/strict';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

// [pathType, paths, request path, matching path or null]. Each path gets a backend of its own,
// so the answer says which of them won.
const PATH_TABLE: Array<[string, string[], string, string | null]> = [
  ['Prefix', ['/'], '/', '/'],
  ['Prefix', ['/'], '/any/thing', '/'],
  ['Exact', ['/foo'], '/foo', '/foo'],
  ['Exact', ['/foo'], '/bar', null],
  ['Exact', ['/foo'], '/foo/', null],
  ['Exact', ['/foo/'], '/foo', null],
  ['Prefix', ['/foo'], '/foo', '/foo'],
  ['Prefix', ['/foo'], '/foo/', '/foo'],
  ['Prefix', ['/foo/'], '/foo', '/foo/'],
  ['Prefix', ['/foo/'], '/foo/', '/foo/'],
  ['Prefix', ['/aaa/bb'], '/aaa/bbb', null],
  ['Prefix', ['/aaa/bbb'], '/aaa/bbb', '/aaa/bbb'],
  ['Prefix', ['/aaa/bbb/'], '/aaa/bbb', '/aaa/bbb/'],
  ['Prefix', ['/aaa/bbb'], '/aaa/bbb/', '/aaa/bbb'],
  ['Prefix', ['/aaa/bbb'], '/aaa/bbb/ccc', '/aaa/bbb'],
  ['Prefix', ['/aaa/bbb'], '/aaa/bbbxyz', null],
  ['Prefix', ['/', '/aaa'], '/aaa/ccc', '/aaa'],
  ['Prefix', ['/', '/aaa', '/aaa/bbb'], '/aaa/bbb', '/aaa/bbb'],
  ['Prefix', ['/', '/aaa', '/aaa/bbb'], '/ccc', '/'],
  ['Prefix', ['/aaa'], '/ccc', null],
  ['Mixed', ['/foo'], '/foo', 'Exact'],
];

describe('Ingress path matching, the Kubernetes docs table through nginx', function () {
  this.timeout(60_000);
  let stack: Stack;
  const backends = ['b0', 'b1', 'b2', 'exact', 'prefix'];

  before(async () => {
    stack = await startStack({ backends });
    const docs = PATH_TABLE.map(([type, paths], row) =>
      ingressYaml(`row-${row}`, [
        {
          host: `row${row}.paths.test`,
          paths:
            type === 'Mixed'
              ? [
                  ['/foo', 'Prefix', 'prefix'],
                  ['/foo', 'Exact', 'exact'],
                ]
              : paths.map((p, i): [string, string, string] => [p, type, `b${i}`]),
        },
      ]),
    );
    await stack.write('table.yaml', docs.join('---\n'));
    assert.equal(await stack.eventually(`row0.paths.test`, '/', 'b0'), 'b0');
  });
  after(() => stack?.stop());

  PATH_TABLE.forEach(([type, paths, request, matching], row) => {
    const expect = matching === null ? '404' : type === 'Mixed' ? 'exact' : `b${paths.indexOf(matching)}`;
    it(`${type} ${paths.join(', ')}: ${request} -> ${matching === null ? 'no match (404)' : `matches ${matching}`}`, async () => {
      assert.equal(await stack.who(`row${row}.paths.test`, request), expect);
    });
  });

  it('is case-sensitive and ignores the query string', async () => {
    assert.equal(await stack.who('row11.paths.test', '/AAA/BBB'), '404');
    assert.equal(await stack.who('row11.paths.test', '/aaa/bbb?x=/other'), 'b0');
    assert.equal(await stack.who('row2.paths.test', '/foo?bar=baz'), 'b0');
  });
});

describe('Ingress host matching, the Kubernetes docs wildcard table through nginx', function () {
  this.timeout(60_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack({ backends: ['precise', 'wild', 'hostless'] });
    await stack.write(
      'hosts.yaml',
      [
        ingressYaml('precise', [{ host: 'foo.bar.com', paths: [['/', 'Prefix', 'precise']] }]),
        ingressYaml('wild', [{ host: '*.foo.com', paths: [['/', 'Prefix', 'wild']] }]),
      ].join('---\n'),
    );
    assert.equal(await stack.eventually('bar.foo.com', '/', 'wild'), 'wild');
  });
  after(() => stack?.stop());

  const rows: Array<[string, string, string]> = [
    ['*.foo.com', 'bar.foo.com', 'wild'],
    ['*.foo.com', 'baz.bar.foo.com', '404'],
    ['*.foo.com', 'foo.com', '404'],
    ['foo.bar.com', 'foo.bar.com', 'precise'],
    ['foo.bar.com', 'bar.foo.com', 'wild'],
    ['foo.bar.com', 'x.foo.bar.com', '404'],
  ];
  for (const [host, header, expected] of rows) {
    it(`host ${host}, Host: ${header} -> ${expected}`, async () => {
      assert.equal(await stack.who(header, '/'), expected);
    });
  }

  it('matches hosts case-insensitively and with a port in the Host header', async () => {
    assert.equal(await stack.who('Foo.Bar.COM', '/'), 'precise');
    assert.equal(await stack.who(`foo.bar.com:${stack.port}`, '/'), 'precise');
  });

  it('a precise host wins over a wildcard covering it', async () => {
    await stack.write(
      'extra.yaml',
      ingressYaml('exact-under-wild', [{ host: 'one.foo.com', paths: [['/', 'Prefix', 'precise']] }]),
    );
    assert.equal(await stack.eventually('one.foo.com', '/', 'precise'), 'precise');
    assert.equal(await stack.who('two.foo.com', '/'), 'wild');
  });

  it('rules without a host serve every host that no rule names', async () => {
    await stack.write('hostless.yaml', ingressYaml('hostless', [{ paths: [['/', 'Prefix', 'hostless']] }]));
    assert.equal(await stack.eventually('unknown.example', '/', 'hostless'), 'hostless');
    assert.equal(await stack.who('foo.bar.com', '/'), 'precise');
  });
});

// spec.defaultBackend: "requests that do not match any of the rules" go to it, as ingress-nginx
// reads that (internal/ingress/controller/controller.go, createServers): an Ingress with rules
// uses its defaultBackend for its own hosts' unmatched paths; only an Ingress without rules (or
// --default-backend-service) answers hosts no rule names, else the default server's 404.
describe('spec.defaultBackend through nginx, as ingress-nginx', function () {
  this.timeout(60_000);
  const backendNames = ['web', 'shop-default', 'catch', 'edge', 'hostless-default'];
  const shop = ingressYaml('shop', [{ host: 'shop.test', paths: [['/api', 'Prefix', 'web']] }], {
    created: '2026-01-01T00:00:00Z',
    defaultBackend: 'shop-default',
  });
  const plain = ingressYaml('plain', [{ host: 'plain.test', paths: [['/api', 'Prefix', 'web']] }], {
    created: '2026-01-02T00:00:00Z',
  });
  const hostless = ingressYaml('hostless', [{ paths: [['/status', 'Exact', 'web']] }], {
    created: '2026-01-03T00:00:00Z',
    defaultBackend: 'hostless-default',
  });
  const catchAll = ingressYaml('catch', [], { created: '2026-01-04T00:00:00Z', defaultBackend: 'catch' });

  describe('without --default-backend-service', () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({ backends: backendNames });
      await stack.write('ingresses.yaml', [shop, plain, hostless].join('---\n'));
      assert.equal(await stack.eventually('shop.test', '/api', 'web'), 'web');
    });
    after(() => stack?.stop());

    it("an unknown host gets the default server's 404, not the defaultBackend of an Ingress with rules", async () => {
      assert.equal(await stack.who('unknown.test', '/'), '404');
      assert.equal(await stack.who('unknown.test', '/api'), '404');
    });

    it("the Ingress's own host, unmatched path -> its defaultBackend", async () => {
      assert.equal(await stack.who('shop.test', '/other'), 'shop-default');
      assert.equal(await stack.who('shop.test', '/'), 'shop-default');
      assert.equal(await stack.who('shop.test', '/api/x'), 'web');
    });

    it("another host's unmatched path -> 404; rules without a host serve unknown hosts, their Ingress's defaultBackend does not", async () => {
      assert.equal(await stack.who('plain.test', '/other'), '404');
      assert.equal(await stack.who('unknown.test', '/status'), 'web');
      assert.equal(await stack.who('unknown.test', '/other'), '404');
    });

    it('an Ingress with only a defaultBackend catches unknown hosts, and only those', async () => {
      await stack.write('catch.yaml', catchAll);
      assert.equal(await stack.eventually('unknown.test', '/other', 'catch'), 'catch');
      assert.equal(await stack.who('unknown.test', '/status'), 'web');
      assert.equal(await stack.who('shop.test', '/other'), 'shop-default');
      assert.equal(await stack.who('plain.test', '/other'), '404');
      await stack.remove('catch.yaml');
      assert.equal(await stack.eventually('unknown.test', '/other', '404'), '404');
    });
  });

  describe('with --default-backend-service default/edge', () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({ backends: backendNames, defaultBackendService: 'default/edge' });
      await stack.write('ingresses.yaml', [shop, plain].join('---\n'));
      assert.equal(await stack.eventually('shop.test', '/api', 'web'), 'web');
    });
    after(() => stack?.stop());

    it('answers unknown hosts and the unmatched paths of hosts whose Ingress has no defaultBackend', async () => {
      assert.equal(await stack.who('unknown.test', '/'), 'edge');
      assert.equal(await stack.who('plain.test', '/other'), 'edge');
      assert.equal(await stack.who('shop.test', '/other'), 'shop-default');
    });

    it('an Ingress with only a defaultBackend takes unknown hosts from it', async () => {
      await stack.write('catch.yaml', catchAll);
      assert.equal(await stack.eventually('unknown.test', '/', 'catch'), 'catch');
      assert.equal(await stack.who('plain.test', '/other'), 'edge');
    });
  });
});
