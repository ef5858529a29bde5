import { deepStrictEqual, ok } from 'node:assert/strict';
import { translate } from '../../../src/translate/index.ts';
import { endpoints, ingress, path, rule, service, slice, snapshot } from '../../helpers/builders.ts';
import { OPTS, model, routes, server } from './common.ts';

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

  describe('ExternalName Services', () => {
    const ext = (externalName: string, ports: Array<{ name?: string; port: number; targetPort?: number | string }>) => {
      const svc = service('ext', []);
      svc.spec = { type: 'ExternalName', externalName, ports: ports.map((p) => ({ ...p, protocol: 'TCP' })) };
      return svc;
    };
    const translateWith = (
      svc: ReturnType<typeof service>,
      backendPort: number | string,
      opts: { resolver?: string[]; nginxVersion?: string } = { resolver: ['10.96.0.10'] },
    ) =>
      translate(
        snapshot({
          ingresses: [ingress('i', [rule('x.test', path('/', 'Prefix', 'ext', backendPort))])],
          services: [svc],
        }),
        { ...OPTS, ...opts },
      );

    it('proxies to the name and the targetPort of the named port, resolved by nginx through --resolver', () => {
      const m = translateWith(ext('api.example.org.', [{ name: 'http', port: 80, targetPort: 8443 }]), 'http', {
        resolver: ['10.96.0.10', '[fd00::a]:53'],
        nginxVersion: '1.30.4',
      });
      deepStrictEqual(routes(server(m, 'x.test')), ['/ -> default_ext_8443']);
      deepStrictEqual(m.upstreams, [
        {
          name: 'default_ext_8443',
          service: 'default/ext:8443',
          servers: [],
          balance: { kind: 'round_robin' },
          external: { host: 'api.example.org', port: 8443, via: 'resolve' },
        },
      ]);
      deepStrictEqual(m.resolver, ['10.96.0.10', '[fd00::a]:53']);
      deepStrictEqual(m.rejections, []);
    });

    it("takes the port of a number as ingress-nginx does: the matching port's targetPort, else the number itself", () => {
      const svc = ext('api.example.org', [{ port: 80, targetPort: 8080 }, { port: 81 }]);
      const via = (port: number) => translateWith(svc, port).upstreams[0]?.external;
      deepStrictEqual(via(80), { host: 'api.example.org', port: 8080, via: 'variable' });
      deepStrictEqual(via(81), { host: 'api.example.org', port: 81, via: 'variable' });
      deepStrictEqual(via(9000), { host: 'api.example.org', port: 9000, via: 'variable' });
    });

    it('uses the variable form before nginx 1.27.3 and when the version is unknown', () => {
      const svc = ext('api.example.org', [{ port: 80 }]);
      for (const nginxVersion of ['1.22.1', '1.27.2', undefined])
        deepStrictEqual(
          translateWith(svc, 80, { resolver: ['10.0.0.2'], ...(nginxVersion ? { nginxVersion } : {}) }).upstreams[0]
            ?.external?.via,
          'variable',
          nginxVersion,
        );
      deepStrictEqual(
        translateWith(svc, 80, { resolver: ['10.0.0.2'], nginxVersion: '1.27.3' }).upstreams[0]?.external?.via,
        'resolve',
      );
    });

    it('does not serve a hash (affinity balanced, upstream-hash-by) over a resolved name on any nginx: its addresses share one server line', () => {
      const svc = ext('api.example.org', [{ port: 80 }]);
      for (const nginxVersion of ['1.22.1', '1.30.4']) {
        const m = translate(
          snapshot({
            ingresses: [
              ingress('i', [rule('x.test', path('/', 'Prefix', 'ext', 80))], {
                annotations: { 'nginx.ingress.kubernetes.io/upstream-hash-by': '$request_uri' },
              }),
            ],
            services: [svc],
          }),
          { ...OPTS, resolver: ['10.0.0.2'], nginxVersion },
        );
        const loc = server(m, 'x.test').locations.find((l) => l.path === '/')!;
        deepStrictEqual(loc.action.kind, 'unavailable', nginxVersion);
        ok(/upstream-hash-by cannot apply/.test('reason' in loc.action ? loc.action.reason : ''), nginxVersion);
      }
    });

    it('serves an IP address as an endpoint, with no resolver needed', () => {
      const m = translateWith(ext('203.0.113.7', [{ port: 80 }]), 80, {});
      deepStrictEqual(
        m.upstreams.map((u) => [u.servers, u.external]),
        [[[{ address: '203.0.113.7:80' }], undefined]],
      );
      deepStrictEqual(m.resolver, undefined);
      deepStrictEqual(translateWith(ext('2001:db8::7', [{ port: 80 }]), 80, {}).upstreams[0]?.servers, [
        { address: '[2001:db8::7]:80' },
      ]);
    });

    it('answers 503 with the reason when there is no resolver, a named port is missing, or the name is refused', () => {
      const reason = (svc: ReturnType<typeof service>, port: number | string, opts?: { resolver?: string[] }) => {
        const m = translateWith(svc, port, opts);
        deepStrictEqual(m.upstreams, []);
        return m.rejections.map((r) => `${r.severity}: ${r.reason}`);
      };
      deepStrictEqual(reason(ext('api.example.org', [{ port: 80 }]), 80, {}), [
        'partial: Service default/ext (ExternalName): nginx has no resolver for "api.example.org" (set --resolver to the cluster DNS)',
      ]);
      deepStrictEqual(reason(ext('api.example.org', [{ port: 80 }]), 'http'), [
        'partial: Service default/ext has no port http',
      ]);
      for (const [name, why] of [
        ['localhost', 'local host'],
        ['a.localhost', 'local host'],
        ['metadata.google.internal', 'metadata'],
        ['127.0.0.1', 'loopback'],
        ['::1', 'loopback'],
        ['169.254.169.254', 'link-local'],
        ['fe80::1', 'link-local'],
        ['0x7f000001', 'dotted-quad'],
        ['2130706433', 'dotted-quad'],
        ['Bad_Name', 'DNS host'],
        ['', 'no externalName'],
      ] as const) {
        const got = reason(ext(name, [{ port: 80 }]), 80);
        deepStrictEqual(got.length, 1, name);
        ok(got[0]!.startsWith('partial: Service default/ext (ExternalName)') && got[0]!.includes(why), got[0]);
      }
    });

    it('says that a name of one label is resolved without the search domains', () => {
      const m = translateWith(ext('echo', [{ port: 80 }]), 80);
      deepStrictEqual(routes(server(m, 'x.test')), ['/ -> default_ext_80']);
      ok(/resolved as written, without the pod's search domains/.test(m.rejections[0]?.reason ?? ''));
    });
  });
});
