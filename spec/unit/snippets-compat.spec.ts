// Snippets written for ingress-nginx (src/annotations/snippets.ts): the headers-more table (each
// form and the stock directives it becomes, or why it is refused) and ingress-nginx's variables.
import assert from 'node:assert/strict';
import { parseSnippet, type SnippetContext } from '../../src/annotations/snippets.ts';
import { INGRESS_NGINX_VARIABLES } from '../../src/annotations/snippet-variables.ts';
import { snippetView } from '../../src/annotations/snippet-annotations.ts';
import { InvalidValue } from '../../src/grammar.ts';

const A = 'nginx.ingress.kubernetes.io/configuration-snippet';

/** The snippet's directives as `name args...` lines. */
function lines(text: string, context: SnippetContext = 'location'): string[] {
  const out: string[] = [];
  const walk = (ds: ReturnType<typeof parseSnippet>, prefix: string) => {
    for (const d of ds) {
      out.push(`${prefix}${[d.name, ...d.args].join(' ')}`);
      if (d.block) walk(d.block, `${prefix}  `);
    }
  };
  walk(parseSnippet(A, text, context), '');
  return out;
}

function refused(text: string, pattern: RegExp, context: SnippetContext = 'location'): void {
  assert.throws(
    () => parseSnippet(A, text, context),
    (err: unknown) => err instanceof InvalidValue && pattern.test(err.message),
    `${JSON.stringify(text)} should be refused with ${pattern}`,
  );
}

describe('snippets: headers-more, translated to stock nginx', () => {
  it('more_set_headers replaces: proxy_hide_header, then add_header ... always; -a only adds', () => {
    assert.deepEqual(lines(`more_set_headers "X-Frame-Options: DENY" 'X-B:two words ';`), [
      'proxy_hide_header X-Frame-Options',
      'add_header X-Frame-Options DENY always',
      'proxy_hide_header X-B',
      'add_header X-B two words always',
    ]);
    assert.deepEqual(lines('more_set_headers -a "X-A: 1";'), ['add_header X-A 1 always']);
    assert.deepEqual(lines('more_set_headers "X-Cache: $upstream_cache_status";'), [
      'proxy_hide_header X-Cache',
      'add_header X-Cache $upstream_cache_status always',
    ]);
    // "Name" and "Name:" clear the header, as more_clear_headers does.
    assert.deepEqual(lines('more_set_headers X-A "X-B:";'), ['proxy_hide_header X-A', 'proxy_hide_header X-B']);
    assert.deepEqual(lines('more_clear_headers X-Powered-By X-AspNet-Version;'), [
      'proxy_hide_header X-Powered-By',
      'proxy_hide_header X-AspNet-Version',
    ]);
  });

  it('more_set_input_headers and more_clear_input_headers become proxy_set_header', () => {
    assert.deepEqual(lines('more_set_input_headers "X-Tenant: blue" X-Gone;'), [
      'proxy_set_header X-Tenant blue',
      'proxy_set_header X-Gone ',
    ]);
    assert.deepEqual(lines('more_clear_input_headers X-Debug;'), ['proxy_set_header X-Debug ']);
  });

  it("translates response headers inside a server-snippet's own location, where nginx allows them", () => {
    assert.deepEqual(lines('location = /x { more_set_headers "X-A: 1"; return 204; }', 'server'), [
      'location = /x',
      '  proxy_hide_header X-A',
      '  add_header X-A 1 always',
      '  return 204',
    ]);
  });

  it('refuses what stock nginx cannot say exactly, with the reason', () => {
    refused('more_set_headers -s 404 "X-A: 1";', /-s \(only for some statuses\) cannot be expressed/);
    refused('more_set_headers -s "404 500" "X-A: 1";', /-s/);
    refused("more_set_headers -t 'text/html' 'X-A: 1';", /-t \(only for some response content types\)/);
    refused('more_set_input_headers -r "X-A: 1";', /-r \(replace only a header the request has\)/);
    refused('more_set_headers -x "X-A: 1";', /"-x" is not an option headers-more knows here/);
    refused('more_clear_headers "X-Hidden-*";', /a wildcard cannot be expressed/);
    refused('more_clear_input_headers "X-Hidden-*";', /a wildcard cannot be expressed/);
    refused('more_set_headers;', /names no header/);
    refused('more_set_headers "$h: 1";', /is not a header name/);
    refused('more_clear_headers "X-A: 1";', /takes header names only/);
    refused('more_set_headers "X-A: 1" { }', /may not open a block/);
    // Headers nginx writes itself.
    refused('more_clear_headers Server;', /Server: nginx writes this response header itself/);
    refused('more_set_headers "Server: mine";', /nginx writes this response header itself/);
    refused('more_set_headers "content-type: text/plain";', /nginx writes this response header itself/);
    // Request headers the sidecar sets upstream itself.
    refused('more_set_input_headers "Host: other";', /Host: the sidecar sends this request header upstream itself/);
    refused('more_set_input_headers "X-Forwarded-Proto: https";', /sends this request header upstream itself/);
  });

  it('refuses them where the stock directives would not have the same reach', () => {
    refused('more_set_headers "X-A: 1";', /only at a location's level/, 'server');
    refused('more_clear_headers X-A;', /only at a location's level/, 'server');
    refused('more_set_input_headers "X-A: 1";', /only in configuration-snippet/, 'server');
    refused('location /x { more_set_input_headers "X-A: 1"; }', /only in configuration-snippet/, 'server');
    refused('if ($a) { more_set_headers "X-A: 1"; }', /not inside if or limit_except/);
    refused('if ($a) { more_set_input_headers "X-A: 1"; }', /not inside if or limit_except/);
  });

  it('refuses a block that would send the header twice, or lose it when an if matches', () => {
    refused('more_set_headers "X-A: 1";\nmore_set_headers "X-A: 2";', /X-A is set twice/);
    refused('add_header X-A 0;\nmore_set_headers "x-a: 1";', /set by a headers-more directive and by add_header/);
    refused('more_set_input_headers "X-A: 1";\nproxy_set_header X-A 2;', /and by proxy_set_header/);
    refused(
      'more_set_headers "X-A: 1";\nif ($arg_b) { add_header X-B 1; }',
      /cannot share its block with an if that has add_header lines/,
    );
    // Other headers, and an if without add_header, are fine.
    assert.equal(lines('add_header X-B 0;\nmore_set_headers "X-A: 1";\nif ($arg_b) { return 403; }').length, 5);
    assert.equal(lines('more_clear_headers X-A;\nif ($arg_b) { add_header X-B 1; }').length, 3);
  });

  it("checks the translated values as any argument (control characters, the sidecar's variables)", () => {
    refused(String.raw`more_set_headers "X-A: a\nb";`, /contains a control character/);
    refused('more_set_headers "X-A: $ingress_sidecar_service";', /the sidecar's own variables/);
  });
});

describe("snippets: ingress-nginx's variables", () => {
  it('reads the ones the main file defines', () => {
    for (const name of INGRESS_NGINX_VARIABLES) lines(`add_header X-V $${name} always;`);
    lines('add_header X-V "${service_name}-${NAMESPACE}" always;');
    // Linkerd's documented snippet.
    lines('proxy_set_header l5d-dst-override $service_name.$namespace.svc.cluster.local:$service_port;');
  });

  it('refuses the others by name, with why', () => {
    refused(
      'add_header X $proxy_upstream_name;',
      /uses \$proxy_upstream_name, a variable of ingress-nginx that the sidecar does not define: the sidecar's upstreams are named differently/,
    );
    refused('proxy_set_header X-P $Location_Path;', /\$location_path/);
    refused('if ($full_x_forwarded_for) { return 403; }', /use-forwarded-headers and compute-full-forwarded-for/);
    refused('more_set_headers "X-U: $proxy_upstream_name";', /\$proxy_upstream_name/);
    refused('add_header X $proxy_host;', /proxy_pass host/);
  });

  it('refuses setting them, defined or not', () => {
    refused(
      'set $service_name x;',
      /may not set \$service_name: it is one of ingress-nginx's variables, which the sidecar defines/,
    );
    refused('set ${Best_Http_Host} x;', /may not set \$best_http_host/);
    refused('set $proxy_upstream_name x;', /may not set \$proxy_upstream_name/, 'server');
    lines('set $my_service x;');
  });
});

describe("snippets: a proxy_set_header keeps the sidecar's proxy headers", () => {
  it('asks the partial to repeat them when the configuration-snippet has one', () => {
    const view = (text: string) => snippetView({ snippet: parseSnippet(A, text, 'location') }).configurationSnippet;
    assert.equal(view('proxy_set_header X-A 1;')?.snippetProxyHeaders, true);
    assert.equal(view('more_set_input_headers "X-A: 1";')?.snippetProxyHeaders, true);
    assert.equal(view('add_header X-A 1;')?.snippetProxyHeaders, false);
    assert.equal(snippetView({ snippet: null }).configurationSnippet, null);
  });
});
