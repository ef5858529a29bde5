// Snippets written for ingress-nginx, through the sidecar and a real nginx (--allow-snippet-annotations):
// headers-more directives translated to stock ones (src/annotations/snippets.ts headersMore) and
// ingress-nginx's variables defined with its meaning (maps in nginx/main.conf.mustache). The
// assertions are what ingress-nginx (its headers-more module and nginx.tmpl) answers.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EchoReply } from '../../src/dev/echo.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';

describe('snippets written for ingress-nginx, through a real nginx', function () {
  this.timeout(60_000);
  let stack: Stack;
  before(async () => {
    stack = await startStack({ backends: ['web'], allowSnippets: true });
  });
  after(async () => {
    await stack?.stop();
  });
  const snippetIngress = (name: string, host: string, snippets: Record<string, string>) =>
    ingressYaml(name, [{ host, paths: [['/', 'Prefix', 'web']] }], {
      annotations: Object.fromEntries(Object.entries(snippets).map(([k, v]) => [`${P}${k}`, v])),
    });
  const echoed = async (host: string, path = '/', headers: Record<string, string> = {}) => {
    const a = await stack.get(host, path, headers);
    assert.equal(a.status, 200, a.body);
    return { answer: a, reply: JSON.parse(a.body) as EchoReply };
  };
  const rejection = async (ingress: string): Promise<string> => {
    const until = Date.now() + 8000;
    const find = () => stack.sidecar.model()?.rejections.find((r) => r.ingress === ingress)?.reason;
    while (Date.now() < until && find() === undefined) await sleep(50);
    return find() ?? '';
  };

  it('more_set_headers replaces a backend header on every status; more_clear_headers hides one', async () => {
    await stack.write(
      'headers.yaml',
      snippetIngress('headers', 'headers.test', {
        'configuration-snippet': [
          // The echo backend sends X-Echo-Service itself: headers-more replaces it.
          `more_set_headers "X-Echo-Service: replaced" 'X-Frame-Options: DENY';`,
          'more_set_headers -a "X-Appended: 1";',
          'more_clear_headers X-Powered-By;',
          'if ($arg_deny) { return 403; }',
        ].join('\n'),
      }),
    );
    await stack.eventually('headers.test', '/', 'web');
    const { answer } = await echoed('headers.test');
    assert.equal(answer.headers['x-echo-service'], 'replaced', 'one value, the snippet\'s, not "web, replaced"');
    assert.equal(answer.headers['x-frame-options'], 'DENY');
    assert.equal(answer.headers['x-appended'], '1');
    // headers-more applies to every status, nginx's own answers included.
    const denied = await stack.get('headers.test', '/?deny=1');
    assert.equal(denied.status, 403);
    assert.equal(denied.headers['x-frame-options'], 'DENY');

    await stack.write(
      'clear.yaml',
      snippetIngress('clear', 'clear.test', { 'configuration-snippet': 'more_clear_headers X-Echo-Service;' }),
    );
    await stack.eventually('clear.test', '/', 'web');
    const cleared = await stack.get('clear.test', '/');
    assert.equal(cleared.status, 200);
    assert.equal(cleared.headers['x-echo-service'], undefined);
    assert.equal((JSON.parse(cleared.body) as EchoReply).service, 'web', 'the backend still answered');
  });

  it("more_set_input_headers adds a request header upstream, and the sidecar's own still go with it", async () => {
    await stack.write(
      'input.yaml',
      snippetIngress('input', 'input.test', {
        'configuration-snippet': [
          'more_set_input_headers "X-Tenant: blue" "X-Scheme-Seen: $pass_access_scheme";',
          'more_clear_input_headers X-Debug;',
          'proxy_set_header X-Plain plain;',
        ].join('\n'),
      }),
    );
    await stack.eventually('input.test', '/', 'web');
    const { reply } = await echoed('input.test', '/', { 'X-Debug': 'secret', 'X-Tenant': 'red' });
    assert.equal(reply.headers['x-tenant'], 'blue', 'replaced, not added to');
    assert.equal(reply.headers['x-scheme-seen'], 'http');
    assert.equal(reply.headers['x-plain'], 'plain');
    assert.equal(reply.headers['x-debug'], undefined);
    // ingress-nginx's location keeps its proxy_set_header lines next to the snippet's: so does the sidecar.
    assert.equal(reply.headers.host, 'input.test');
    assert.equal(reply.headers['x-forwarded-host'], 'input.test');
    assert.equal(reply.headers['x-forwarded-proto'], 'http');
    assert.equal(reply.headers['x-forwarded-port'], String(stack.port));
  });

  it("ingress-nginx's variables answer as they do there", async () => {
    await stack.write(
      'vars.yaml',
      snippetIngress('vars', 'vars.test', {
        'configuration-snippet': [
          'add_header X-Service $service_name always;',
          'add_header X-Namespace $namespace always;',
          'add_header X-Ingress ${ingress_name} always;',
          'add_header X-Best-Host $best_http_host always;',
          'add_header X-Pass "$pass_access_scheme $pass_server_port $pass_port" always;',
          'proxy_set_header X-Request-Id $req_id;',
          // Linkerd's documented snippet for ingress-nginx.
          'proxy_set_header l5d-dst-override $service_name.$namespace.svc.cluster.local:$service_port;',
        ].join('\n'),
        'server-snippet': 'if ($service_name = web) { return 500; }',
      }),
    );
    await stack.eventually('vars.test', '/', 'web');
    const { answer, reply } = await echoed('vars.test', '/', { 'X-Request-ID': 'from-client' });
    assert.equal(answer.headers['x-service'], 'web');
    assert.equal(answer.headers['x-namespace'], 'default');
    assert.equal(answer.headers['x-ingress'], 'vars');
    assert.equal(answer.headers['x-best-host'], 'vars.test');
    assert.equal(answer.headers['x-pass'], `http ${stack.port} ${stack.port}`);
    assert.equal(reply.headers['x-request-id'], 'from-client');
    // $service_port is the Ingress's port as written: this Ingress names it.
    assert.equal(reply.headers['l5d-dst-override'], 'web.default.svc.cluster.local:http');
    // $best_http_host is the Host header as sent, port included.
    const withPort = await stack.get(`vars.test:${stack.port}`, '/');
    assert.equal(withPort.headers['x-best-host'], `vars.test:${stack.port}`);
    // Without a client X-Request-ID, $req_id is nginx's own.
    const { reply: generated } = await echoed('vars.test');
    assert.match(String(generated.headers['x-request-id']), /^[0-9a-f]{32}$/);
  });

  it('a form stock nginx cannot express, or a variable the sidecar does not define, is refused with its reason', async () => {
    const cases: Array<[string, string, RegExp]> = [
      [
        'statuses',
        'more_set_headers -s 404 "X-A: b";',
        /more_set_headers: -s \(only for some statuses\) cannot be expressed/,
      ],
      ['wildcard', "more_clear_headers 'X-Hidden-*';", /a wildcard cannot be expressed with stock nginx/],
      ['server-header', 'more_clear_headers Server;', /Server: nginx writes this response header itself/],
      [
        'upstream-name',
        'add_header X-U $proxy_upstream_name;',
        /uses \$proxy_upstream_name, a variable of ingress-nginx that the sidecar does not define/,
      ],
    ];
    for (const [name, snippet] of cases)
      await stack.write(`${name}.yaml`, snippetIngress(name, `${name}.test`, { 'configuration-snippet': snippet }));
    for (const [name, , reason] of cases) {
      assert.match(await rejection(`default/${name}`), reason, name);
    }
    await stack.sidecar.idle();
    for (const [name] of cases)
      assert.notEqual(await stack.who(`${name}.test`, '/'), 'web', `${name}.test is not served`);
    assert.equal(await stack.who('vars.test', '/'), 'web', 'the others still are');
  });
});
