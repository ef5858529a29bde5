// ingress-nginx's variables in snippets: those the sidecar defines with the same meaning (maps in
// nginx/main.conf.mustache, rendered only when a snippet reads them), and those it refuses by name.
import type { InvalidValue } from '../grammar.ts';
import type { SnippetDirective } from './snippets.ts';

/**
 * ingress-nginx's own variables that the sidecar defines with the same meaning (maps in
 * nginx/main.conf.mustache): snippets written for ingress-nginx may read them, never set them.
 */
export const INGRESS_NGINX_VARIABLES: ReadonlySet<string> = new Set([
  'best_http_host',
  'pass_access_scheme',
  'pass_server_port',
  'pass_port',
  'req_id',
  'connection_upgrade',
  'namespace',
  'ingress_name',
  'service_name',
  'service_port',
]);

/** ingress-nginx's variables the sidecar does not define, and why (refused by name in a snippet). */
export const UNDEFINED_INGRESS_NGINX_VARIABLES: ReadonlyMap<string, string> = new Map([
  ['location_path', 'the sidecar does not keep the Ingress path per location'],
  ['proxy_upstream_name', "the sidecar's upstreams are named differently (ingress-nginx: namespace-service-port)"],
  ['proxy_alternative_upstream_name', "it names ingress-nginx's canary upstream, chosen by its Lua balancer"],
  [
    'proxy_host',
    'ingress-nginx sets it to its upstream name (namespace-service-port); in stock nginx it is the proxy_pass host, here an internal upstream name',
  ],
  ['balancer_ewma_score', "it belongs to ingress-nginx's Lua balancer"],
  [
    'full_x_forwarded_for',
    'ingress-nginx defines it only with use-forwarded-headers and compute-full-forwarded-for (use $proxy_add_x_forwarded_for)',
  ],
  ['forwarded_for_proxy_protocol', 'ingress-nginx defines it only with use-forwarded-headers and use-proxy-protocol'],
  ['the_real_ip', 'older ingress-nginx releases defined it; use $remote_addr'],
  ['auth_cookie', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['auth_path', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['auth_response_headers', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['auth_keepalive_share_vars', "it belongs to ingress-nginx's external authentication, which is not implemented"],
  ['global_rate_limit_exceeding', "it belongs to ingress-nginx's global rate limiting (Lua), which is not implemented"],
  ['block_ua', 'it belongs to the block-user-agents ConfigMap key, which is not implemented'],
  ['block_ref', 'it belongs to the block-referers ConfigMap key, which is not implemented'],
]);

/** A variable reference, `$name` or `${name}`, as nginx's script compiler reads one. */
const VARIABLE_REF = /\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g;

export function checkVariables(value: string, fail: (reason: string) => InvalidValue): void {
  for (const m of value.matchAll(VARIABLE_REF)) {
    // nginx compares variable names case-insensitively.
    const name = (m[1] ?? m[2] ?? '').toLowerCase();
    const why = UNDEFINED_INGRESS_NGINX_VARIABLES.get(name);
    if (why !== undefined)
      throw fail(`uses $${name}, a variable of ingress-nginx that the sidecar does not define: ${why}`);
  }
}

/**
 * The ingress-nginx variables a snippet reads, among those the sidecar defines: main.conf renders
 * only their maps, so that a conf.d of the user's own that defines `$connection_upgrade` (or any
 * other of these names) keeps loading when no snippet needs ours.
 */
export function variablesUsed(directives: readonly SnippetDirective[], into = new Set<string>()): Set<string> {
  for (const d of directives) {
    for (const a of d.args)
      for (const m of a.matchAll(VARIABLE_REF)) {
        const name = (m[1] ?? m[2] ?? '').toLowerCase();
        if (INGRESS_NGINX_VARIABLES.has(name)) into.add(name);
      }
    if (d.block) variablesUsed(d.block, into);
  }
  return into;
}
