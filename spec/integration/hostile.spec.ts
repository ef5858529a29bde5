// Hostile input: every string an Ingress, Service, EndpointSlice, Endpoints or IngressClass can
// carry is filled with nginx syntax, control characters, unicode, very long values and seeded
// random strings, next to a known-good Ingress. Each case must translate without throwing,
// reject or neutralise the hostile value, keep serving the good Ingress, render, and read back
// (through a tokenizer that splits text as nginx does) as exactly the directives the templates
// write with exactly the values the model holds. A sample also goes through a real `nginx -t`.
// TLS is on: the hostile Ingress has a spec.tls entry and a Secret, both of which are fields too.
// Every nginx.ingress.kubernetes.io annotation the sidecar implements is a field (with the
// companions it needs to take effect), and so are the auth Secret's name and content; each
// location is read back whole and compared with what the model says it holds.
//
// Reproduce a random case: HOSTILE_SEED=<seed> (and HOSTILE_CASES=<n>) with the seed printed
// in the test name; a failure names the case number.

import { deepStrictEqual, fail, ok, strictEqual } from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import nodePath from 'node:path';
import type {
  V1EndpointSlice,
  V1Endpoints,
  V1HTTPIngressPath,
  V1Ingress,
  V1IngressClass,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import * as ann from '../../src/annotations/index.ts';
import { ZONE_SIZE, affinityKeyVariable } from '../../src/annotations/settings.ts';
import type { CertificateFile, Location, RoutingModel, Server } from '../../src/model.ts';
import { findExecutable, nginxVersion } from '../../src/nginx/process.ts';
import { HTTP2_DIRECTIVE_SINCE, parseNginxVersion, versionAtLeast } from '../../src/nginx/version.ts';
import { renderModel } from '../../src/nginx/render.ts';
import {
  CLASS_ANNOTATION,
  DEFAULT_CLASS_ANNOTATION,
  FORCE_SSL_REDIRECT_ANNOTATION,
  MAIN_FILE,
  SSL_REDIRECT_ANNOTATION,
  UPSTREAMS_FILE,
  ingressKey,
  translate,
  type TranslateOptions,
} from '../../src/translate/index.ts';
import { parseHost, serverNameFor } from '../../src/grammar.ts';
import {
  backendService,
  endpoints,
  ingress,
  ingressClass,
  path as pathSpec,
  rule,
  snapshot,
} from '../helpers/builders.ts';
import { makeCert, tlsSecret } from '../helpers/certs.ts';
import { NginxSyntaxError, parseNginx, walk, type Directive } from '../../src/nginx/tokenizer.ts';
import { mulberry32 } from '../helpers/prng.ts';

/** Where rendered files say certificates are; nginx -t reads a copy that points at real files. */
const CERT_DIR = '/ingress-sidecar-hostile-certs';
const DEFAULT_CERT = makeCert({ cn: 'hostile default' });
const HOSTILE_CERT = makeCert({ dns: ['hostile.test'] });
const NGINX = findExecutable('nginx', process.env.PATH ?? '');
// Rendered for the nginx that checks it, as `run` renders for its nginx -v.
const NGINX_VERSION = NGINX ? await nginxVersion(NGINX) : null;
const HTTP2_DIRECTIVE =
  NGINX_VERSION !== null && versionAtLeast(parseNginxVersion(NGINX_VERSION)!, HTTP2_DIRECTIVE_SINCE);
const OPTS: TranslateOptions = {
  ingressClass: 'nginx',
  httpPort: 8080,
  ipv6: true,
  now: new Date(),
  tls: { httpsPort: 8443, httpsRedirectPort: 443, certDir: CERT_DIR, defaultCertificate: { pem: DEFAULT_CERT.pem } },
  ...(NGINX_VERSION ? { nginxVersion: NGINX_VERSION } : {}),
};
const SEED = Number(process.env.HOSTILE_SEED ?? 0x5eed1ce) >>> 0;
const RANDOM_CASES = Number(process.env.HOSTILE_CASES ?? 300);
const RANDOM_GROUP = 25;
/** Random cases that also go through `nginx -t` (the fixed payloads always do). */
const RANDOM_NGINX_SAMPLE = 20;

// ---------------------------------------------------------------------------------------------
// Scenario: a known-good Ingress and a hostile one, each with its own Service

const GOOD = 'default/good';
const GOOD_HOST = 'good.test';
const GOOD_UPSTREAM = 'default_good-web_80';

interface Scenario {
  hostile: V1Ingress;
  secrets: V1Secret[];
  services: V1Service[];
  slices: V1EndpointSlice[];
  endpoints: V1Endpoints[];
  classes: V1IngressClass[];
}

function scenario(): { good: V1Ingress; s: Scenario } {
  const good = ingress('good', [rule(GOOD_HOST, pathSpec('/', 'Prefix', 'good-web'))], { age: 0 });
  const hostile = ingress('hostile', [rule('hostile.test', pathSpec('/h', 'Prefix', 'evil-web'))], {
    age: 1,
    tls: [{ hosts: ['hostile.test'], secretName: 'evil-tls' }],
  });
  const g = backendService('good-web', '10.0.0.1');
  const e = backendService('evil-web', '10.0.0.2');
  const secrets = [tlsSecret('evil-tls', HOSTILE_CERT.crt, HOSTILE_CERT.key), htpasswdSecret('evil-auth', HTPASSWD)];
  return {
    good,
    s: { hostile, secrets, services: [g.service, e.service], slices: [g.slice, e.slice], endpoints: [], classes: [] },
  };
}

const hostilePath = (s: Scenario): V1HTTPIngressPath => s.hostile.spec!.rules![0]!.http!.paths[0]!;
const HTPASSWD = 'alice:$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0\n';
function htpasswdSecret(name: string, content: string, data?: Record<string, string>): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'default' },
    type: 'Opaque',
    data: data ?? { auth: Buffer.from(content).toString('base64') },
  };
}
const authSecret = (s: Scenario): V1Secret => s.secrets[1]!;
/** The hostile Ingress's annotations become exactly these. */
const annotate = (s: Scenario, a: Record<string, string>) => void (s.hostile.metadata!.annotations = a);
const AUTH = { [ann.AUTH_TYPE]: 'basic', [ann.AUTH_SECRET]: 'evil-auth' };
const evilService = (s: Scenario): V1Service => s.services[1]!;
const evilSlice = (s: Scenario): V1EndpointSlice => s.slices[1]!;
const evilTls = (s: Scenario) => s.hostile.spec!.tls![0]!;
const evilSecret = (s: Scenario): V1Secret => s.secrets[0]!;
const b64 = (v: string) => Buffer.from(v, 'utf8').toString('base64');
/** v as the body of a PEM block, so that it reaches the PEM parser rather than stopping at "no PEM block". */
const pemOf = (label: string, v: string) => `-----BEGIN ${label}-----\n${v}\n-----END ${label}-----\n`;

/** "/" in front unless there is one, so that most of a payload reaches the path grammar. */
const slash = (v: string) => (v.startsWith('/') ? v : `/${v}`);

/** Percent-encodes the UTF-8 bytes of v except unreserved characters and "/". */
function pct(v: string): string {
  let out = '';
  for (const b of Buffer.from(v, 'utf8')) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && /[A-Za-z0-9\-._~/]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

interface Field {
  name: string;
  set(s: Scenario, v: string): void;
  /** Whether the hostile Ingress may be neither served nor rejected (it is not of our class). */
  mayIgnore?: boolean;
  /** When the hostile Ingress is served and not rejected: the value must appear as given. */
  accepted?(m: RoutingModel, v: string, key: string): string | null;
}

const pathFields = (['Exact', 'Prefix', 'ImplementationSpecific'] as const).flatMap((t): Field[] => {
  const accepted = (m: RoutingModel, raw: string, key: string) =>
    allServers(m).some((srv) => srv.locations.some((l) => l.ingress === key && l.route.path === raw))
      ? null
      : `no location serves the accepted path ${JSON.stringify(raw)}`;
  return [
    {
      name: `path (${t})`,
      set: (s, v) => Object.assign(hostilePath(s), { pathType: t, path: slash(v) }),
      accepted: (m, v, key) => accepted(m, slash(v), key),
    },
    {
      name: `path (${t}, percent-encoded)`,
      set: (s, v) => Object.assign(hostilePath(s), { pathType: t, path: `/${pct(v)}` }),
      accepted: (m, v, key) => accepted(m, `/${pct(v)}`, key),
    },
  ];
});

/**
 * One field per implemented annotation: the hostile value alone, next to the annotations it needs
 * to take effect (and, for those, with the value in the companion's place too).
 */
function annotationFields(): Field[] {
  const companions: Record<string, Record<string, string>> = {
    [ann.PERMANENT_REDIRECT_CODE]: { [ann.PERMANENT_REDIRECT]: 'https://moved.test/' },
    [ann.TEMPORAL_REDIRECT_CODE]: { [ann.TEMPORAL_REDIRECT]: 'https://moved.test/' },
    [ann.CORS_ALLOW_ORIGIN]: { [ann.ENABLE_CORS]: 'true' },
    [ann.CORS_ALLOW_METHODS]: { [ann.ENABLE_CORS]: 'true' },
    [ann.CORS_ALLOW_HEADERS]: { [ann.ENABLE_CORS]: 'true' },
    [ann.CORS_EXPOSE_HEADERS]: { [ann.ENABLE_CORS]: 'true' },
    [ann.CORS_ALLOW_CREDENTIALS]: { [ann.ENABLE_CORS]: 'true' },
    [ann.CORS_MAX_AGE]: { [ann.ENABLE_CORS]: 'true' },
    [ann.ENABLE_CORS]: { [ann.CORS_ALLOW_ORIGIN]: 'https://a.test, https://*.b.test:8443' },
    [ann.LIMIT_BURST_MULTIPLIER]: { [ann.LIMIT_RPS]: '3' },
    [ann.AUTH_TYPE]: { [ann.AUTH_SECRET]: 'evil-auth' },
    [ann.AUTH_SECRET_TYPE]: AUTH,
    [ann.AUTH_REALM]: AUTH,
    [ann.AUTH_SECRET]: { [ann.AUTH_TYPE]: 'basic' },
    [ann.AFFINITY]: { [ann.SESSION_COOKIE_NAME]: 'SID' },
    [ann.SESSION_COOKIE_NAME]: { [ann.AFFINITY]: 'cookie' },
    [ann.SESSION_COOKIE_PATH]: { [ann.AFFINITY]: 'cookie' },
    [ann.SESSION_COOKIE_MAX_AGE]: { [ann.AFFINITY]: 'cookie' },
    [ann.SESSION_COOKIE_SAMESITE]: { [ann.AFFINITY]: 'cookie' },
    [ann.SESSION_COOKIE_SECURE]: { [ann.AFFINITY]: 'cookie' },
    [ann.CANARY_WEIGHT]: { [ann.CANARY]: 'true' },
    [ann.CANARY_WEIGHT_TOTAL]: { [ann.CANARY]: 'true', [ann.CANARY_WEIGHT]: '1' },
    [ann.CANARY_BY_HEADER]: { [ann.CANARY]: 'true' },
    [ann.CANARY_BY_HEADER_VALUE]: { [ann.CANARY]: 'true', [ann.CANARY_BY_HEADER]: 'X-Canary' },
    [ann.CANARY_BY_COOKIE]: { [ann.CANARY]: 'true' },
    [ann.MIRROR_REQUEST_BODY]: { [ann.MIRROR_TARGET]: 'http://10.0.9.9:8080$request_uri' },
    [ann.CUSTOM_HTTP_ERRORS]: { [ann.DEFAULT_BACKEND]: 'evil-web' },
    [ann.DEFAULT_BACKEND]: { [ann.CUSTOM_HTTP_ERRORS]: '404' },
  };
  const out: Field[] = [];
  for (const name of [...ann.SUPPORTED_ANNOTATIONS].sort()) {
    if (name === SSL_REDIRECT_ANNOTATION || name === FORCE_SSL_REDIRECT_ANNOTATION) continue;
    out.push({ name: `${name} value`, set: (s, v) => annotate(s, { [name]: v }) });
    const with_ = companions[name];
    if (with_) {
      out.push({
        name: `${name} value, with ${Object.keys(with_).join(', ')}`,
        set: (s, v) => annotate(s, { ...with_, [name]: v }),
      });
      out.push({
        name: `${name} value, also in ${Object.keys(with_).join(', ')}`,
        set: (s, v) => annotate(s, { ...Object.fromEntries(Object.keys(with_).map((k) => [k, v])), [name]: v }),
      });
    }
  }
  return out;
}

const FIELDS: Field[] = [
  {
    name: 'Ingress host',
    set: (s, v) => void (s.hostile.spec!.rules![0]!.host = v),
    accepted: (m, v) =>
      v === '' || m.servers.some((x) => x.host === v) ? null : `no server for the accepted host ${JSON.stringify(v)}`,
  },
  ...pathFields,
  {
    name: 'path in a rule without host (percent-encoded)',
    set: (s, v) => {
      delete s.hostile.spec!.rules![0]!.host;
      hostilePath(s).path = `/${pct(v)}`;
    },
  },
  { name: 'Ingress name', set: (s, v) => void (s.hostile.metadata!.name = v) },
  {
    name: 'Ingress namespace (and its Service)',
    set: (s, v) => {
      s.hostile.metadata!.namespace = v;
      evilService(s).metadata!.namespace = v;
      evilSlice(s).metadata!.namespace = v;
    },
  },
  {
    name: 'backend Service name (and the Service)',
    set: (s, v) => {
      hostilePath(s).backend.service!.name = v;
      evilService(s).metadata!.name = v;
      evilSlice(s).metadata!.labels!['kubernetes.io/service-name'] = v;
    },
  },
  {
    name: 'backend Service port name (and the Service port)',
    set: (s, v) => {
      hostilePath(s).backend.service!.port = { name: v };
      evilService(s).spec!.ports![0]!.name = v;
      evilSlice(s).ports![0]!.name = v;
    },
  },
  {
    name: 'defaultBackend Service name (and the Service)',
    set: (s, v) => {
      s.hostile.spec!.rules = [];
      s.hostile.spec!.defaultBackend = { service: { name: v, port: { number: 80 } } };
      evilService(s).metadata!.name = v;
      evilSlice(s).metadata!.labels!['kubernetes.io/service-name'] = v;
    },
  },
  {
    name: 'Service port name (Ingress refers to the number)',
    set: (s, v) => {
      evilService(s).spec!.ports![0]!.name = v;
      evilSlice(s).ports![0]!.name = v;
    },
  },
  {
    // YAML and JSON manifests can say `port: "80"`; the directory source passes it on as it is.
    name: 'Service port number, given as a string in a manifest (Ingress refers to the name)',
    set: (s, v) => {
      hostilePath(s).backend.service!.port = { name: 'http' };
      (evilService(s).spec!.ports![0] as { port: unknown }).port = v;
    },
  },
  { name: 'spec.ingressClassName', mayIgnore: true, set: (s, v) => void (s.hostile.spec!.ingressClassName = v) },
  {
    name: `${CLASS_ANNOTATION} annotation`,
    mayIgnore: true,
    set: (s, v) => {
      delete s.hostile.spec!.ingressClassName;
      s.hostile.metadata!.annotations = { [CLASS_ANNOTATION]: v };
    },
  },
  {
    name: 'IngressClass name (marked default)',
    mayIgnore: true,
    set: (s, v) => {
      delete s.hostile.spec!.ingressClassName;
      s.classes = [ingressClass(v, true)];
    },
  },
  {
    name: `IngressClass ${DEFAULT_CLASS_ANNOTATION} annotation`,
    mayIgnore: true,
    set: (s, v) => {
      delete s.hostile.spec!.ingressClassName;
      const cls = ingressClass('nginx', false);
      cls.metadata!.annotations = { [DEFAULT_CLASS_ANNOTATION]: v };
      s.classes = [cls];
    },
  },
  {
    name: 'nginx.ingress.kubernetes.io/ annotation name and value',
    set: (s, v) => void (s.hostile.metadata!.annotations = { [`nginx.ingress.kubernetes.io/${v}`]: v }),
  },
  {
    name: 'spec.tls secretName (and the Secret)',
    set: (s, v) => {
      evilTls(s).secretName = v;
      evilSecret(s).metadata!.name = v;
    },
  },
  { name: 'spec.tls hosts', set: (s, v) => void (evilTls(s).hosts = [v]) },
  {
    name: 'spec.tls hosts and the rule host',
    set: (s, v) => {
      evilTls(s).hosts = [v];
      s.hostile.spec!.rules![0]!.host = v;
    },
  },
  {
    name: 'spec.tls without hosts, Secret namespace',
    set: (s, v) => {
      delete evilTls(s).hosts;
      evilSecret(s).metadata!.namespace = v;
    },
  },
  { name: 'Secret type', set: (s, v) => void (evilSecret(s).type = v) },
  { name: 'Secret tls.crt (base64 of the value)', set: (s, v) => void (evilSecret(s).data!['tls.crt'] = b64(v)) },
  { name: 'Secret tls.crt (raw data value)', set: (s, v) => void (evilSecret(s).data!['tls.crt'] = v) },
  {
    name: 'Secret tls.crt (inside a CERTIFICATE block)',
    set: (s, v) => void (evilSecret(s).data!['tls.crt'] = b64(pemOf('CERTIFICATE', v))),
  },
  {
    name: 'Secret tls.crt (around a valid certificate)',
    set: (s, v) => void (evilSecret(s).data!['tls.crt'] = b64(`${v}\n${HOSTILE_CERT.crt}\n${v}`)),
  },
  {
    name: 'Secret tls.key (inside a PRIVATE KEY block)',
    set: (s, v) => void (evilSecret(s).data!['tls.key'] = b64(pemOf('PRIVATE KEY', v))),
  },
  {
    name: 'Secret tls.key (around the valid key)',
    set: (s, v) => void (evilSecret(s).data!['tls.key'] = b64(`${v}\n${HOSTILE_CERT.key}\n${v}`)),
  },
  {
    name: `${SSL_REDIRECT_ANNOTATION} value`,
    set: (s, v) => void (s.hostile.metadata!.annotations = { [SSL_REDIRECT_ANNOTATION]: v }),
  },
  {
    name: `${FORCE_SSL_REDIRECT_ANNOTATION} value`,
    set: (s, v) => void (s.hostile.metadata!.annotations = { [FORCE_SSL_REDIRECT_ANNOTATION]: v }),
  },
  ...annotationFields(),
  {
    name: 'path (ImplementationSpecific, use-regex)',
    set: (s, v) => {
      annotate(s, { [ann.USE_REGEX]: 'true' });
      Object.assign(hostilePath(s), { pathType: 'ImplementationSpecific', path: slash(v) });
    },
    accepted: (m, v, key) =>
      allServers(m).some((srv) =>
        srv.locations.some((l) => l.ingress === key && l.match === 'regex' && l.route.path === slash(v)),
      )
        ? null
        : `no regex location serves the accepted path ${JSON.stringify(slash(v))}`,
  },
  {
    name: 'path (ImplementationSpecific, rewrite-target /r) next to a Prefix path',
    set: (s, v) => {
      annotate(s, { [ann.REWRITE_TARGET]: '/r' });
      Object.assign(hostilePath(s), { pathType: 'ImplementationSpecific', path: slash(v) });
      s.hostile.spec!.rules![0]!.http!.paths.push({
        path: `/p${pct(v)}`,
        pathType: 'Prefix',
        backend: { service: { name: 'evil-web', port: { number: 80 } } },
      });
    },
  },
  {
    name: 'auth-secret name (and the Secret)',
    set: (s, v) => {
      annotate(s, { ...AUTH, [ann.AUTH_SECRET]: v });
      authSecret(s).metadata!.name = v;
    },
  },
  {
    name: 'auth Secret "auth" key (base64 of the value)',
    set: (s, v) => {
      annotate(s, AUTH);
      authSecret(s).data = { auth: b64(v) };
    },
  },
  {
    name: 'auth Secret "auth" key (base64 of the value around a valid line)',
    set: (s, v) => {
      annotate(s, AUTH);
      authSecret(s).data = { auth: b64(`${v}\n${HTPASSWD}${v}`) };
    },
  },
  {
    name: 'auth Secret "auth" key (raw data value)',
    set: (s, v) => {
      annotate(s, AUTH);
      authSecret(s).data = { auth: v };
    },
  },
  {
    name: 'auth Secret, auth-map user and hash',
    set: (s, v) => {
      annotate(s, { ...AUTH, [ann.AUTH_SECRET_TYPE]: 'auth-map' });
      authSecret(s).data = { [v]: b64(v), bob: b64(v) };
    },
  },
  { name: 'EndpointSlice address', set: (s, v) => void (evilSlice(s).endpoints = [{ addresses: [v] }]) },
  { name: 'EndpointSlice port name', set: (s, v) => void (evilSlice(s).ports![0]!.name = v) },
  {
    name: 'EndpointSlice kubernetes.io/service-name label',
    set: (s, v) => void (evilSlice(s).metadata!.labels!['kubernetes.io/service-name'] = v),
  },
  {
    name: 'Endpoints address (no EndpointSlice)',
    set: (s, v) => {
      s.slices = [s.slices[0]!];
      s.endpoints = [endpoints('evil-web', { name: 'http', port: 8080 }, [v])];
    },
  },
  {
    name: 'Endpoints port name (no EndpointSlice)',
    set: (s, v) => {
      s.slices = [s.slices[0]!];
      s.endpoints = [endpoints('evil-web', { name: v, port: 8080 }, ['10.0.0.2'])];
    },
  },
];

// ---------------------------------------------------------------------------------------------
// What a rendered configuration may contain

const allServers = (m: RoutingModel): Server[] => [m.defaultServer, ...m.servers];

/** A directive without its line, block included, for comparing what nginx reads. */
type Shape = Array<string | Shape[]>;

function shape(d: Directive): Shape {
  return d.block ? [d.name, ...d.args, d.block.map(shape)] : [d.name, ...d.args];
}

const json = (x: unknown) => JSON.stringify(x).slice(0, 300);

const signature = (d: Directive, context: string[]) => `${context.join('>') || '(file)'}: ${d.name}/${d.args.length}`;

/** Directives in a server block whose values come from the model; all others must be the baseline's. */
const MODEL_SERVER_DIRECTIVES = new Set([
  'listen',
  'server_name',
  'location',
  'ssl_certificate',
  'ssl_certificate_key',
]);

/** Top-level directives of the main file that the model decides (the others are always the same). */
const fromModel = (d: Directive) =>
  d.name.startsWith('server_names_hash_') ||
  d.name === 'server' ||
  d.name === 'limit_req_zone' ||
  d.name === 'limit_conn_zone' ||
  ((d.name === 'map' || d.name === 'split_clients') && (d.args[1] ?? '').startsWith('$isc_')) ||
  (d.name === 'upstream' && (d.args[0] ?? '').startsWith('isc_mirror_'));

/**
 * The rendered files of a model that uses every branch of the templates: the directives and
 * contexts they allow, and the parts of a server block that do not depend on the model.
 */
const baseline = (() => {
  const web = backendService('web', '10.0.0.1');
  const m = translate(
    snapshot({
      ingresses: [
        ingress('a', [
          rule(
            'a.test',
            pathSpec('/', 'Prefix', 'web'),
            pathSpec('/x', 'Exact', 'web'),
            pathSpec('/p', 'Prefix', 'web'),
            pathSpec('/i', 'ImplementationSpecific', 'web'),
          ),
        ]),
        ingress('b', [
          rule('*.b.test', pathSpec('/', 'Prefix', 'missing')),
          rule(undefined, pathSpec('/nohost', 'Prefix', 'web')),
        ]),
        ingress('c', [rule('hostile.test', pathSpec('/', 'Prefix', 'web'))], {
          tls: [{ hosts: ['hostile.test'], secretName: 'c-tls' }],
        }),
        ingress('c-slash', [rule('hostile.test', pathSpec('/keep', 'Prefix', 'web'))], {
          annotations: { [ann.PRESERVE_TRAILING_SLASH]: 'true' },
        }),
        // Every annotation, so that every directive the templates can write is in the baseline.
        // A literal path's rewrite (no captures: a rewrite-target naming one is refused there).
        ingress('d-lit', [rule('d.test', pathSpec('/', 'Prefix', 'web'), pathSpec('/lit', 'Prefix', 'web'))], {
          annotations: { [ann.REWRITE_TARGET]: '/new' },
        }),
        ingress('d', [rule('d.test', pathSpec('/re(/|$)(.*)', 'ImplementationSpecific', 'web'))], {
          annotations: {
            [ann.REWRITE_TARGET]: '/$2',
            [ann.APP_ROOT]: '/app',
            [ann.X_FORWARDED_PREFIX]: '/d',
            [ann.PROXY_BODY_SIZE]: '8m',
            [ann.PROXY_CONNECT_TIMEOUT]: '3',
            [ann.PROXY_SEND_TIMEOUT]: '30',
            [ann.PROXY_READ_TIMEOUT]: '120',
            [ann.PROXY_BUFFERING]: 'on',
            [ann.PROXY_BUFFER_SIZE]: '16k',
            [ann.ALLOWLIST_SOURCE_RANGE]: '10.0.0.0/8',
            [ann.DENYLIST_SOURCE_RANGE]: '10.1.0.0/16',
            [ann.ENABLE_CORS]: 'true',
            [ann.CORS_ALLOW_ORIGIN]: 'https://a.test',
            [ann.CORS_EXPOSE_HEADERS]: 'X-Total',
            [ann.LIMIT_RPS]: '5',
            [ann.LIMIT_RPM]: '100',
            [ann.LIMIT_CONNECTIONS]: '3',
            ...AUTH,
          },
        }),
        ingress('e', [rule('e.test', pathSpec('/', 'Prefix', 'web'))], {
          annotations: { [ann.ENABLE_CORS]: 'true', [ann.PERMANENT_REDIRECT]: 'https://moved.test${request_uri}' },
        }),
        ingress('f', [rule('f.test', pathSpec('/', 'Prefix', 'web'))], {
          annotations: { [ann.BACKEND_PROTOCOL]: 'GRPC', [ann.X_FORWARDED_PREFIX]: '/f' },
        }),
        ingress('g', [rule('g.test', pathSpec('/', 'Prefix', 'web'))], {
          annotations: { [ann.BACKEND_PROTOCOL]: 'HTTPS' },
        }),
        ingress('h', [rule('h.test', pathSpec('/', 'Prefix', 'web'))], {
          annotations: {
            [ann.AFFINITY]: 'cookie',
            [ann.SESSION_COOKIE_MAX_AGE]: '60',
            [ann.CUSTOM_HTTP_ERRORS]: '404,503',
            [ann.DEFAULT_BACKEND]: 'web',
            [ann.MIRROR_TARGET]: 'http://10.0.9.9:8080/copy$request_uri',
            [ann.MIRROR_REQUEST_BODY]: 'off',
          },
        }),
        ingress('i', [rule('i.test', pathSpec('/', 'Prefix', 'web'))], {
          annotations: { [ann.UPSTREAM_HASH_BY]: '$remote_addr', [ann.MIRROR_TARGET]: 'https://10.0.9.10/' },
        }),
        ingress('j', [rule('j.test', pathSpec('/', 'Prefix', 'web'))], { annotations: { [ann.LOAD_BALANCE]: 'ewma' } }),
        ingress('k', [rule('k.test', pathSpec('/', 'Prefix', 'web'))], { age: 0 }),
        ingress('k-canary', [rule('k.test', pathSpec('/', 'Prefix', 'web2'))], {
          age: 1,
          annotations: {
            [ann.CANARY]: 'true',
            [ann.CANARY_BY_HEADER]: 'X-Canary',
            [ann.CANARY_BY_COOKIE]: 'canary',
            [ann.CANARY_WEIGHT]: '30',
          },
        }),
        ingress('l', [rule('l.test', pathSpec('/', 'Prefix', 'web'))], { age: 0 }),
        ingress('l-canary', [rule('l.test', pathSpec('/', 'Prefix', 'web2'))], {
          age: 1,
          annotations: {
            [ann.CANARY]: 'true',
            [ann.CANARY_BY_HEADER]: 'X-Version',
            [ann.CANARY_BY_HEADER_VALUE]: 'v2',
          },
        }),
      ],
      backends: [web, backendService('web2', '10.0.0.3')],
      secrets: [tlsSecret('c-tls', HOSTILE_CERT.crt, HOSTILE_CERT.key), htpasswdSecret('evil-auth', HTPASSWD)],
    }),
    OPTS,
  );
  const files = renderModel(m);
  const trees = new Map([...files].map(([name, text]) => [name, parseNginx(text)]));
  const allowed = new Set(
    [...trees.values()].flatMap((t) => [...walk(t)].map(({ d, context }) => signature(d, context))),
  );
  const serverParts = (s: Server) => {
    const block = trees.get(s.file)?.find((d) => d.name === 'server')?.block ?? [];
    return {
      listen: block.filter((d) => d.name === 'listen').map(shape),
      fixed: block.filter((d) => !MODEL_SERVER_DIRECTIVES.has(d.name)).map(shape),
    };
  };
  const main = trees.get(MAIN_FILE) ?? [];
  const proxyHeaders = (
    trees.get(m.servers.find((x) => x.host === 'a.test')!.file)?.find((d) => d.name === 'server')?.block ?? []
  )
    .filter((d) => d.name === 'proxy_set_header')
    .map(shape);
  if (m.rejections.some((r) => r.ingress !== 'default/b') || proxyHeaders.length !== 8)
    throw new Error(`the baseline is not clean: ${JSON.stringify(m.rejections)}`);
  return {
    proxyHeaders,
    allowed,
    defaultServer: serverParts(m.defaultServer),
    hostServer: serverParts(m.servers.find((s) => s.host === 'a.test')!),
    tlsServer: serverParts(m.servers.find((s) => s.host === 'hostile.test')!),
    /** Top-level directives of the main file other than the model's numbers, zones and maps. */
    mainFixed: main.filter((d) => !fromModel(d)).map(shape),
  };
})();

describe('hostile input: the baseline the checks compare with', () => {
  it('uses every directive the templates write, in the contexts they write them', () => {
    for (const sig of [
      '(file): server_names_hash_max_size/1',
      '(file): map/2',
      'map: default/1',
      '(file): server/0',
      'server: listen/1',
      'server: listen/2',
      'server: server_name/1',
      'server: proxy_set_header/2',
      'server: location/1',
      'server: location/2',
      'server>location: proxy_pass/1',
      'server>location: return/1',
      'server: listen/3',
      // HTTP/2: its own directive from nginx 1.25.1, a parameter of listen before.
      HTTP2_DIRECTIVE ? 'server: http2/1' : 'server: listen/4',
      'server: ssl_certificate/1',
      'server: ssl_certificate_key/1',
      'server: ssl_protocols/2',
      'server>location: if/3',
      'server>location>if: return/2',
      '(file): upstream/1',
      'upstream: server/1',
      'server: location/2',
      '(file): limit_req_zone/3',
      '(file): limit_conn_zone/2',
      'server>location: rewrite/3',
      'server>location: limit_req/3',
      'server>location: limit_conn/2',
      'server>location: allow/1',
      'server>location: deny/1',
      'server>location: auth_basic/1',
      'server>location: auth_basic_user_file/1',
      'server>location: add_header/3',
      'server>location: proxy_hide_header/1',
      'server>location: client_max_body_size/1',
      'server>location: proxy_connect_timeout/1',
      'server>location: proxy_send_timeout/1',
      'server>location: proxy_read_timeout/1',
      'server>location: proxy_buffering/1',
      'server>location: proxy_buffer_size/1',
      'server>location: proxy_buffers/2',
      'server>location: proxy_set_header/2',
      'server>location: return/2',
      'server>location: if/1',
      'server>location>if: return/1',
      'server>location: grpc_pass/1',
      'server>location: grpc_set_header/2',
      'server>location: grpc_connect_timeout/1',
      'server>location: grpc_buffer_size/1',
      '(file): split_clients/2',
      'upstream: hash/2',
      'upstream: least_conn/0',
      'server>location: mirror/1',
      'server>location: mirror_request_body/1',
      'server>location: error_page/3',
      'server>location: proxy_intercept_errors/1',
      'server>location: add_header/2',
      'server>location: internal/0',
      'server>location: proxy_ssl_name/1',
    ]) {
      ok(baseline.allowed.has(sig), `${sig} not in ${[...baseline.allowed].join(', ')}`);
    }
  });
});

/** An upstream as nginx.conf names it: 8 hex digits of the model name's SHA-1, "_", the name. */
const upstreamWritten = (name: string) =>
  asWritten(`${createHash('sha1').update(name).digest('hex').slice(0, 8)}_${name}`);

/** Written to disk as UTF-8, a lone surrogate becomes U+FFFD: that is what nginx reads. */
const asWritten = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

function compareList(what: string, want: unknown[], got: unknown[]): string[] {
  const w = json(want);
  const g = json(got);
  return JSON.stringify(want) === JSON.stringify(got) ? [] : [`${what}: expected ${w}, nginx reads ${g}`];
}

/** A server block must hold the model's values, each as exactly one argument, and nothing else. */
function serverProblems(m: RoutingModel, where: string, d: Directive, s: Server): string[] {
  const block = d.block ?? [];
  const ref = s.host === null ? baseline.defaultServer : s.tls ? baseline.tlsServer : baseline.hostServer;
  const certPath = s.tls ? [[asWritten(s.tls.certPath)]] : [];
  const out = [
    ...compareList(
      `${where} ssl_certificate`,
      certPath,
      block.filter((x) => x.name === 'ssl_certificate').map((x) => x.args),
    ),
    ...compareList(
      `${where} ssl_certificate_key`,
      certPath,
      block.filter((x) => x.name === 'ssl_certificate_key').map((x) => x.args),
    ),
    ...compareList(`${where} listen`, ref.listen, block.filter((x) => x.name === 'listen').map(shape)),
    ...compareList(
      `${where} server_name`,
      [[asWritten(s.serverName)]],
      block.filter((x) => x.name === 'server_name').map((x) => x.args),
    ),
    ...compareList(
      `${where} fixed directives`,
      ref.fixed,
      block.filter((x) => !MODEL_SERVER_DIRECTIVES.has(x.name)).map(shape),
    ),
  ];
  const locations = block.filter((x) => x.name === 'location');
  const internal = internalLocations(m, s);
  out.push(
    ...compareList(
      `${where} locations`,
      [...s.locations.map(locationArgs), ...internal.map((x) => x.args)],
      locations.map((x) => x.args),
    ),
  );
  s.locations.forEach((l, i) => {
    const body = locations[i]?.block ?? [];
    out.push(...compareList(`${where} location ${json(l.path)}`, locationBody(m, l), body.map(shape)));
  });
  internal.forEach((x, i) => {
    const body = locations[s.locations.length + i]?.block ?? [];
    out.push(...compareList(`${where} internal location ${json(x.args)}`, x.body, body.map(shape)));
  });
  return out;
}

const locationArgs = (l: Location): string[] =>
  l.match === 'exact'
    ? ['=', asWritten(l.path)]
    : l.match === 'regex'
      ? [l.ignoreCase ? '~*' : '~', asWritten(l.path)]
      : [asWritten(l.path)];

/** Everything a location block must hold, as nginx reads it, from the model alone. */
function locationBody(m: RoutingModel, l: Location): Shape[] {
  const s = l.settings;
  const out: Shape[] = [];
  if (l.ingress) {
    const [ns = '', name = ''] = l.ingress.split('/');
    out.push(
      ['set', '$ingress_sidecar_namespace', ns],
      ['set', '$ingress_sidecar_ingress', name],
      ['set', '$ingress_sidecar_service', l.service.split('/')[1]?.split(':')[0] ?? ''],
    );
  }
  if (s.appRoot !== null)
    out.push(['if', '($uri', '=', '/)', [['return', '302', asWritten(`$scheme://$ingress_sidecar_host${s.appRoot}`)]]]);
  if (s.redirect) out.push(['return', String(s.redirect.code), asWritten(s.redirect.url)]);
  if (s.cors) {
    out.push(
      'any' in s.cors.origin
        ? ['if', '($request_method', '=', 'OPTIONS)', [['return', '204']]]
        : ['if', `($${s.cors.origin.preflight})`, [['return', '204']]],
    );
  }
  // A rewrite to an absolute URL (nginx answers it with a redirect) comes before the HTTPS redirect.
  const rewrite = s.rewrite && ['rewrite', asWritten(s.rewrite.regex), asWritten(s.rewrite.replacement), 'break'];
  const redirecting = s.rewrite !== null && /^https?:\/\//.test(s.rewrite.replacement);
  if (rewrite && redirecting) out.push(rewrite);
  const port = m.https && m.https.redirectPort !== 443 ? `:${m.https.redirectPort}` : '';
  if (l.sslRedirect)
    out.push([
      'if',
      '($scheme',
      '=',
      'http)',
      [
        [
          'return',
          '308',
          `https://$host${port}${s.preserveTrailingSlash ? '$request_uri' : '$ingress_sidecar_redirect_uri'}`,
        ],
      ],
    ]);
  if (rewrite && !redirecting) out.push(rewrite);
  for (const z of s.limitReq) out.push(['limit_req', `zone=${z.zone}`, `burst=${z.burst}`, 'nodelay']);
  if (s.limitConn) out.push(['limit_conn', s.limitConn.zone, String(s.limitConn.connections)]);
  for (const c of s.deny) out.push(['deny', c]);
  for (const c of s.allow) out.push(['allow', c]);
  if (s.allow.length > 0) out.push(['deny', 'all']);
  if (s.mirror) out.push(['mirror', s.mirror.uri], ['mirror_request_body', s.mirror.body ? 'on' : 'off']);
  if (s.setCookie !== null) out.push(['add_header', 'Set-Cookie', `$${s.setCookie}`]);
  const grpc = s.backendProtocol === 'grpc' || s.backendProtocol === 'grpcs';
  if (s.errorPages.length > 0 && l.action.kind === 'proxy')
    out.push([grpc ? 'grpc_intercept_errors' : 'proxy_intercept_errors', 'on']);
  for (const e of s.errorPages) out.push(['error_page', String(e.code), '=', `@${e.location}`]);
  if (s.auth) out.push(['auth_basic', asWritten(s.auth.realm)], ['auth_basic_user_file', asWritten(s.auth.userFile)]);
  if (s.cors) {
    for (const h of s.cors.headers) out.push(['proxy_hide_header', h.name]);
    for (const h of s.cors.headers)
      out.push(['add_header', h.name, 'value' in h ? asWritten(h.value) : `$${h.variable}`, 'always']);
  }
  if (s.bodySize !== null) out.push(['client_max_body_size', s.bodySize]);
  const headers = (directive: string, names?: string[]): Shape[] =>
    baseline.proxyHeaders
      .filter((h) => names === undefined || names.includes(h[1] as string))
      .map((h): Shape => [
        directive,
        h[1] as string,
        m.https || h[1] !== 'X-Forwarded-Port' ? (h[2] as string) : '$server_port',
      ]);
  if (l.action.kind !== 'proxy') {
    out.push(['return', l.action.kind === 'notFound' ? '404' : '503']);
  } else if (s.backendProtocol === 'grpc' || s.backendProtocol === 'grpcs') {
    out.push(
      ['grpc_connect_timeout', `${s.connectTimeout ?? 5}s`],
      ['grpc_send_timeout', `${s.sendTimeout ?? 60}s`],
      ['grpc_read_timeout', `${s.readTimeout ?? 60}s`],
      ['grpc_buffer_size', s.bufferSize ?? '4k'],
      ...headers('grpc_set_header', [
        'Host',
        'X-Real-IP',
        'X-Forwarded-For',
        'X-Forwarded-Host',
        'X-Forwarded-Port',
        'X-Forwarded-Proto',
      ]),
    );
    if (s.xForwardedPrefix !== null) out.push(['grpc_set_header', 'X-Forwarded-Prefix', s.xForwardedPrefix]);
    out.push([
      'grpc_pass',
      asWritten(`${s.backendProtocol}://${l.action.via ? `$${l.action.via}` : upstreamWritten(l.action.upstream)}`),
    ]);
  } else {
    if (s.connectTimeout !== null) out.push(['proxy_connect_timeout', `${s.connectTimeout}s`]);
    if (s.sendTimeout !== null) out.push(['proxy_send_timeout', `${s.sendTimeout}s`]);
    if (s.readTimeout !== null) out.push(['proxy_read_timeout', `${s.readTimeout}s`]);
    if (s.buffering !== null) out.push(['proxy_buffering', s.buffering ? 'on' : 'off']);
    if (s.bufferSize !== null) out.push(['proxy_buffer_size', s.bufferSize], ['proxy_buffers', '4', s.bufferSize]);
    if (s.xForwardedPrefix !== null)
      out.push(...headers('proxy_set_header'), ['proxy_set_header', 'X-Forwarded-Prefix', s.xForwardedPrefix]);
    out.push([
      'proxy_pass',
      asWritten(`${s.backendProtocol}://${l.action.via ? `$${l.action.via}` : upstreamWritten(l.action.upstream)}`),
    ]);
  }
  return out;
}

/** The internal locations after a server's routes: mirror targets, then custom-http-errors. */
function internalLocations(m: RoutingModel, s: Server): Array<{ args: string[]; body: Shape[] }> {
  const headers = baseline.proxyHeaders.map((h): Shape => [
    'proxy_set_header',
    h[1] as string,
    m.https || h[1] !== 'X-Forwarded-Port' ? (h[2] as string) : '$server_port',
  ]);
  return [
    ...s.mirrors.map((x) => ({
      args: ['=', x.uri],
      body: [
        ['internal'],
        ['proxy_set_header', 'Host', x.hostHeader],
        ['proxy_set_header', 'X-Original-URI', '$request_uri'],
        ['proxy_set_header', 'X-Real-IP', '$remote_addr'],
        ['proxy_set_header', 'X-Forwarded-For', '$proxy_add_x_forwarded_for'],
        ['proxy_pass_request_body', x.body ? 'on' : 'off'],
        ...(x.body ? [] : [['proxy_set_header', 'Content-Length', '']]),
        ...(x.scheme === 'https'
          ? [
              ['proxy_ssl_server_name', 'on'],
              ['proxy_ssl_name', x.sniName],
            ]
          : []),
        ['proxy_pass', `${x.scheme}://${x.upstream}${x.path}`],
      ] as Shape[],
    })),
    ...s.errorLocations.map((e) => ({
      args: [`@${e.name}`],
      body: [
        ...headers,
        ...[
          ['X-Code', String(e.code)],
          ['X-Format', '$http_accept'],
          ['X-Original-URI', '$request_uri'],
          ['X-Namespace', '$ingress_sidecar_namespace'],
          ['X-Ingress-Name', '$ingress_sidecar_ingress'],
          ['X-Service-Name', '$ingress_sidecar_service'],
          ['X-Request-ID', '$request_id'],
        ].map(([k, v]): Shape => ['proxy_set_header', k!, v!]),
        ['proxy_pass', `${e.scheme}://${upstreamWritten(e.upstream)}`],
      ] as Shape[],
    })),
  ];
}

/** A canary selector as nginx must read it: split, cookie map, header map, each falling through to the next. */
function canaryShapes(selector: RoutingModel['canaries'][number]): Shape[] {
  const c = { ...selector, main: upstreamWritten(selector.main), canary: upstreamWritten(selector.canary) };
  const out: Shape[] = [];
  const splitVar = c.header || c.cookie ? `${c.variable}_w` : c.variable;
  const w = c.weight >= 100 ? c.canary : c.weight <= 0 ? c.main : `$${splitVar}`;
  if (c.weight > 0 && c.weight < 100)
    out.push([
      'split_clients',
      '$request_id',
      `$${splitVar}`,
      [
        [`${c.weight}%`, c.canary],
        ['*', c.main],
      ],
    ]);
  let next = w;
  if (c.cookie) {
    const v = c.header ? `${c.variable}_c` : c.variable;
    out.push([
      'map',
      `$${c.cookie}`,
      `$${v}`,
      [
        ['always', c.canary],
        ['never', c.main],
        ['default', next],
      ],
    ]);
    next = `$${v}`;
  }
  if (c.header) {
    const key =
      c.header.value === null ? 'always' : `~^${c.header.value.replace(/[^A-Za-z0-9/_-]/g, (x) => `\\${x}`)}$`;
    out.push([
      'map',
      `$${c.header.source}`,
      `$${c.variable}`,
      [[key, c.canary], ...(c.header.value === null ? [['never', c.main]] : []), ['default', next]],
    ]);
  }
  return out;
}

/** The mirror upstreams a server's file defines before its server block. */
const mirrorUpstreams = (s: Server): Shape[] => s.mirrors.map((x) => ['upstream', x.upstream, [['server', x.address]]]);

/** Every rendered file read back as nginx reads it, against the model it came from. */
function structureProblems(m: RoutingModel, trees: Map<string, Directive[]>): string[] {
  const out: string[] = [];
  const main = trees.get(MAIN_FILE);
  if (main) {
    const args = (name: string) => main.filter((d) => d.name === name).map((d) => d.args);
    out.push(
      ...compareList(
        `${MAIN_FILE} server_names_hash_max_size`,
        [[String(m.serverNamesHash.maxSize)]],
        args('server_names_hash_max_size'),
      ),
    );
    out.push(
      ...compareList(
        `${MAIN_FILE} server_names_hash_bucket_size`,
        [[String(m.serverNamesHash.bucketSize)]],
        args('server_names_hash_bucket_size'),
      ),
    );
    out.push(
      ...compareList(`${MAIN_FILE} fixed directives`, baseline.mainFixed, main.filter((d) => !fromModel(d)).map(shape)),
    );
    out.push(
      ...compareList(
        `${MAIN_FILE} limit_req_zone`,
        m.limitReqZones.map((z) => [
          'limit_req_zone',
          '$binary_remote_addr',
          `zone=${z.name}:${ZONE_SIZE}`,
          `rate=${z.rate}`,
        ]),
        main.filter((d) => d.name === 'limit_req_zone').map(shape),
      ),
      ...compareList(
        `${MAIN_FILE} limit_conn_zone`,
        m.limitConnZones.map((z) => ['limit_conn_zone', '$binary_remote_addr', `zone=${z}:${ZONE_SIZE}`]),
        main.filter((d) => d.name === 'limit_conn_zone').map(shape),
      ),
      ...compareList(
        `${MAIN_FILE} CORS maps`,
        [
          ...m.corsMaps.flatMap((c) => [
            [
              'map',
              '$http_origin',
              `$${c.variable}`,
              [
                ['default', ''],
                [`~*${asWritten(c.pattern)}`, '$http_origin'],
              ],
            ],
            [
              'map',
              `$request_method$${c.variable}`,
              `$${c.preflight}`,
              [
                ['default', ''],
                ['~^OPTIONS.', '1'],
              ],
            ],
            ...c.values.map((v) => [
              'map',
              `$${c.variable}`,
              `$${v.variable}`,
              [
                ['', `$upstream_http_${v.header.toLowerCase().replaceAll('-', '_')}`],
                ['default', v.value === null ? '$http_origin' : asWritten(v.value)],
              ],
            ]),
          ]),
          ...m.affinityKeys.map((k) => [
            'map',
            `$cookie_${k.cookie}`,
            `$${k.variable}`,
            [
              ['', '$request_id'],
              ['default', `$cookie_${k.cookie}`],
            ],
          ]),
          ...m.affinityCookies.map((c) => [
            'map',
            `$cookie_${c.cookie}`,
            `$${c.variable}`,
            [
              ['', `${c.cookie}=$${c.key}${c.attributes}`],
              ['default', ''],
            ],
          ]),
          ...m.canaries.flatMap((c) => canaryShapes(c)),
        ],
        main
          .filter((d) => (d.name === 'map' || d.name === 'split_clients') && (d.args[1] ?? '').startsWith('$isc_'))
          .map(shape),
      ),
    );
    out.push(
      ...compareList(
        `${MAIN_FILE} mirror upstreams`,
        mirrorUpstreams(m.defaultServer),
        main.filter((d) => d.name === 'upstream').map(shape),
      ),
    );
    const servers = main.filter((d) => d.name === 'server');
    if (servers.length !== 1)
      out.push(`${MAIN_FILE}: ${servers.length} server blocks, expected the default server only`);
    else out.push(...serverProblems(m, MAIN_FILE, servers[0]!, m.defaultServer));
  }
  for (const s of m.servers) {
    const tree = trees.get(s.file);
    if (!tree) continue;
    const before = tree.slice(0, -1);
    const last = tree[tree.length - 1];
    if (!last || last.name !== 'server' || before.some((d) => d.name !== 'upstream'))
      out.push(
        `${s.file}: expected mirror upstreams and one server block, nginx reads ${json(tree.map((d) => d.name))}`,
      );
    else {
      out.push(...compareList(`${s.file} mirror upstreams`, mirrorUpstreams(s), before.map(shape)));
      out.push(...serverProblems(m, s.file, last, s));
    }
  }
  const ups = trees.get(UPSTREAMS_FILE);
  if (ups) {
    out.push(
      ...compareList(
        `${UPSTREAMS_FILE} upstreams`,
        m.upstreams.map((u) => ['upstream', upstreamWritten(u.name)]),
        ups.map((d) => [d.name, ...d.args]),
      ),
    );
    m.upstreams.forEach((u, i) => {
      const servers = (ups[i]?.block ?? []).filter((d) => d.name === 'server').map((d) => d.args);
      out.push(
        ...compareList(
          `${UPSTREAMS_FILE} upstream ${json(u.name)} servers`,
          u.servers.map((x) => [asWritten(x.address)]),
          servers,
        ),
      );
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model invariants: what "already validated" promises to the templates

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const UPSTREAM_NAME =
  /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?_[a-z]([-a-z0-9]{0,61}[a-z0-9])?_([1-9][0-9]{0,4})(_https|_grpc|_grpcs)?(_svc)?(_ewma|_hash_[0-9a-f]{8})?$/;
/** upstream-hash-by keys: `${name}` of the allowed variables and literal text; affinity: its derived key variable. */
const HASH_KEY =
  /^((\$\{(request_uri|uri|document_uri|args|query_string|remote_addr|binary_remote_addr|host|http_host|request_method|scheme|server_name|http_[a-z0-9_]+|cookie_[A-Za-z0-9_]+|arg_[A-Za-z0-9_]+)\})|[A-Za-z0-9_.:/-])+$|^\$isc_aff_[0-9a-f]{8}$/;
const FILE_NAME = /^ingress-sidecar-server-[a-z0-9._-]+\.conf$/;
/** NAME_MAX on Linux filesystems: longer file names fail with ENAMETOOLONG. */
const NAME_MAX = 255;

const portOk = (p: string) => /^[1-9][0-9]{0,4}$/.test(p) && Number(p) <= 65535;

function addressOk(a: string): boolean {
  const v4 = /^([0-9.]+):([0-9]+)$/.exec(a);
  if (v4) return isIP(v4[1]!) === 4 && portOk(v4[2]!);
  // nginx parses bracketed IPv6 without a zone ("%eth0") only.
  const v6 = /^\[([0-9a-fA-F:.]+)\]:([0-9]+)$/.exec(a);
  return v6 !== null && isIP(v6[1]!) === 6 && portOk(v6[2]!);
}

const CERT_PATH = new RegExp(`^${CERT_DIR}/[0-9a-f]{32}\\.pem$`);

function modelProblems(m: RoutingModel): string[] {
  const out: string[] = [];
  const files = new Set(m.certificates.map((c) => c.file));
  const htpasswdFiles = new Set(
    allServers(m).flatMap((s) =>
      s.locations.flatMap((l) => (l.settings.auth ? [l.settings.auth.userFile.slice(CERT_DIR.length + 1)] : [])),
    ),
  );
  for (const c of m.certificates) {
    if (!/^[0-9a-f]{32}\.pem$/.test(c.file))
      out.push(`model: certificate file name ${JSON.stringify(c.file).slice(0, 200)} is not derived`);
    if (htpasswdFiles.has(c.file)) {
      // user:hash lines of printable ASCII: nothing else reaches the file nginx reads.
      if (!/^([\x21-\x39\x3b-\x7e]+:[\x21-\x7e]+\n)+$/.test(c.pem))
        out.push(`model: htpasswd file ${c.file} holds more than user:hash lines`);
    } else if (
      /[^\x20-\x7e\n]/.test(c.pem) ||
      !/^(-----BEGIN (CERTIFICATE|PRIVATE KEY)-----\n[A-Za-z0-9+/=\n]+-----END \2-----\n)+$/.test(c.pem)
    ) {
      out.push(`model: certificate ${c.file} holds more than re-encoded PEM blocks`);
    }
  }
  out.push(...settingsProblems(m, files));
  for (const s of allServers(m)) {
    if (s.tls && (!CERT_PATH.test(s.tls.certPath) || !files.has(s.tls.certPath.slice(CERT_DIR.length + 1)))) {
      out.push(
        `model: ${s.host ?? 'default server'} certificate path ${JSON.stringify(s.tls.certPath).slice(0, 200)} is not a listed, derived file`,
      );
    }
    for (const name of [s.tls?.secret, s.tls?.ingress]) {
      if (name && !/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(name))
        out.push(`model: TLS comment name ${JSON.stringify(name).slice(0, 200)} is not namespace/name`);
    }
  }
  const names = new Set(m.upstreams.map((u) => u.name));
  for (const u of m.upstreams) {
    const n = UPSTREAM_NAME.exec(u.name);
    if (!n || Number(n[3]) > 65535)
      out.push(`model: upstream name ${JSON.stringify(u.name).slice(0, 200)} is not namespace_service_port`);
    if (CONTROL.test(u.service))
      out.push(`model: upstream ${JSON.stringify(u.name)} has control characters in its service`);
    if (u.balance.kind === 'hash' && !HASH_KEY.test(u.balance.key))
      out.push(
        `model: upstream ${JSON.stringify(u.name)} hash key ${JSON.stringify(u.balance.key).slice(0, 200)} breaks its grammar`,
      );
    for (const x of u.servers) {
      if (!addressOk(x.address))
        out.push(
          `model: upstream ${JSON.stringify(u.name)} server ${JSON.stringify(x.address)} is not an ip:port nginx parses`,
        );
    }
  }
  for (const s of allServers(m)) {
    if (s.host !== null) {
      try {
        const h = parseHost(s.host);
        if (serverNameFor(h) !== s.serverName)
          out.push(`model: server_name ${JSON.stringify(s.serverName)} does not match host ${s.host}`);
      } catch (err) {
        out.push(`model: server host ${JSON.stringify(s.host)} is not a valid host: ${String(err)}`);
      }
      if (!FILE_NAME.test(s.file)) out.push(`model: file name ${JSON.stringify(s.file)} is not a safe file name`);
      if (Buffer.byteLength(s.file) > NAME_MAX)
        out.push(`model: file name of ${Buffer.byteLength(s.file)} bytes exceeds NAME_MAX (${NAME_MAX}): ${s.file}`);
    }
    for (const l of s.locations) {
      if ((l.match !== 'regex' && !l.path.startsWith('/')) || CONTROL.test(l.path))
        out.push(`model: location path ${JSON.stringify(l.path)} is not a clean absolute path`);
      if (l.action.kind === 'proxy' && !names.has(l.action.upstream))
        out.push(`model: location ${JSON.stringify(l.path)} proxies to an unknown upstream`);
      for (const text of [l.ingress, l.service, l.route.path, l.action.kind === 'unavailable' ? l.action.reason : '']) {
        if (CONTROL.test(text)) out.push(`model: comment text ${JSON.stringify(text)} has control characters`);
      }
    }
  }
  return out;
}

/** What each annotation setting promises the templates: only derived names, and `$` only where a variable belongs. */
function settingsProblems(m: RoutingModel, files: Set<string>): string[] {
  const out: string[] = [];
  const bad = (what: string, v: unknown) =>
    out.push(`model: ${what} ${JSON.stringify(v).slice(0, 200)} breaks its grammar`);
  const cidr = (c: string) => {
    const [ip = '', len = ''] = c.split('/');
    return isIP(ip) !== 0 && /^\d{1,3}$/.test(len) && Number(len) <= (isIP(ip) === 4 ? 32 : 128);
  };
  const zones = new Set([...m.limitReqZones.map((z) => z.name), ...m.limitConnZones]);
  const maps = new Map(m.corsMaps.map((c) => [c.variable, c]));
  for (const z of m.limitReqZones) {
    if (!/^ingress_sidecar_(rps|rpm)_[0-9a-f]{16}$/.test(z.name)) bad('limit_req zone name', z.name);
    if (!/^[1-9][0-9]*r\/[sm]$/.test(z.rate)) bad('limit_req rate', z.rate);
  }
  for (const z of m.limitConnZones) if (!/^ingress_sidecar_conn_[0-9a-f]{16}$/.test(z)) bad('limit_conn zone name', z);
  for (const c of m.corsMaps) {
    if (!/^isc_cors_[0-9a-f]{8}$/.test(c.variable) || c.preflight !== c.variable.replace('isc_cors_', 'isc_cpf_'))
      bad('CORS map variables', [c.variable, c.preflight]);
    if (!/^\^\((([a-z]+:\/\/(\[a-z0-9-\]\+\\\.)?[a-z0-9\\.-]*(:[0-9]+)?|null)\|?)+\)\$$/.test(c.pattern))
      bad('CORS origin pattern', c.pattern);
    for (const v of c.values)
      if (!/^isc_cv_[0-9a-f]{8}$/.test(v.variable) || (v.value !== null && !/^[A-Za-z0-9_*, +-]+$/.test(v.value)))
        bad('CORS value map', v);
  }
  for (const c of m.affinityCookies) {
    if (
      !/^isc_affset_[0-9a-f]{8}$/.test(c.variable) ||
      c.key !== affinityKeyVariable(c.cookie) ||
      !/^[A-Za-z0-9_]{1,64}$/.test(c.cookie)
    )
      bad('affinity cookie', c);
    if (
      !/^; Path=\/[A-Za-z0-9\-._~!&'()*+=:@/%]*(; Max-Age=[0-9]+)?(; SameSite=(Strict|Lax|None))?(; Secure)?; HttpOnly$/.test(
        c.attributes,
      )
    )
      bad('affinity cookie attributes', c.attributes);
  }
  for (const k of m.affinityKeys) if (k.variable !== affinityKeyVariable(k.cookie)) bad('affinity key', k);
  const upstreamNames = new Set(m.upstreams.map((u) => u.name));
  for (const c of m.canaries) {
    if (!/^isc_canary_[0-9a-f]{12}$/.test(c.variable) || !upstreamNames.has(c.main) || !upstreamNames.has(c.canary))
      bad('canary selector', c);
    if (
      c.header &&
      (!/^http_[a-z0-9_]{1,64}$/.test(c.header.source) ||
        (c.header.value !== null && !/^[A-Za-z0-9._~:/+=@-]{1,256}$/.test(c.header.value)))
    )
      bad('canary header', c.header);
    if (c.cookie !== null && !/^cookie_[A-Za-z0-9_]{1,64}$/.test(c.cookie)) bad('canary cookie', c.cookie);
    if (!(c.weight >= 0 && c.weight <= 100 && Math.round(c.weight * 100) === c.weight * 100))
      bad('canary weight', c.weight);
  }
  for (const s of allServers(m)) {
    for (const mm of s.mirrors) {
      if (!/^\/_ingress_sidecar\/mirror\/[0-9a-f]{16}$/.test(mm.uri) || !/^isc_mirror_[0-9a-f]{16}$/.test(mm.upstream))
        bad('mirror names', mm);
      if (
        !/^([a-z0-9.-]+|\[[0-9a-f:.]+\]):[0-9]{1,5}$/.test(mm.address) ||
        !/^([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$/.test(mm.hostHeader)
      )
        bad('mirror address', mm);
      if (!/^([A-Za-z0-9\-._~:/?@!&'()*+,;=%]|\$\{request_uri\})+$/.test(mm.path)) bad('mirror path', mm.path);
    }
    for (const e of s.errorLocations)
      if (!/^isc_err_[45][0-9]{2}_[0-9a-f]{8}$/.test(e.name) || !upstreamNames.has(e.upstream))
        bad('error location', e);
    for (const l of s.locations) {
      const x = l.settings;
      if (l.match === 'regex' && (CONTROL.test(l.path) || /\(\?[^:]/.test(l.path) || !l.path.startsWith('^')))
        bad('location pattern', l.path);
      if (
        x.rewrite &&
        (!/^(?:https?:\/\/(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?(?=\/|$))?(?:[A-Za-z0-9\-._~:/]|\$[1-9])*$/i.test(
          x.rewrite.replacement,
        ) ||
          CONTROL.test(x.rewrite.regex) ||
          /\(\?[^:i]/.test(x.rewrite.regex))
      )
        bad('rewrite', x.rewrite);
      if (
        x.appRoot !== null &&
        !/^\/(?:[A-Za-z0-9\-._~!&'()*+,;=:@/%?]|\$\{(request_uri|host|scheme|args|is_args)\})*$/.test(x.appRoot)
      )
        bad('app-root', x.appRoot);
      if (
        x.redirect &&
        (!/^https?:\/\/([A-Za-z0-9\-._~:/?#[\]@!&'()*+,;=%]|\$\{(request_uri|host|scheme|args|is_args)\})+$/.test(
          x.redirect.url,
        ) ||
          ![301, 302, 303, 307, 308].includes(x.redirect.code))
      )
        bad('redirect', x.redirect);
      if (x.xForwardedPrefix !== null && !/^[A-Za-z0-9\-._~:/]+$/.test(x.xForwardedPrefix))
        bad('x-forwarded-prefix', x.xForwardedPrefix);
      for (const c of [...x.allow, ...x.deny]) if (!cidr(c)) bad('CIDR', c);
      for (const v of [x.bodySize, x.bufferSize]) if (v !== null && !/^[0-9]+[kmg]?$/.test(v)) bad('size', v);
      for (const v of [x.connectTimeout, x.sendTimeout, x.readTimeout])
        if (v !== null && !(Number.isInteger(v) && v >= 1)) bad('timeout', v);
      for (const z of x.limitReq)
        if (!zones.has(z.zone) || !(Number.isInteger(z.burst) && z.burst >= 1)) bad('limit_req', z);
      if (
        x.limitConn &&
        (!zones.has(x.limitConn.zone) || !(Number.isInteger(x.limitConn.connections) && x.limitConn.connections >= 1))
      )
        bad('limit_conn', x.limitConn);
      if (x.auth) {
        if (!/^[\x20\x21\x23\x25-\x5b\x5d-\x7e]+$/.test(x.auth.realm) || x.auth.realm.toLowerCase() === 'off')
          bad('auth realm', x.auth.realm);
        if (!CERT_PATH.test(x.auth.userFile) || !files.has(x.auth.userFile.slice(CERT_DIR.length + 1)))
          bad('auth user file', x.auth.userFile);
      }
      if (x.setCookie !== null && !m.affinityCookies.some((c) => c.variable === x.setCookie))
        bad('Set-Cookie variable', x.setCookie);
      if (x.mirror && !s.mirrors.some((mm) => mm.uri === x.mirror!.uri)) bad('mirror location', x.mirror);
      for (const e of x.errorPages)
        if (!(e.code >= 400 && e.code <= 599) || !s.errorLocations.some((el) => el.name === e.location))
          bad('error page', e);
      if (
        l.action.kind === 'proxy' &&
        l.action.via !== undefined &&
        !m.canaries.some((c) => c.variable === (l.action as { via?: string }).via)
      )
        bad('canary variable', l.action.via);
      if (x.cors) {
        const o = x.cors.origin;
        if (!('any' in o) && maps.get(o.variable)?.preflight !== o.preflight) bad('CORS origin variable', o);
        const values = maps.get('any' in o ? '' : o.variable)?.values ?? [];
        for (const h of x.cors.headers) {
          if (!/^Access-Control-(Allow-(Origin|Credentials|Methods|Headers)|Expose-Headers|Max-Age)$/.test(h.name))
            bad('CORS header name', h.name);
          if ('variable' in h ? !values.some((v) => v.variable === h.variable) : !/^[A-Za-z0-9_*, +-]+$/.test(h.value))
            bad('CORS header value', h);
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// One case: translate, check the model, render, read back

interface CaseResult {
  problems: string[];
  files: Map<string, string> | null;
  certificates: CertificateFile[];
}

function runCase(field: Field, v: string): CaseResult {
  const { good, s } = scenario();
  field.set(s, v);
  const key = ingressKey(s.hostile);
  const snap = snapshot({
    ingresses: [s.hostile, good],
    ingressClasses: s.classes,
    services: s.services,
    endpointSlices: s.slices,
    endpoints: s.endpoints,
    secrets: s.secrets,
  });
  const problems: string[] = [];

  let m: RoutingModel;
  try {
    m = translate(snap, OPTS);
  } catch (err) {
    return {
      problems: [
        `translate() threw ${err instanceof Error ? err.stack?.split('\n').slice(0, 3).join(' | ') : String(err)}`,
      ],
      files: null,
      certificates: [],
    };
  }

  // The good Ingress is untouched.
  const goodServer = m.servers.find((x) => x.host === GOOD_HOST);
  const goodRoot = goodServer?.locations.find((l) => l.match === 'prefix' && l.path === '/');
  if (!m.served.includes(GOOD))
    problems.push(`${GOOD} is no longer served (served: ${JSON.stringify(m.served).slice(0, 200)})`);
  if (
    !goodRoot ||
    goodRoot.ingress !== GOOD ||
    goodRoot.action.kind !== 'proxy' ||
    goodRoot.action.upstream !== GOOD_UPSTREAM
  ) {
    problems.push(`server ${GOOD_HOST} no longer proxies / to ${GOOD_UPSTREAM}`);
  }
  if (m.rejections.some((r) => r.ingress === GOOD))
    problems.push(`${GOOD} got a rejection: ${JSON.stringify(m.rejections.filter((r) => r.ingress === GOOD))}`);

  // The hostile one is rejected (with a reason), served as given, or (class fields) ignored.
  const mine = m.rejections.filter((r) => r.ingress === key);
  for (const r of mine) {
    if (r.severity !== 'rejected' && r.severity !== 'partial')
      problems.push(`rejection with severity ${JSON.stringify(r.severity)}`);
    if (typeof r.reason !== 'string' || r.reason.trim() === '') problems.push('rejection without a reason');
  }
  const served = m.served.includes(key);
  const rejected = mine.some((r) => r.severity === 'rejected');
  if (rejected && served) problems.push(`${key} is rejected but still served`);
  if (!served && mine.length === 0 && !field.mayIgnore) problems.push(`${key} is neither served nor reported`);
  if (served && !rejected && field.accepted) {
    const why = field.accepted(m, v, key);
    if (why) problems.push(why);
  }

  problems.push(...modelProblems(m));

  let files: Map<string, string>;
  try {
    files = renderModel(m);
  } catch (err) {
    problems.push(`renderModel() threw ${String(err).slice(0, 300)}`);
    return { problems, files: null, certificates: [] };
  }

  const expectedNames = [MAIN_FILE, UPSTREAMS_FILE, ...m.servers.map((x) => x.file)].sort();
  const fileNames = [...files.keys()].sort();
  if (JSON.stringify(fileNames) !== JSON.stringify(expectedNames)) {
    problems.push(`rendered files ${json(fileNames)} are not the model's ${json(expectedNames)}`);
  }
  const trees = new Map<string, Directive[]>();
  for (const [name, text] of files) {
    try {
      trees.set(name, parseNginx(text));
    } catch (err) {
      const line = err instanceof NginxSyntaxError ? text.split('\n')[err.line - 1] : undefined;
      problems.push(
        `${name}: nginx would refuse it: ${(err as Error).message}${line === undefined ? '' : `: ${json(line)}`}`,
      );
      continue;
    }
    for (const { d, context } of walk(trees.get(name)!)) {
      const sig = signature(d, context);
      if (!baseline.allowed.has(sig))
        problems.push(`${name}:${d.line}: a directive the templates never write: ${sig} ${json(d.args)}`);
    }
  }
  problems.push(...structureProblems(m, trees));
  return { problems, files, certificates: m.certificates };
}

// ---------------------------------------------------------------------------------------------
// nginx -t

let nginxRoot = '';
let nginxRuns = 0;
/** Results by file content: most hostile cases render the same files as another case. */
const nginxChecked = new Map<string, string | null>();

function nginxProblem(files: Map<string, string>, certificates: CertificateFile[]): string | null {
  if (NGINX === null) return null;
  const key = JSON.stringify([...files].sort());
  // Certificate names are digests of their content: the file texts, which name them, say it all.
  const known = nginxChecked.get(key);
  if (known !== undefined) return known;
  const dir = nodePath.join(nginxRoot, `run-${nginxRuns++}`);
  const confDir = nodePath.join(dir, 'conf');
  let result: string | null = null;
  try {
    mkdirSync(confDir, { recursive: true });
    const certDir = nodePath.join(dir, 'certs');
    mkdirSync(certDir);
    // The default access log: a build with its own prefix (nginx 1.30.4's) opens it under -p.
    mkdirSync(nodePath.join(dir, 'logs'));
    for (const c of certificates) writeFileSync(nodePath.join(certDir, c.file), c.pem, { mode: 0o600 });
    for (const [name, text] of files)
      writeFileSync(nodePath.join(confDir, name), text.replaceAll(`${CERT_DIR}/`, `${certDir}/`));
    const harness = nodePath.join(dir, 'harness.conf');
    writeFileSync(
      harness,
      `pid ${dir}/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n    include ${confDir}/*.conf;\n}\n`,
    );
    const run = spawnSync(NGINX, ['-t', '-p', `${dir}/`, '-e', 'stderr', '-c', harness], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    const output = `${run.stderr ?? ''}${run.stdout ?? ''}`;
    if (run.status !== 0 || /\[(emerg|alert|crit|error|warn)\]/.test(output)) {
      const first = output.split('\n').find((l) => /\[(emerg|alert|crit|error|warn)\]/.test(l)) ?? output.trim();
      // Point at the rendered line nginx complains about.
      const where = /in (\S+):(\d+)/.exec(first);
      const line = where ? files.get(nodePath.basename(where[1]!))?.split('\n')[Number(where[2]) - 1] : undefined;
      result = `nginx -t ${run.status === 0 ? 'warned' : `failed (status ${run.status}${run.error ? `, ${run.error.message}` : ''})`}: ${first.replace(/^\S+ \S+ /, '').slice(0, 300)}${line === undefined ? '' : ` -- line: ${JSON.stringify(line.slice(0, 200))}`}`;
    }
  } catch (err) {
    result = `could not stage the rendered files for nginx -t: ${String(err).slice(0, 300)}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  nginxChecked.set(key, result);
  return result;
}

function checkPayload(v: string, withNginx: boolean): string[] {
  const problems: string[] = [];
  for (const field of FIELDS) {
    const r = runCase(field, v);
    const nginx = withNginx && r.files ? nginxProblem(r.files, r.certificates) : null;
    for (const p of nginx ? [...r.problems, nginx] : r.problems) problems.push(`[${field.name}] ${p}`);
  }
  return problems;
}

/** Fails with one line per problem (and no actual/expected diff repeating them). */
function expectNone(problems: string[]): void {
  if (problems.length > 0) fail(`${problems.length} problem(s):\n${problems.join('\n')}`);
}

const show = (v: string) =>
  v.length > 60 ? `${JSON.stringify(v.slice(0, 40))}... (${v.length} chars)` : JSON.stringify(v);

// ---------------------------------------------------------------------------------------------
// Payloads

const label63 = 'a'.repeat(63);
const FIXED: string[] = [
  // nginx syntax, one character at a time
  ';',
  '{',
  '}',
  '#',
  '\n',
  '\r',
  '\t',
  '"',
  "'",
  '\\',
  '$',
  '${',
  ' ',
  '',
  '\0',
  // directive injection
  'a.test;ssl_engine /tmp/evil.so;',
  'a.test; load_module /tmp/evil.so; #',
  'x;}\nserver { listen 8080; location / { alias /etc/; } }\n#',
  '} } server { server_name evil.test; location / { alias /etc/; autoindex on; } } #',
  'x { content_by_lua_block { os.execute("id") } }',
  'x"; ssl_engine "evil',
  "x'; include '/etc/passwd",
  'x\\";load_module /tmp/e.so;#',
  'x\\\nload_module /tmp/e.so;',
  'a.test\nload_module /tmp/evil.so;',
  'a.test\r\nload_module /tmp/evil.so;',
  '#}\nload_module /tmp/evil.so;',
  '$host',
  '${host}',
  '$http_x_target;',
  'http://169.254.169.254/',
  'default_server',
  // paths
  '/../../etc/passwd',
  '/a/../b',
  '/%2e%2e/etc/passwd',
  '/%2e%2e%2fetc',
  '/a/%2E%2E/b',
  '/a/.%2e/b',
  '/%0aload_module%20/tmp/e.so;',
  '/%0d%0a',
  '/%00',
  '/%3B%7B%7D%23',
  '/%22%27%5C',
  '/%24%7Bhost%7D',
  '/%7D%20server%20%7B%20location%20/%20%7B%20alias%20/etc/;%20%7D%20%7D%20%23',
  '/%5C%22;load_module%20/tmp/e.so;',
  '/a b',
  '/%20',
  '/%',
  '/%zz',
  '/%C0%AF',
  '/%ED%A0%80',
  '/%E2%80%A8',
  '/%EF%BB%BF',
  '//etc',
  "/'",
  '/;',
  '/$',
  '/=',
  '/@x',
  // unicode
  'ünïcödé.test',
  '/ünïcödé',
  'xn--nxasmq6b.test',
  'a\u2028b',
  'a\u0085b',
  'a\u202eb',
  '\ufeffa.test',
  'a\u00a0b',
  '🙂',
  '\ud800',
  'İ.test',
  // names, hosts and addresses that are almost right
  'A.TEST',
  'a.test.',
  '.a.test',
  'a..test',
  '-a.test',
  '*',
  '*.',
  '*.a.test',
  '*.*.a.test',
  'a.*.test',
  '_',
  'a_b',
  'http',
  '0',
  '-1',
  '65536',
  '80',
  '1e3',
  'fe80::1%eth0',
  'fe80::1%lo',
  '::ffff:10.0.0.3',
  '::1',
  '[::1]',
  '10.0.0.3:80',
  '10.0.0.3;',
  '10.0.0.03',
  '0x7f.0.0.1',
  '127.0.0.1',
  'localhost',
  'unix:/var/run/evil.sock',
  // long
  'a'.repeat(5000),
  `${label63}.${label63}.${label63}.${'a'.repeat(61)}`,
  `${label63}.${label63}.${label63}.${'a'.repeat(62)}`,
  `${'a'.repeat(64)}.test`,
  `*.${label63}.${label63}.${label63}.${'a'.repeat(61)}`,
  `/${'a'.repeat(2047)}`,
  `/${'a'.repeat(2048)}`,
  `/${'%22'.repeat(682)}`,
  `/${'%5C'.repeat(682)}`,
  `/${'%F0%9F%99%82'.repeat(170)}`,
  ';'.repeat(3000),
  '{'.repeat(1000),
];

// ---------------------------------------------------------------------------------------------
// Seeded random strings

const prng = mulberry32;

const PIECES = [
  ';',
  '{',
  '}',
  '#',
  '"',
  "'",
  '\\',
  '$',
  '${',
  '\n',
  '\r',
  '\t',
  ' ',
  '\0',
  '%',
  '%0a',
  '%0d',
  '%00',
  '%3b',
  '%7b',
  '%7d',
  '%22',
  '%27',
  '%5c',
  '%24',
  '%23',
  '%20',
  '%2e',
  '%2f',
  '%ff',
  '%c0%af',
  '../',
  './',
  '//',
  '/',
  '.',
  '-',
  '_',
  '*',
  '*.',
  ':',
  '@',
  '[',
  ']',
  '(',
  ')',
  '=',
  '~',
  '^',
  '|',
  '&',
  '!',
  '+',
  ',',
  'load_module /tmp/x.so',
  'ssl_engine x',
  'alias /etc/',
  'include /etc/passwd',
  'content_by_lua_block {',
  'server {',
  'location / {',
  'proxy_pass http://169.254.169.254',
  'return 200',
  '}}',
  'é',
  'ß',
  'İ',
  'Ω',
  '🙂',
  '\u202e',
  '\u2028',
  '\u0085',
  '\ufeff',
  '\u00a0',
  '\ud800',
  '\udfff',
  'fe80::1%eth0',
  '::1',
  '10.0.0.1',
  'default_server',
  'http',
];
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@";

function randomString(r: () => number): string {
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const run = (chars: string, n: number) => Array.from({ length: n }, () => chars[int(chars.length)]).join('');
  const mutate = (s: string) => {
    const at = int(s.length + 1);
    return s.slice(0, at) + pick(PIECES) + s.slice(at);
  };
  const kind = r();
  if (kind < 0.3) {
    // chaos: pieces of nginx syntax and unicode between runs of letters
    return Array.from({ length: 1 + int(12) }, () =>
      r() < 0.5 ? pick(PIECES) : run(r() < 0.2 ? ALNUM.toUpperCase() : ALNUM, 1 + int(8)),
    ).join('');
  }
  if (kind < 0.55) {
    // almost a host: DNS labels, often with one foreign piece
    const host =
      (r() < 0.2 ? '*.' : '') + Array.from({ length: 1 + int(4) }, () => run(`${ALNUM}-`, 1 + int(12))).join('.');
    return r() < 0.6 ? mutate(host) : host;
  }
  if (kind < 0.8) {
    // almost a path: URL path characters and percent-escapes of any byte
    const seg = () =>
      Array.from({ length: 1 + int(6) }, () =>
        r() < 0.3 ? `%${int(256).toString(16).padStart(2, '0')}` : run(PATH_CHARS, 1 + int(4)),
      ).join('');
    const p = `/${Array.from({ length: 1 + int(4) }, seg).join('/')}`;
    return r() < 0.4 ? mutate(p) : p;
  }
  if (kind < 0.92) {
    // almost a name: a DNS label, sometimes with one foreign piece
    const name = run(ALNUM.slice(0, 26), 1) + run(`${ALNUM}-`, int(20)) + run(ALNUM, 1);
    return r() < 0.5 ? mutate(name) : name;
  }
  // long: a piece repeated to hundreds or thousands of characters
  const piece = r() < 0.5 ? pick(PIECES) : run(ALNUM, 1 + int(5));
  return piece.repeat(Math.ceil((200 + int(5000)) / piece.length));
}

const RANDOM: string[] = (() => {
  const r = prng(SEED);
  return Array.from({ length: RANDOM_CASES }, () => randomString(r));
})();

// ---------------------------------------------------------------------------------------------
// The suite

describe('hostile input: every string field, next to a known-good Ingress', function () {
  this.timeout(60_000);

  before(() => {
    nginxRoot = mkdtempSync(nodePath.join(os.tmpdir(), 'ingress-sidecar-hostile-'));
  });
  after(() => {
    if (nginxRoot) rmSync(nginxRoot, { recursive: true, force: true });
  });

  it(`covers ${FIELDS.length} fields; nginx -t ${NGINX ? `with ${NGINX}` : 'skipped: no nginx binary found'}`, () => {
    strictEqual(new Set(FIELDS.map((f) => f.name)).size, FIELDS.length);
  });

  it('the known-good scenario passes every check (and nginx -t)', () => {
    const { problems, files, certificates } = runCase({ name: 'none', set: () => undefined }, '');
    expectNone(problems);
    deepStrictEqual(files ? nginxProblem(files, certificates) : 'no files', null);
  });

  describe('fixed payloads (each also through nginx -t)', () => {
    FIXED.forEach((v, i) => {
      it(`#${i} ${show(v)}`, () => {
        expectNone(checkPayload(v, true));
      });
    });
  });

  describe(`seeded random strings: HOSTILE_SEED=${SEED} (0x${SEED.toString(16)}), ${RANDOM_CASES} cases, the first ${RANDOM_NGINX_SAMPLE} also through nginx -t`, function () {
    // The first group runs nginx -t once per field for each of its cases: ~40 s on 2 idle cores,
    // over 60 s when the machine is busy.
    this.timeout(180_000);
    for (let from = 0; from < RANDOM.length; from += RANDOM_GROUP) {
      const to = Math.min(from + RANDOM_GROUP, RANDOM.length);
      it(`seed ${SEED}: cases ${from}-${to - 1}`, () => {
        const problems: string[] = [];
        for (let i = from; i < to; i++) {
          const v = RANDOM[i]!;
          for (const p of checkPayload(v, i < RANDOM_NGINX_SAMPLE)) problems.push(`case ${i} ${show(v)} ${p}`);
        }
        expectNone(problems);
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Snippets (--allow-snippet-annotations): an admitted snippet is configuration by design, so the
// check is different: what nginx reads is exactly what the parser admitted, in the place it was
// admitted to, and nothing else of the file changes.

describe('hostile input: snippet annotations with --allow-snippet-annotations', function () {
  this.timeout(60_000);
  const SNIPPET_OPTS: TranslateOptions = { ...OPTS, allowSnippets: true };
  const snippetShape = (d: { name: string; args: string[]; block: unknown[] | null }): Shape =>
    d.block
      ? [d.name, ...d.args.map(asWritten), (d.block as Array<typeof d>).map(snippetShape)]
      : [d.name, ...d.args.map(asWritten)];
  /** The same model without snippets: the rest of what nginx reads must not change. */
  const withoutSnippets = (m: RoutingModel): RoutingModel => {
    const strip = (x: Server): Server => ({
      ...x,
      snippets: [],
      locations: x.locations.map((l) => ({ ...l, settings: { ...l.settings, snippet: null } })),
    });
    return { ...m, defaultServer: strip(m.defaultServer), servers: m.servers.map(strip) };
  };
  const templates = (v: string) => [
    v,
    `add_header X-A ${v};`,
    `add_header X-A "${v}";`,
    `set $a '${v}'; return 200 $a;`,
    `if ($http_x) { ${v} }`,
  ];

  function check(annotation: string, text: string, withNginx: boolean): string[] {
    const { good, s } = scenario();
    annotate(s, { [annotation]: text });
    const snap = snapshot({
      ingresses: [s.hostile, good],
      ingressClasses: s.classes,
      services: s.services,
      endpointSlices: s.slices,
      endpoints: s.endpoints,
      secrets: s.secrets,
    });
    let m: RoutingModel;
    try {
      m = translate(snap, SNIPPET_OPTS);
    } catch (err) {
      return [`translate() threw ${String(err).slice(0, 300)}`];
    }
    const out: string[] = [];
    if (!m.served.includes(GOOD)) out.push(`${GOOD} is no longer served`);
    const key = ingressKey(s.hostile);
    const rejected = m.rejections.filter((r) => r.ingress === key && r.severity === 'rejected');
    if (rejected.some((r) => !r.reason.includes(annotation)))
      out.push(`rejected for another reason: ${json(rejected)}`);
    if (rejected.length > 0) return out;
    const server = m.servers.find((x) => x.host === 'hostile.test');
    if (!server) return [...out, 'the hostile Ingress is neither rejected nor served'];
    const files = renderModel(m);
    const plain = renderModel(withoutSnippets(m));
    const tree = parseNginx(files.get(server.file)!);
    const plainTree = parseNginx(plain.get(server.file)!);
    // The server block: the plain one, with the server snippets right before the first location,
    // and each location's snippet after its proxy_pass (before a `return 503`).
    const got = tree.map(shape);
    const want = plainTree.map(shape);
    const block = want.at(-1)!.at(-1) as Shape[];
    const firstLocation = block.findIndex((d) => d[0] === 'location');
    block.splice(firstLocation, 0, ...server.snippets.flatMap((x) => x.directives.map(snippetShape)));
    const locations = block.filter((d) => d[0] === 'location').slice(0, server.locations.length);
    server.locations.forEach((l, i) => {
      if (!l.settings.snippet) return;
      const body = locations[i]!.at(-1) as Shape[];
      const at =
        body.length > 0 && body.at(-1)![0] === 'return' && l.action.kind !== 'proxy' ? body.length - 1 : body.length;
      body.splice(at, 0, ...l.settings.snippet.map(snippetShape));
    });
    out.push(...compareList(`${server.file} as nginx reads it`, want, got));
    for (const name of files.keys())
      if (name !== server.file && files.get(name) !== plain.get(name)) out.push(`${name} changed with the snippet`);
    if (withNginx) {
      const problem = nginxProblem(files, m.certificates);
      // nginx may refuse a directive it does not know or a value it does not take: the sidecar then sets the Ingress aside.
      if (
        problem &&
        !/unknown directive|invalid|not allowed|duplicate|is not terminated|unknown .* variable|directive is not allowed here|too many|number of arguments/.test(
          problem,
        )
      )
        out.push(problem);
    }
    return out;
  }

  before(() => {
    nginxRoot ||= mkdtempSync(nodePath.join(os.tmpdir(), 'ingress-sidecar-hostile-'));
  });

  for (const annotation of [ann.CONFIGURATION_SNIPPET, ann.SERVER_SNIPPET]) {
    it(`${annotation}: every fixed payload, raw and inside directives, reads back exactly as admitted`, () => {
      const problems: string[] = [];
      for (const v of FIXED)
        for (const t of templates(v)) for (const p of check(annotation, t, false)) problems.push(`${show(t)} ${p}`);
      expectNone(problems);
    });
    it(`${annotation}: the admitted ones pass nginx -t or fail only as nginx refuses a directive`, () => {
      const problems: string[] = [];
      for (const v of FIXED.slice(0, 40))
        for (const p of check(annotation, `add_header X-A "${v}";`, true)) problems.push(`${show(v)} ${p}`);
      expectNone(problems);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Not strings at all: YAML and JSON manifests read by the directory source are not type-checked
// (no API server in front), so a number, list or object can sit where a string belongs.

describe('hostile input: values of the wrong type in manifests', () => {
  const cases: Array<[string, (s: Scenario) => void]> = [
    ['host is a number', (s) => void ((s.hostile.spec!.rules![0] as { host: unknown }).host = 123)],
    ['host is a list', (s) => void ((s.hostile.spec!.rules![0] as { host: unknown }).host = ['a.test'])],
    ['path is a number', (s) => void ((hostilePath(s) as { path: unknown }).path = 5)],
    ['path is null', (s) => void ((hostilePath(s) as { path: unknown }).path = null)],
    ['pathType is a list', (s) => void ((hostilePath(s) as { pathType: unknown }).pathType = ['Prefix'])],
    ['Service name is a number', (s) => void ((hostilePath(s).backend.service as { name: unknown }).name = 42)],
    [
      'Service port name is a list',
      (s) => void (hostilePath(s).backend.service!.port = { name: ['http'] as unknown as string }),
    ],
    [
      'Service port number is a string',
      (s) => void (hostilePath(s).backend.service!.port = { number: '80' as unknown as number }),
    ],
    ['spec.rules is an object', (s) => void ((s.hostile.spec as { rules: unknown }).rules = { host: 'a.test' })],
    ['http.paths is a string', (s) => void ((s.hostile.spec!.rules![0]!.http as { paths: unknown }).paths = '/')],
    ['rules has a null entry', (s) => void ((s.hostile.spec as { rules: unknown }).rules = [null])],
    ['annotations is a string', (s) => void ((s.hostile.metadata as { annotations: unknown }).annotations = 'x')],
    ['Service spec.ports is an object', (s) => void ((evilService(s).spec as { ports: unknown }).ports = { port: 80 })],
    [
      'Service port number is an object',
      (s) => void ((evilService(s).spec!.ports![0] as { port: unknown }).port = { a: 1 }),
    ],
    [
      'EndpointSlice endpoints is an object',
      (s) => void ((evilSlice(s) as { endpoints: unknown }).endpoints = { addresses: ['10.0.0.2'] }),
    ],
    [
      'EndpointSlice endpoints has a null entry',
      (s) => void ((evilSlice(s) as { endpoints: unknown }).endpoints = [null]),
    ],
    [
      'EndpointSlice addresses is a string',
      (s) => void ((evilSlice(s).endpoints![0]! as { addresses: unknown }).addresses = '10.0.0.2'),
    ],
    ['EndpointSlice ports has a null entry', (s) => void ((evilSlice(s) as { ports: unknown }).ports = [null])],
    [
      'Endpoints address is null',
      (s) => {
        s.slices = [s.slices[0]!];
        const ep = endpoints('evil-web', { name: 'http', port: 8080 }, ['10.0.0.2']);
        (ep.subsets![0] as { addresses: unknown }).addresses = [null];
        s.endpoints = [ep];
      },
    ],
  ];
  for (const [what, set] of cases) {
    it(`${what}: translate() does not throw and the good Ingress is still served`, () => {
      expectNone(runCase({ name: what, set: (s) => set(s) }, '').problems);
    });
  }
});
