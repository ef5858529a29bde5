// Property: translate never throws on a well-typed-but-odd snapshot, and renderModel never throws
// on what translate returns. The objects are the ones a source hands over: kinds and names as the
// API (or the directory source) guarantees them, and anything at all in every other field, as a
// tenant can write it and as the deserializers pass it through (numbers, arrays, null, objects,
// long strings, unicode, invalid dates). Each case starts from a snapshot that serves (Ingresses
// with rules, TLS, default backends and implemented annotations; Services, EndpointSlices,
// Endpoints, Secrets, IngressClasses) and replaces a few random fields, at any depth, with odd
// values. A fixed seed keeps it reproducible: ROBUST_SEED=<n> and ROBUST_CASES=<n> try others.
import assert from 'node:assert/strict';
import type { KubernetesObject, V1Ingress } from '@kubernetes/client-node';
import { SUPPORTED_ANNOTATIONS, ANNOTATION_PREFIX } from '../../../src/annotations/index.ts';
import { renderModel } from '../../../src/nginx/render.ts';
import type { Snapshot } from '../../../src/sources/snapshot.ts';
import { translate, type TranslateOptions } from '../../../src/translate/index.ts';
import {
  backendService,
  ingress,
  ingressClass,
  path as pathSpec,
  rule,
  service,
  snapshot,
} from '../../helpers/builders.ts';
import { makeCert, tlsSecret } from '../../helpers/certs.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const SEED = Number(process.env.ROBUST_SEED ?? 0x0dd0b1ec) >>> 0;
const CASES = Number(process.env.ROBUST_CASES ?? 4000);

const prng = mulberry32;

type Rand = ReturnType<typeof prng>;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Strings that mean something to some field: hosts, paths, ports, addresses, durations, regexes. */
const MEANINGFUL = [
  '',
  ' ',
  'true',
  'false',
  '0',
  '1',
  '100',
  '-1',
  '65536',
  '80',
  'http',
  'https',
  'HTTP',
  'GRPC',
  'cookie',
  'balanced',
  '10s',
  '1m',
  '5',
  '1k',
  '4k',
  '10.0.0.1',
  '::1',
  '1:2:3:4:5:6:7::',
  '169.254.169.254',
  '0xa9fea9fe',
  'a.test',
  '*.a.test',
  'A.TEST',
  '/',
  '/a',
  '/a/(.*)',
  '[\\d-z]',
  '(',
  '$host',
  '$1',
  '; }',
  '{',
  '"',
  "'",
  '\\',
  '#',
  'http://a.test/x',
  'https://b.test',
  'web',
  'nginx',
  'Exact',
  'Prefix',
  'ImplementationSpecific',
  'ExternalName',
  'None',
  'IPv4',
  'IPv6',
  'FQDN',
  'kubernetes.io/tls',
  'x-a: b',
  'GET, POST',
  'default/web',
  'default/tls',
  'web:80',
  '\u0000',
  '\n',
  '\r\n',
  '\u2028',
  'ü',
  '🦄',
  '\uD800',
  '\u202e',
  'ｈｏｓｔ',
  '0'.repeat(5000),
  'a'.repeat(70000),
];

function oddValue(r: Rand, depth = 0): unknown {
  const k = r();
  if (k < 0.22) return pick(r, MEANINGFUL);
  if (k < 0.3) {
    let s = '';
    const n = Math.floor(r() * 20);
    for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(r() * (r() < 0.8 ? 128 : 0x10000)));
    return s;
  }
  if (k < 0.5) return pick(r, [0, -1, 1, 1.5, 80, 443, 65535, 65536, 2 ** 31, 2 ** 53, -0, NaN, Infinity, -Infinity]);
  if (k < 0.6) return pick(r, [null, undefined, true, false]);
  if (k < 0.65) return pick(r, [new Date(NaN), new Date(0), new Date(8.64e15)]);
  if (k < 0.82 && depth < 3) {
    const n = Math.floor(r() * 4);
    return Array.from({ length: n }, () => oddValue(r, depth + 1));
  }
  if (depth < 3) {
    const o: Record<string, unknown> = {};
    const n = Math.floor(r() * 4);
    // Own properties, as JSON.parse and js-yaml make them: `__proto__` is a key, not a prototype.
    const keys = [
      'name',
      'port',
      'number',
      'host',
      'path',
      'ip',
      'service',
      'x',
      '__proto__',
      'constructor',
      'toString',
      'valueOf',
      'length',
    ];
    for (let i = 0; i < n; i++)
      Object.defineProperty(o, pick(r, keys), {
        value: oddValue(r, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return o;
  }
  return {};
}

const ANNOTATIONS = [...SUPPORTED_ANNOTATIONS];

/** Annotation values: mostly strings a user might write, sometimes anything. */
function annotations(r: Rand): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const name = pick(r, ANNOTATIONS);
    // Most annotations are switches: "true" often, so that what they turn on is exercised.
    const k = r();
    out[name.includes('/') ? name : ANNOTATION_PREFIX + name] =
      k < 0.35 ? 'true' : k < 0.85 ? pick(r, MEANINGFUL) : oddValue(r);
  }
  return out;
}

const CERT = makeCert({ dns: ['a.test', '*.a.test'] });
const DEFAULT_CERT = makeCert({ cn: 'robust default' });

/** A snapshot that serves, with something of every kind translate reads. */
function base(r: Rand): Snapshot {
  const ings: V1Ingress[] = [];
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    ings.push(
      ingress(
        `ing${i}`,
        [
          rule(
            pick(r, ['a.test', 'b.test', '*.a.test', undefined]),
            pathSpec('/', 'Prefix', 'web', pick(r, [80, 'http'])),
            pathSpec(
              pick(r, ['/a', '/b/(.*)', '/c']),
              pick(r, ['Exact', 'Prefix', 'ImplementationSpecific'] as const),
              'api',
            ),
          ),
          rule('b.test', pathSpec('/x', 'Prefix', 'web')),
        ],
        {
          namespace: pick(r, ['default', 'default', 'other']),
          age: i,
          annotations: annotations(r) as Record<string, string>,
          ...(r() < 0.3 ? { defaultBackend: { service: 'web', port: 80 } } : {}),
          ...(r() < 0.5 ? { tls: [{ hosts: ['a.test'], secretName: 'tls' }] } : {}),
        },
      ),
    );
  }
  const web = backendService('web');
  const api = backendService('api', '10.0.0.2');
  // The same Services in the other namespace: an object in its own namespace, as objects in theirs.
  const other = ['web', 'api'].map((name) => {
    const b = backendService(name, '10.0.1.1');
    b.service.metadata!.namespace = 'other';
    b.slice.metadata!.namespace = 'other';
    return b;
  });
  const ext = service('ext', [{ port: 80 }], { type: 'ExternalName' });
  (ext.spec as Record<string, unknown>)['externalName'] = 'ext.test';
  (web.service.spec as Record<string, unknown>)['clusterIP'] = '10.96.0.10';
  return snapshot({
    ingresses: ings,
    backends: [web, api, ...other],
    services: [ext],
    endpoints: [
      {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'old', namespace: 'default' },
        subsets: [{ addresses: [{ ip: '10.0.0.3' }], ports: [{ name: 'http', port: 8080 }] }],
      },
    ],
    secrets: [
      tlsSecret('tls', CERT.crt, CERT.key),
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'auth', namespace: 'default' },
        data: { auth: Buffer.from('u:$apr1$x$y\n').toString('base64') },
      },
    ],
    ingressClasses: [ingressClass('nginx', r() < 0.5)],
  });
}

/** Every place in `obj` a value can be replaced: [parent, key] pairs, names and namespaces aside. */
function slots(
  obj: unknown,
  out: Array<[Record<string, unknown> | unknown[], string | number]> = [],
  where: 'top' | 'metadata' | 'other' = 'top',
): typeof out {
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => {
      out.push([obj, i]);
      slots(v, out, 'other');
    });
  } else if (obj !== null && typeof obj === 'object' && !(obj instanceof Date)) {
    for (const [k, v] of Object.entries(obj)) {
      // The sources guarantee an object's kind, a metadata object, and its name and namespace as
      // non-empty strings: those get odd strings instead (see mutate).
      const guaranteed =
        where === 'top' ? ['apiVersion', 'kind', 'metadata'] : where === 'metadata' ? ['name', 'namespace'] : [];
      if (!guaranteed.includes(k)) out.push([obj as Record<string, unknown>, k]);
      slots(v, out, where === 'top' && k === 'metadata' ? 'metadata' : 'other');
    }
  }
  return out;
}

/** Replaces a few fields of a few objects with odd values. */
function mutate(r: Rand, snap: Snapshot): void {
  const objects: KubernetesObject[] = Object.values(snap).flat();
  const times = 1 + Math.floor(r() * 3);
  for (let t = 0; t < times; t++) {
    const obj = pick(r, objects);
    if (r() < 0.1) {
      obj.metadata![pick(r, ['name', 'namespace'] as const)] = String(pick(r, MEANINGFUL)) || 'x';
      continue;
    }
    const all = slots(obj);
    if (all.length === 0) continue;
    const [parent, key] = pick(r, all);
    if (r() < 0.1 && !Array.isArray(parent)) delete parent[key as string];
    else (parent as Record<string | number, unknown>)[key] = oddValue(r);
  }
}

function options(r: Rand): TranslateOptions {
  const opts: TranslateOptions = { ingressClass: 'nginx', httpPort: 8080, ipv6: r() < 0.5 };
  if (r() < 0.5) {
    opts.tls = {
      httpsPort: 8443,
      certDir: '/robust-certs',
      defaultCertificate: { pem: DEFAULT_CERT.pem },
      ...(r() < 0.3 ? { defaultSslCertificate: 'default/tls' } : {}),
    };
    opts.now = new Date();
  } else {
    // A second draw, not the first one again.
    if (r() < 0.5) opts.privateDir = '/robust-private';
  }
  if (r() < 0.4) opts.allowSnippets = true;
  if (r() < 0.3) opts.watchIngressWithoutClass = true;
  if (r() < 0.3) opts.nginxVersion = pick(r, ['1.22.1', '1.30.4']);
  if (opts.nginxVersion === '1.30.4' && r() < 0.5)
    opts.dynamicEndpoints = { resolver: '127.0.0.1:10053', unavailablePort: 10503 };
  if (r() < 0.1) opts.accessLog = '/var/log/robust.json';
  return opts;
}

/** translate, then renderModel: the error and where, or how many Ingresses are served. */
function tryOne(snap: Snapshot, opts: TranslateOptions): string | { served: number } {
  let model;
  try {
    model = translate(snap, opts);
  } catch (err) {
    return `translate threw ${explain(err)}`;
  }
  assert.ok(Array.isArray(model.servers) && Array.isArray(model.rejections), 'translate returns a model');
  try {
    const files = renderModel(model);
    for (const [name, text] of files) assert.equal(typeof text, 'string', name);
  } catch (err) {
    return `renderModel threw ${explain(err)}`;
  }
  return { served: model.served.length };
}

function explain(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const at = (err.stack ?? '').split('\n').find((l) => l.includes('/src/')) ?? '';
  return `${err.name}: ${err.message.slice(0, 200)} ${at.trim()}`;
}

describe('translate on odd objects (property)', function () {
  this.timeout(120_000);

  it(`never throws, and neither does renderModel on what it returns (seed ${SEED}, ${CASES} cases)`, () => {
    const r = prng(SEED);
    const failures = new Map<string, number[]>();
    let serving = 0;
    for (let i = 0; i < CASES; i++) {
      const snap = base(r);
      mutate(r, snap);
      const outcome = tryOne(snap, options(r));
      if (typeof outcome === 'string') failures.set(outcome, [...(failures.get(outcome) ?? []), i]);
      else if (outcome.served > 0) serving++;
    }
    // The cases are worth something only if many still serve (odd fields reach the model; an
    // invalid annotation value closes its Ingress, which then does not count).
    assert.ok(serving > CASES / 5, `only ${serving} of ${CASES} cases serve anything`);
    assert.deepEqual(
      [...failures].map(([p, cases]) => `${p} (${cases.length} cases, first #${cases[0]})`),
      [],
    );
  });

  it('service-upstream on a Service whose clusterIP is not a string: its endpoints are used, and that is said', () => {
    for (const clusterIP of [42, ['10.96.0.10'], { ip: '10.96.0.10' }, null, true]) {
      const web = backendService('web');
      (web.service.spec as Record<string, unknown>)['clusterIP'] = clusterIP;
      const snap = snapshot({
        ingresses: [
          ingress('ing', [rule('a.test', pathSpec('/', 'Prefix', 'web'))], {
            annotations: { [`${ANNOTATION_PREFIX}service-upstream`]: 'true' },
          }),
        ],
        backends: [web],
      });
      const model = translate(snap, { ingressClass: 'nginx', httpPort: 8080, ipv6: false });
      assert.deepEqual(model.served, ['default/ing'], JSON.stringify(clusterIP));
      assert.deepEqual(
        model.upstreams.map((u) => u.servers.map((s) => s.address)),
        [['10.0.0.1:8080']],
      );
      assert.deepEqual(
        model.rejections.map((x) => x.reason),
        ['service-upstream: Service default/web has no cluster IP; its endpoints are used'],
      );
      assert.ok(renderModel(model).size > 0);
    }
  });

  it('an invalid annotation value with DEL in it: its Ingress answers 503 and the config renders, with the value escaped', () => {
    const snap = snapshot({
      ingresses: [
        ingress('ing', [rule('a.test', pathSpec('/', 'Prefix', 'web'))], {
          annotations: { [`${ANNOTATION_PREFIX}proxy-read-timeout`]: '5\u007f' },
        }),
      ],
      backends: [backendService('web')],
    });
    const model = translate(snap, { ingressClass: 'nginx', httpPort: 8080, ipv6: false });
    assert.match(
      model.rejections[0]!.reason,
      /^not served: annotation nginx\.ingress\.kubernetes\.io\/proxy-read-timeout: "5\u007f" /,
    );
    const server = [...renderModel(model)].find(([name]) => name.includes('a.test'))![1];
    assert.match(server, /# unavailable: .*5\\\\u007f/);
    assert.match(server, /return 503;/);
  });

  it('objects with fields no source should hand over but a manifest can: each is reported or ignored, the rest served', () => {
    const good = ingress('good', [rule('b.test', pathSpec('/', 'Prefix', 'web'))], { age: 1 });
    // An EndpointSlice whose service-name label is an object that cannot be printed.
    const web = backendService('web');
    const odd = backendService('api', '10.0.0.2');
    (odd.slice.metadata!.labels as Record<string, unknown>)['kubernetes.io/service-name'] = { toString: 1 };
    // An Ingress whose creationTimestamp is such an object: it counts as the newest.
    const newest = ingress('newest', [rule('a.test', pathSpec('/', 'Prefix', 'web'))], {
      tls: [{ hosts: ['a.test'], secretName: 'odd' }],
    });
    (newest.metadata as Record<string, unknown>)['creationTimestamp'] = { toString: 1 };
    const snap = snapshot({
      ingresses: [good, newest],
      backends: [web, odd],
      // A Secret whose type is such an object: not a TLS Secret, and said so.
      secrets: [
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'odd', namespace: 'default' },
          type: { toString: 1 } as unknown as string,
        },
      ],
    });
    const cert = makeCert({ cn: 'robust' });
    const model = translate(snap, {
      ingressClass: 'nginx',
      httpPort: 8080,
      ipv6: false,
      now: new Date(),
      tls: { httpsPort: 8443, certDir: '/robust-certs', defaultCertificate: { pem: cert.pem } },
    });
    assert.deepEqual(model.served, ['default/good', 'default/newest']);
    assert.ok(
      model.rejections.some(
        (x) =>
          x.ingress === 'default/newest' &&
          /Secret default\/odd.*its type is a object, not kubernetes\.io\/tls/.test(x.reason),
      ),
      JSON.stringify(model.rejections),
    );
    assert.ok(renderModel(model).size > 0);
  });
});
