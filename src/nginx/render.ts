// Routing model -> nginx files. Mustache lays the model out; the model has already validated
// every value, and nginxValue() quotes each one again as a single nginx token: mustache's HTML
// escaping is replaced, never bypassed (templates may not use {{{ }}} or {{& }}).
//
// A Renderer also records, as it writes, which lines of which file are an Ingress's own (its
// locations, mirror-target blocks and server-snippet), so that a line nginx refuses can be blamed
// on an Ingress without reading the files back. The "from Ingress" comments are for people.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CanarySelector, Location, LocationSettings, RoutingModel, Server, Upstream } from '../model.ts';
import { ZONE_SIZE } from '../annotations/settings.ts';
import { regexLiteral } from '../annotations/index.ts';
import { MAIN_FILE, UPSTREAMS_FILE } from '../translate/index.ts';
import { SNIPPET_PARTIAL, snippetLines } from '../annotations/snippets.ts';
import { grpcView, proxyView } from '../annotations/proxy.ts';
import { redirectView } from '../annotations/redirect.ts';
import { accessView } from '../annotations/access.ts';
import { corsMapView, corsView } from '../annotations/cors.ts';
import { rateLimitView } from '../annotations/rate-limits.ts';
import { authView } from '../annotations/auth.ts';
import { balancingView, stickyView } from '../annotations/balancing.ts';
import { mirrorAndErrorsView } from '../annotations/mirror-errors.ts';
import { snippetView } from '../annotations/snippet-annotations.ts';
import { runSteps, runStepsSync } from '../steps.ts';
import { nginxValue } from './quote.ts';
import { MARKS, MarkingWriter, Rendered, unmark, type OwnedLines } from './owned-lines.ts';

const TEMPLATE_DIR = new URL('../../nginx/', import.meta.url);

function template(name: string): string {
  return checked(name, readFileSync(new URL(name, TEMPLATE_DIR), 'utf8'));
}

function checked(name: string, text: string): string {
  if (/\{\{\s*[{&=]/.test(text))
    throw new Error(`template ${name} uses unescaped interpolation or changes delimiters, which is forbidden`);
  if (MARKS.test(text)) throw new Error(`template ${name} contains a control character that render uses to mark lines`);
  return text;
}

const templates = {
  main: template('main.conf.mustache'),
  host: template('host.conf.mustache'),
  upstreams: template('upstreams.conf.mustache'),
  server: template('server.conf.mustache'),
  proxyHeaders: template('proxy-headers.mustache'),
  grpcHeaders: template('grpc-headers.mustache'),
  mirrorUpstreams: template('mirror-upstreams.mustache'),
  snippet: checked('snippets.ts SNIPPET_PARTIAL', SNIPPET_PARTIAL),
};

const config = { escape: nginxValue };
const writer = new MarkingWriter();

function render(tpl: string, view: object): { text: string; owned: OwnedLines[] } {
  return unmark(
    writer.render(
      tpl,
      view,
      {
        server: templates.server,
        proxyHeaders: templates.proxyHeaders,
        grpcHeaders: templates.grpcHeaders,
        mirrorUpstreams: templates.mirrorUpstreams,
        snippet: templates.snippet,
      },
      config,
    ),
  );
}

/** Derived variable names (never input): they follow a literal "$" in the templates. */
const DERIVED_NAME = /^(ingress_sidecar|isc)_[a-z0-9_]+$/;

function derived(name: string): string {
  if (!DERIVED_NAME.test(name)) throw new Error(`refusing to render ${JSON.stringify(name)} as a variable name`);
  return name;
}

/** What the location template needs of the settings: each annotation group's own view. */
function settingsView(s: LocationSettings) {
  return {
    ...mirrorAndErrorsView(s, derived),
    ...balancingView(s, derived),
    ...snippetView(s),
    ...redirectView(s),
    ...rateLimitView(s, derived),
    ...accessView(s),
    ...authView(s),
    ...corsView(s, derived),
    ...proxyView(s),
  };
}

function locationView(names: Targets, model: RoutingModel, l: Location) {
  // "namespace/name" and "namespace/service:port", built by translate from validated names.
  const [namespace = '', ingressName = ''] = l.ingress.split('/');
  const serviceName = l.service.split('/')[1]?.split(':')[0] ?? '';
  // ingress-nginx's $service_port: the Ingress's port, a number or a name, as the backend gives it.
  const servicePort = l.service.slice(l.service.lastIndexOf(':') + 1);
  const grpc = l.settings.backendProtocol === 'grpc' || l.settings.backendProtocol === 'grpcs';
  return {
    ...settingsView(l.settings),
    namespace,
    ingressName,
    serviceName,
    servicePort,
    exact: l.match === 'exact',
    regex: l.match === 'regex' && !l.ignoreCase,
    iregex: l.match === 'regex' && l.ignoreCase,
    path: l.path,
    pathType: l.route.pathType,
    routePath: l.route.path,
    ingress: l.ingress,
    service: l.service,
    canary: l.canary ?? null,
    proxyPass:
      l.action.kind === 'proxy' && !grpc ? `${l.settings.backendProtocol}://${upstreamRef(names, l.action)}` : '',
    grpcPass:
      l.action.kind === 'proxy' && grpc ? `${l.settings.backendProtocol}://${upstreamRef(names, l.action)}` : '',
    // custom-http-errors: the backend's answers with these codes go to the error location.
    intercept:
      l.settings.errorPages.length === 0 || l.action.kind !== 'proxy'
        ? ''
        : grpc
          ? 'grpc_intercept_errors'
          : 'proxy_intercept_errors',
    grpc: grpcView(l.settings),
    unavailable: l.action.kind === 'unavailable' ? l.action.reason : '',
    notFound: l.action.kind === 'notFound',
    // `$host`: the request's host, lowercased and without a port; nginx interpolates the variables.
    // The URI without one trailing "/" (a map in the main file), as ingress-nginx redirects, unless preserve-trailing-slash.
    sslRedirect:
      l.sslRedirect && model.https
        ? `https://$host${model.https.redirectPort === 443 ? '' : `:${model.https.redirectPort}`}${l.settings.preserveTrailingSlash ? '$request_uri' : '$ingress_sidecar_redirect_uri'}`
        : '',
  };
}

/**
 * An upstream's name in nginx.conf: 8 hex digits of its digest, then the model's name for people
 * reading the file. nginx finds the upstream of each `proxy_pass` by comparing its name with every
 * upstream defined, from the first byte (ngx_http_upstream_add): names that differ at once make
 * that quadratic scan cheap (about -25% of `nginx -t` and reload time at 10,000 Ingresses).
 */
class UpstreamNames {
  /** Memo: a digest per upstream per pass is measurable at 10,000 Ingresses. */
  readonly #names = new Map<string, string>();

  of(name: string): string {
    let out = this.#names.get(name);
    if (out === undefined) {
      out = `${createHash('sha1').update(name).digest('hex').slice(0, 8)}_${name}`;
      if (this.#names.size > 100_000) this.#names.clear();
      this.#names.set(name, out);
    }
    return out;
  }
}

/** The upstream a proxy location names: its own, or (canary) the variable that picks one per request. */
function upstreamRef(names: Targets, a: Extract<Location['action'], { kind: 'proxy' }>): string {
  return a.via ? `$${derived(a.via)}` : names.of(a.upstream);
}

/**
 * ExternalName upstreams for nginx before 1.27.3 have no upstream block: what names them names
 * `NAME:PORT` (a canary's split and maps, which take no variables) or the variable that holds it.
 */
function externalTarget(u: Upstream): string | null {
  return u.external?.via === 'variable' ? `${u.external.host}:${u.external.port}` : null;
}

function externalVariable(name: string): string {
  return derived(`isc_ext_${createHash('sha1').update(name).digest('hex').slice(0, 12)}`);
}

/**
 * What a location, error page or canary names to reach an upstream in one model: the upstream's
 * name, or for an ExternalName without a block, `$variable` (proxy_pass) or `NAME:PORT` (values
 * of a canary's split and maps, which are not interpolated).
 */
class Targets {
  readonly #names: UpstreamNames;
  readonly #external: ReadonlyMap<string, string>;
  constructor(names: UpstreamNames, model: RoutingModel) {
    this.#names = names;
    this.#external = new Map(model.upstreams.flatMap((u) => (externalTarget(u) ? [[u.name, externalTarget(u)!]] : [])));
  }

  /** For proxy_pass and grpc_pass. */
  of(name: string): string {
    return this.#external.has(name) ? `$${externalVariable(name)}` : this.#names.of(name);
  }

  /** For a value nginx does not interpolate. */
  literal(name: string): string {
    return this.#external.get(name) ?? this.#names.of(name);
  }

  /** What server files depend on beyond their own model part (serverKey). */
  get key(): string[] {
    return [...this.#external.keys()].sort();
  }
}

/** The one shared memory zone of every dynamic upstream (nginx keeps resolved peers there). */
const ENDPOINTS_ZONE = 'isc_endpoints';

/**
 * The zone's size: 1 MiB and 32 KiB per dynamic upstream (a resolved peer takes about 0.5 KiB of
 * it, so ~60 endpoints per upstream on average). From the count of upstreams only: a size that
 * followed the endpoints would change the files, and reload, when they change.
 */
function endpointsZoneSize(model: RoutingModel): string {
  const dynamic = model.upstreams.filter((u) => u.dynamic).length;
  return `${Math.ceil((1024 + 32 * dynamic) / 1024)}m`;
}

function upstreamView(names: UpstreamNames, model: RoutingModel, zoneSize: string, u: Upstream) {
  const target = externalTarget(u);
  const resolve = u.external?.via === 'resolve' ? `${u.external.host}:${u.external.port}` : '';
  return {
    ...u,
    name: names.of(u.name),
    externalHost: u.external?.host ?? '',
    variable: target ? externalVariable(u.name) : '',
    target: target ?? '',
    zone: resolve
      ? { name: names.of(u.name), size: '64k' }
      : u.dynamic
        ? { name: ENDPOINTS_ZONE, size: zoneSize }
        : null,
    // An ExternalName's DNS servers (1.27.3 and later, in its upstream): the http-level resolver
    // is the sidecar's when dynamic upstreams are there.
    externalResolver: resolve && model.resolver ? { addresses: model.resolver } : null,
    dynamic: u.dynamic ? { host: u.dynamic.host, service: u.dynamic.tls ? 'https' : 'http' } : null,
    // A dynamic upstream's servers are the responder's answers, never the files'.
    servers: u.dynamic ? [] : u.servers,
    resolve,
    leastConn: u.balance.kind === 'least_conn',
    hash: u.balance.kind === 'hash' ? u.balance.key : '',
    sticky: u.balance.kind === 'sticky' ? stickyView(u.balance.cookie) : null,
  };
}

/** The responder, and the 503 listeners it points at (the TLS one with the default certificate). */
function endpointResolverView(model: RoutingModel, r: NonNullable<RoutingModel['endpointResolver']>) {
  const certPath = model.defaultServer.tls?.certPath;
  return {
    address: r.address,
    unavailablePort: r.unavailablePort,
    tlsPort: certPath && model.upstreams.some((u) => u.dynamic?.tls) ? r.unavailablePort + 1 : null,
    certPath: certPath ?? '',
  };
}

/**
 * A canary selector as maps and a split: canary-by-header decides first, then canary-by-cookie,
 * then canary-weight. Each stage's default is the next stage's variable (or an upstream name).
 */
function canaryView(names: Targets, selector: CanarySelector) {
  const c = { ...selector, main: names.literal(selector.main), canary: names.literal(selector.canary) };
  // Without a header or cookie stage, the split itself is the selector (translate makes no selector
  // that decides nothing per request).
  const splitVar = c.header || c.cookie ? `${c.variable}_w` : c.variable;
  const weightTarget = c.weight >= 100 ? c.canary : c.weight <= 0 ? c.main : `$${derived(splitVar)}`;
  const split =
    c.weight > 0 && c.weight < 100
      ? { variable: derived(splitVar), percent: `${c.weight}%`, canary: c.canary, main: c.main }
      : null;
  const cookieVar = c.header ? `${c.variable}_c` : c.variable;
  const cookie = c.cookie
    ? {
        source: requestVariable(c.cookie),
        variable: derived(cookieVar),
        canary: c.canary,
        main: c.main,
        next: weightTarget,
      }
    : null;
  const afterHeader = cookie ? `$${cookie.variable}` : weightTarget;
  const header = c.header
    ? {
        source: requestVariable(c.header.source),
        variable: derived(c.variable),
        // The exact value, case-sensitively: a regex of the escaped literal (map strings ignore case).
        key: c.header.value === null ? 'always' : `~^${regexLiteral(c.header.value)}$`,
        never: c.header.value === null,
        canary: c.canary,
        main: c.main,
        next: afterHeader,
      }
    : null;
  return { ingress: c.ingress, mainIngress: c.mainIngress, split, cookie, header };
}

/** `http_<name>` or `cookie_<name>`, written after a literal "$": validated names only. */
function requestVariable(source: string): string {
  if (!/^(http_[a-z0-9_]{1,64}|cookie_[A-Za-z0-9_]{1,64})$/.test(source))
    throw new Error(`refusing to render ${JSON.stringify(source)} as a variable name`);
  return source;
}

function serverView(names: Targets, model: RoutingModel, s: Server) {
  const https = model.https;
  return {
    servicePortVariable: model.ingressNginxVariables.includes('service_port'),
    mirrors: s.mirrors.map((m) => ({
      ...m,
      upstream: derived(m.upstream),
      proxyPass: `${m.scheme}://${derived(m.upstream)}${m.path}`,
      body: m.body ? 'on' : 'off',
      noBody: !m.body,
      https: m.scheme === 'https',
    })),
    errorLocations: s.errorLocations.map((e) => ({
      name: derived(e.name),
      code: e.code,
      proxyPass: `${e.scheme}://${names.of(e.upstream)}`,
    })),
    serverSnippets: s.snippets.map((x) => ({ ingress: x.ingress, lines: snippetLines(x.directives) })),
    isDefault: s.host === null,
    https: https !== null,
    accessLog: model.accessLog ?? '',
    httpPort: model.httpPort,
    ipv6: model.ipv6,
    serverName: s.serverName,
    ingresses: s.ingresses,
    locations: s.locations.map((l) => locationView(names, model, l)),
    tls:
      s.tls && https
        ? {
            httpsPort: https.port,
            http2Listen: https.http2 === 'listen',
            http2Directive: https.http2 === 'directive',
            certPath: s.tls.certPath,
            certDefault: s.tls.certPath === model.defaultServer.tls?.certPath,
            certSecret: s.tls.secret ?? '',
            certIngress: s.tls.ingress ?? '',
          }
        : null,
  };
}

function serverKey(model: RoutingModel, targets: Targets, s: Server): string {
  const globals = [
    model.https,
    model.accessLog,
    model.httpPort,
    model.ipv6,
    model.defaultServer.tls?.certPath ?? null,
    targets.key,
    model.ingressNginxVariables.includes('service_port'),
  ];
  return createHash('sha1')
    .update(JSON.stringify([globals, s]))
    .digest('base64');
}

interface RenderedServer {
  key: string;
  text: string;
  owned: OwnedLines[];
}

/**
 * Renders models into files; same model, same bytes. It keeps the server files of its previous
 * render, each with a digest of everything its text depends on: mustache is most of a pass's cost
 * at thousands of hosts (its name lookups), and one changed Ingress changes one host, so the
 * others are taken from here. The digest covers the server and every model field serverView
 * reads, so the output is exactly what rendering would give. One per sidecar (or command).
 */
export class Renderer {
  #servers = new Map<string, RenderedServer>();
  readonly #names = new UpstreamNames();

  /** The complete set of files this model needs, by file name, and who wrote which lines. */
  render(model: RoutingModel): Rendered {
    return runStepsSync(this.#steps(model));
  }

  /** render() that gives the event loop a turn every `budgetMs` (between servers); the same files. */
  renderAsync(model: RoutingModel, budgetMs?: number): Promise<Rendered> {
    return runSteps(this.#steps(model), budgetMs);
  }

  *#steps(model: RoutingModel): Generator<void, Rendered, void> {
    const names = this.#names;
    const targets = new Targets(names, model);
    const files = new Map<string, string>();
    const owned = new Map<string, OwnedLines[]>();
    const servers = new Map<string, RenderedServer>();
    const main = render(templates.main, {
      ingressNginx:
        model.ingressNginxVariables.length === 0
          ? null
          : Object.fromEntries(model.ingressNginxVariables.map((v) => [v, true])),
      serverNamesHash: model.serverNamesHash,
      https: model.https,
      limitReqZones: model.limitReqZones.map((z) => ({
        zone: `zone=${derived(z.name)}:${ZONE_SIZE}`,
        rate: `rate=${z.rate}`,
      })),
      limitConnZones: model.limitConnZones.map((z) => ({ zone: `zone=${derived(z)}:${ZONE_SIZE}` })),
      corsMaps: model.corsMaps.map((m) => corsMapView(m, derived)),
      affinityKeys: model.affinityKeys.map((k) => ({
        variable: derived(k.variable),
        source: requestVariable(`cookie_${k.cookie}`),
      })),
      affinityCookies: model.affinityCookies.map((c) => ({
        variable: derived(c.variable),
        source: requestVariable(`cookie_${c.cookie}`),
        value: `${c.cookie}=$${derived(c.key)}${c.attributes}`,
      })),
      canaries: model.canaries.map((c) => canaryView(targets, c)),
      zonesOrMaps:
        model.limitReqZones.length +
          model.limitConnZones.length +
          model.corsMaps.length +
          model.affinityKeys.length +
          model.canaries.length >
        0,
      defaultServer: serverView(targets, model, model.defaultServer),
    });
    files.set(MAIN_FILE, main.text);
    owned.set(MAIN_FILE, main.owned);
    yield;
    const zoneSize = endpointsZoneSize(model);
    files.set(
      UPSTREAMS_FILE,
      render(templates.upstreams, {
        endpointResolver: model.endpointResolver ? endpointResolverView(model, model.endpointResolver) : null,
        // Only nginx before 1.27.3 resolves ExternalName names outside their upstream (`variable`).
        resolver:
          model.resolver && model.upstreams.some((u) => u.external?.via === 'variable')
            ? { addresses: model.resolver }
            : null,
        upstreams: model.upstreams.map((u) => upstreamView(names, model, zoneSize, u)),
      }).text,
    );
    for (const s of model.servers) {
      yield;
      const key = serverKey(model, targets, s);
      const last = this.#servers.get(s.file);
      const server = last?.key === key ? last : { key, ...render(templates.host, serverView(targets, model, s)) };
      servers.set(s.file, server);
      files.set(s.file, server.text);
      owned.set(s.file, server.owned);
    }
    this.#servers = servers;
    return new Rendered(files, owned);
  }
}

/** The files of a model, rendered by a Renderer of its own (nothing reused): for tests and tools. */
export function renderModel(model: RoutingModel): Map<string, string> {
  return new Renderer().render(model).files;
}

/** renderModel() in steps (Renderer.renderAsync). */
export async function renderModelAsync(model: RoutingModel, budgetMs?: number): Promise<Map<string, string>> {
  return (await new Renderer().renderAsync(model, budgetMs)).files;
}
