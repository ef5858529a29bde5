import { deepStrictEqual, match } from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import { renderModel } from '../../../src/nginx/render.ts';
import { backendService, ingress, path, rule, snapshot } from '../../helpers/builders.ts';
import { Rejections } from '../../../src/translate/rejections.ts';
import { model } from './common.ts';

describe('translate: invalid Ingresses are rejected alone', () => {
  const good = ingress('good', [rule('good.test', path('/', 'Prefix', 'web'))]);
  const backends = [backendService('web')];

  const cases: Array<[string, V1Ingress, RegExp]> = [
    [
      'an upper-case host',
      ingress('bad', [rule('Bad.Test', path('/', 'Prefix', 'web'))]),
      /host "Bad.Test": must be a lowercase RFC 1123 DNS name/,
    ],
    [
      'an IP host',
      ingress('bad', [rule('10.0.0.1', path('/', 'Prefix', 'web'))]),
      /must be a DNS name, not an IP address/,
    ],
    ['a host with a port', ingress('bad', [rule('a.test:80', path('/', 'Prefix', 'web'))]), /must not contain a port/],
    [
      'a wildcard not in the first label',
      ingress('bad', [rule('a.*.test', path('/', 'Prefix', 'web'))]),
      /"\*" is allowed only as the whole first label/,
    ],
    [
      'a host carrying nginx syntax',
      ingress('bad', [rule('a.test;ssl_engine x', path('/', 'Prefix', 'web'))]),
      /must be a lowercase RFC 1123 DNS name/,
    ],
    ['a relative path', ingress('bad', [rule('a.test', path('api', 'Prefix', 'web'))]), /must be an absolute path/],
    [
      'a path with a brace and newline',
      ingress('bad', [rule('a.test', path('/x}\nload_module y;', 'Prefix', 'web'))]),
      /may contain only URL path characters/,
    ],
    [
      'a path with an encoded newline',
      ingress('bad', [rule('a.test', path('/x%0a', 'Prefix', 'web'))]),
      /must not encode control characters/,
    ],
    [
      'a path with /../',
      ingress('bad', [rule('a.test', path('/a/../etc', 'Prefix', 'web'))]),
      /must not contain "\/\.\.\/"/,
    ],
    [
      'a missing pathType',
      ingress('bad', [rule('a.test', { path: '/', service: 'web', port: 80 })]),
      /pathType must be Exact, Prefix or ImplementationSpecific/,
    ],
    [
      'a bad service name',
      ingress('bad', [rule('a.test', path('/', 'Prefix', 'web;evil'))]),
      /Service name "web;evil" is not a valid Kubernetes name/,
    ],
    ['a port out of range', ingress('bad', [rule('a.test', path('/', 'Prefix', 'web', 70000))]), /not in 1-65535/],
    ['neither rules nor defaultBackend', ingress('bad', []), /neither rules nor a defaultBackend/],
  ];

  for (const [what, bad, reason] of cases) {
    it(`rejects ${what}, and keeps serving the others`, () => {
      const m = model(snapshot({ ingresses: [bad, good], backends }));
      deepStrictEqual(
        m.servers.map((s) => s.host),
        ['good.test'],
      );
      deepStrictEqual(m.served, ['default/good']);
      deepStrictEqual(m.rejections.length, 1);
      deepStrictEqual(m.rejections[0]?.severity, 'rejected');
      match(m.rejections[0]?.reason ?? '', reason);
      renderModel(m); // renders without tripping the escaping guard
    });
  }

  it('rejects a resource backend with a reason', () => {
    const bad = ingress('bad', [rule('a.test', path('/', 'Prefix', 'web'))]);
    (bad.spec!.rules![0]!.http!.paths[0]!.backend as object) = {
      resource: { apiGroup: 'k8s.example.com', kind: 'StorageBucket', name: 'static' },
    };
    const m = model(snapshot({ ingresses: [bad, good], backends }));
    match(m.rejections[0]?.reason ?? '', /resource backends \(StorageBucket\) are not supported/);
    deepStrictEqual(m.served, ['default/good']);
  });

  it('reports nginx annotations it does not implement, and TLS when it is not enabled, still serving the routes', () => {
    const ing = ingress('i', [rule('a.test', path('/', 'Prefix', 'web'))], {
      tls: [{ hosts: ['a.test'], secretName: 'a-tls' }],
      annotations: {
        'nginx.ingress.kubernetes.io/enable-opentelemetry': 'true',
        'nginx.ingress.kubernetes.io/ssl-redirect': 'false',
      },
    });
    const m = model(snapshot({ ingresses: [ing], backends }));
    deepStrictEqual(m.served, ['default/i']);
    deepStrictEqual(
      m.rejections.map((r) => r.reason),
      [
        'annotation nginx.ingress.kubernetes.io/enable-opentelemetry is not supported and has no effect: stock nginx has no OpenTelemetry module',
        'annotation nginx.ingress.kubernetes.io/ssl-redirect has no effect: TLS is not enabled in this sidecar',
        'spec.tls is ignored: TLS is not enabled in this sidecar, so its hosts are served over plain HTTP only',
      ],
    );
  });
});

describe('translate: determinism', () => {
  it('gives byte-identical files for the same objects in any order', () => {
    const ingresses = [
      ingress('a', [rule('a.test', path('/x', 'Prefix', 'w1'), path('/y', 'Exact', 'w2'))], { age: 3 }),
      ingress('b', [rule('*.b.test', path('/', 'Prefix', 'w2')), rule(undefined, path('/h', 'Prefix', 'w1'))], {
        age: 1,
      }),
      ingress('c', [rule('a.test', path('/x', 'Prefix', 'w2'))], { age: 2, namespace: 'c' }),
    ];
    const backends = [backendService('w1', '10.0.0.1'), backendService('w2', '10.0.0.2')];
    const one = renderModel(model(snapshot({ ingresses, backends })));
    const two = renderModel(
      model(snapshot({ ingresses: [...ingresses].reverse(), backends: [...backends].reverse() })),
    );
    deepStrictEqual([...two.entries()].sort(), [...one.entries()].sort());
  });
});

describe('translate: the rejection collector', () => {
  it('records a reason once per Ingress and severity, sorted by Ingress in the order reported', () => {
    const r = new Rejections();
    r.report('ns/b', 'partial', 'one');
    r.report('ns/a', 'rejected', 'two');
    r.report('ns/b', 'partial', 'one');
    r.report('ns/b', 'rejected', 'one');
    r.report('ns/a', 'partial', 'three');
    deepStrictEqual(r.sorted(), [
      { ingress: 'ns/a', severity: 'rejected', reason: 'two' },
      { ingress: 'ns/a', severity: 'partial', reason: 'three' },
      { ingress: 'ns/b', severity: 'partial', reason: 'one' },
      { ingress: 'ns/b', severity: 'rejected', reason: 'one' },
    ]);
  });
});
