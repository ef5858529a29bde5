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
