// ExternalName Services through a real nginx, as ingress-nginx serves them: the Service's name is
// resolved while nginx runs, by the DNS servers of --resolver, and requests go there with the
// client's Host header and URI. A DNS server on loopback (spec/helpers/dns.ts) gives the test
// names the address of an echo backend. Both nginx syntaxes run: 1.27.3 and later resolve in the
// upstream (`server NAME resolve`), older ones through a variable proxy_pass.
import assert from 'node:assert/strict';
import { startEcho, type EchoReply, type EchoServer } from '../../src/dev/echo.ts';
import { startDns, type TestDns } from '../helpers/dns.ts';
import { nginxBuilds } from '../helpers/nginx-check.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const { builds, missing } = nginxBuilds();

function externalService(name: string, externalName: string, ports = '[{name: http, port: 80, targetPort: PORT}]') {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  type: ExternalName
  externalName: ${JSON.stringify(externalName)}
  ports: ${ports}
`;
}

describe('ExternalName Services (real nginx, DNS on loopback)', function () {
  this.timeout(60_000);
  it('has both nginx builds', function () {
    if (missing.length > 0) assert.fail(missing.join('; '));
  });

  for (const build of builds) {
    describe(`nginx ${build.version}`, () => {
      let stack: Stack;
      let dns: TestDns;
      let echo: EchoServer;
      let other: EchoServer;

      before(async () => {
        echo = await startEcho('far-away');
        other = await startEcho('by-number');
        dns = await startDns({ 'echo.external.test': '127.0.0.1', 'other.external.test': '127.0.0.1' });
        stack = await startStack({
          backends: ['main'],
          nginx: build,
          resolver: [dns.address],
          files: {
            'svc.yaml': [
              externalService('ext', 'echo.external.test.', `[{name: http, port: 80, targetPort: ${echo.port}}]`),
              // No ports: the Ingress's port number is the port, as in ingress-nginx.
              externalService('bynumber', 'other.external.test', '[]'),
              externalService('nowhere', 'missing.external.test', '[{name: http, port: 80}]'),
              externalService('loopback', '127.0.0.1', '[{name: http, port: 80}]'),
              externalService('local', 'localhost', '[{name: http, port: 80}]'),
              externalService('metadata', 'metadata.google.internal', '[{name: http, port: 80}]'),
              externalService('linklocal', '169.254.169.254', '[{name: http, port: 80}]'),
            ].join('---\n'),
            'ing.yaml': [
              ingressYaml('web', [{ host: 'web.example.com', paths: [['/', 'Prefix', 'ext']] }]),
              ingressYaml(
                'rewrite',
                [{ host: 'rewrite.example.com', paths: [['/api(/|$)(.*)', 'ImplementationSpecific', 'ext']] }],
                {
                  annotations: {
                    'nginx.ingress.kubernetes.io/use-regex': 'true',
                    'nginx.ingress.kubernetes.io/rewrite-target': '/$2',
                  },
                },
              ),
              `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bynumber, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: number.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: bynumber, port: {number: ${other.port}}}}}
`,
              ingressYaml('nowhere', [{ host: 'nowhere.example.com', paths: [['/', 'Prefix', 'nowhere']] }]),
              ingressYaml('main', [{ host: 'canary.example.com', paths: [['/', 'Prefix', 'main']] }]),
              ingressYaml('canary', [{ host: 'canary.example.com', paths: [['/', 'Prefix', 'ext']] }], {
                annotations: {
                  'nginx.ingress.kubernetes.io/canary': 'true',
                  'nginx.ingress.kubernetes.io/canary-by-header': 'x-canary',
                },
              }),
              ingressYaml('refused', [
                { host: 'loopback.example.com', paths: [['/', 'Prefix', 'loopback']] },
                { host: 'local.example.com', paths: [['/', 'Prefix', 'local']] },
                { host: 'metadata.example.com', paths: [['/', 'Prefix', 'metadata']] },
                { host: 'linklocal.example.com', paths: [['/', 'Prefix', 'linklocal']] },
              ]),
            ].join('---\n'),
          },
        });
      });
      after(async () => {
        await stack?.stop();
        await dns?.close();
        await echo?.close();
        await other?.close();
      });

      it('proxies to the address the DNS server gives, with the Host header and URI the client sent', async () => {
        assert.equal(await stack.eventually('web.example.com', '/', 'far-away'), 'far-away');
        const r = await stack.get('web.example.com', '/a/b%2Fc?x=1&y');
        assert.equal(r.status, 200);
        const reply = JSON.parse(r.body) as EchoReply;
        assert.equal(reply.url, '/a/b%2Fc?x=1&y');
        assert.equal(reply.headers.host, 'web.example.com');
        assert.ok(
          dns.questions.some((q) => q === 'A echo.external.test'),
          `nginx asked ${JSON.stringify(dns.questions)}`,
        );
      });

      it('passes the rewritten URI under rewrite-target, as to any Service', async () => {
        const r = await stack.get('rewrite.example.com', '/api/x/y?q=1');
        assert.equal(r.status, 200, r.body);
        assert.equal((JSON.parse(r.body) as EchoReply).url, '/x/y?q=1');
      });

      it('lets a canary send its share to an ExternalName Service', async () => {
        assert.equal(await stack.who('canary.example.com', '/'), 'main');
        const r = await stack.get('canary.example.com', '/', { 'x-canary': 'always' });
        assert.equal(r.status, 200, r.body);
        assert.equal((JSON.parse(r.body) as EchoReply).service, 'far-away');
      });

      it('uses the port number the Ingress names when the Service lists no ports', async () => {
        assert.equal(await stack.who('number.example.com', '/'), 'by-number');
      });

      // ingress-nginx answers 503 there (its balancer has no address); nginx's own answer is 502,
      // as for an address that refuses the connection. docs/semantics.md says so.
      it('answers 502 when the name does not resolve, having asked the DNS server while running', async () => {
        assert.equal((await stack.get('nowhere.example.com', '/')).status, 502);
        assert.ok(
          dns.questions.some((q) => q === 'A missing.external.test'),
          `nginx asked ${JSON.stringify(dns.questions)}`,
        );
      });

      it('refuses names and addresses of the pod itself and of metadata services: 503, with the reason', async () => {
        for (const host of ['loopback', 'local', 'metadata', 'linklocal'])
          assert.equal((await stack.get(`${host}.example.com`, '/')).status, 503, host);
        const reasons = (stack.sidecar.model()?.rejections ?? [])
          .filter((r) => r.ingress === 'default/refused')
          .map((r) => r.reason);
        assert.equal(reasons.length, 4, JSON.stringify(reasons));
        assert.ok(
          reasons.some((r) => /127\.0\.0\.1.*loopback/.test(r)),
          JSON.stringify(reasons),
        );
        assert.ok(
          reasons.some((r) => /localhost.*local host/.test(r)),
          JSON.stringify(reasons),
        );
        assert.ok(
          reasons.some((r) => /metadata\.google\.internal.*metadata/.test(r)),
          JSON.stringify(reasons),
        );
        assert.ok(
          reasons.some((r) => /169\.254\.169\.254.*link-local/.test(r)),
          JSON.stringify(reasons),
        );
      });
    });
  }
});
