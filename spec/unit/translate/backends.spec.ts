import { deepStrictEqual } from 'node:assert/strict';
import { endpoints, ingress, path, rule, service, slice, snapshot } from '../../helpers/builders.ts';
import { model, routes, server } from './common.ts';

describe('translate: Service backends and endpoints', () => {
  const web = service('web', [
    { name: 'http', port: 80 },
    { name: 'admin', port: 9000 },
  ]);
  const slices = [
    slice(
      'web',
      { name: 'http', port: 8080 },
      ['10.0.0.2', { ip: '10.0.0.1', ready: true }, { ip: '10.0.0.9', ready: false }],
      { name: 'web-a' },
    ),
    slice('web', { name: 'http', port: 8080 }, ['10.0.0.2', 'fd00::5'], { name: 'web-b' }),
    slice('web', { name: 'admin', port: 9090 }, ['10.0.0.7'], { name: 'web-c' }),
  ];

  it('resolves ports by number and by name, and uses ready endpoints of the matching slice port only', () => {
    const ing = ingress('i', [rule('x.test', path('/n', 'Exact', 'web', 80), path('/a', 'Exact', 'web', 'admin'))]);
    const m = model(snapshot({ ingresses: [ing], services: [web], endpointSlices: slices }));
    deepStrictEqual(routes(server(m, 'x.test')), ['= /a -> default_web_9000', '= /n -> default_web_80', '/ -> 404']);
    deepStrictEqual(
      m.upstreams.map((u) => [u.name, u.servers.map((s) => s.address)]),
      [
        ['default_web_80', ['10.0.0.1:8080', '10.0.0.2:8080', '[fd00::5]:8080']],
        ['default_web_9000', ['10.0.0.7:9090']],
      ],
    );
    deepStrictEqual(m.rejections, []);
  });

  it('falls back to core/v1 Endpoints when no EndpointSlice names the Service', () => {
    const ing = ingress('i', [rule('x.test', path('/', 'Prefix', 'web', 'http'))]);
    const m = model(
      snapshot({
        ingresses: [ing],
        services: [web],
        endpoints: [endpoints('web', { name: 'http', port: 8080 }, ['10.1.1.1'], ['10.1.1.2'])],
      }),
    );
    deepStrictEqual(
      m.upstreams.map((u) => u.servers.map((s) => s.address)),
      [['10.1.1.1:8080']],
    );
  });

  it('answers 503 for a missing Service or port and reports it; no ready endpoint is 503 without a report', () => {
    const ing = ingress('i', [
      rule(
        'x.test',
        path('/missing', 'Exact', 'nope'),
        path('/port', 'Exact', 'web', 81),
        path('/empty', 'Exact', 'idle'),
      ),
    ]);
    const idle = service('idle', [{ port: 80 }]);
    const m = model(
      snapshot({
        ingresses: [ing],
        services: [web, idle],
        endpointSlices: [slice('idle', { port: 80 }, [{ ip: '10.0.0.3', ready: false }])],
      }),
    );
    deepStrictEqual(routes(server(m, 'x.test')), [
      '= /missing -> 503 (Service default/nope not found)',
      '= /empty -> 503 (Service default/idle has no ready endpoints)',
      '= /port -> 503 (Service default/web has no port 81)',
      '/ -> 404',
    ]);
    deepStrictEqual(
      m.rejections.map((r) => r.reason),
      ['Service default/nope not found', 'Service default/web has no port 81'],
    );
    deepStrictEqual(m.upstreams, []);
  });

  it('refuses ExternalName Services with a reason', () => {
    const ext = service('ext', [{ port: 80 }], { type: 'ExternalName' });
    const m = model(
      snapshot({ ingresses: [ingress('i', [rule('x.test', path('/', 'Prefix', 'ext'))])], services: [ext] }),
    );
    deepStrictEqual(
      m.rejections.map((r) => r.reason),
      ['Service default/ext is of type ExternalName, which is not supported'],
    );
  });
});
