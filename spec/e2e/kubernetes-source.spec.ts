// The Kubernetes source against a real kube-apiserver (v1.20, with etcd, on loopback): objects
// are applied with kubectl as an administrator, and the source reads them as the sidecar would.
// Then the whole sidecar on top of it: a real nginx, a backend in a network namespace (Endpoints
// may not point at loopback), routes followed through nginx.
//
// The server runs no controllers: Endpoints are written by hand, like every other object.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig, type KubernetesObject, type V1APIGroupList, type V1Secret } from '@kubernetes/client-node';
import { execa } from 'execa';
import type { EchoReply } from '../../src/dev/echo.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Sidecar } from '../../src/sync/sidecar.ts';
import type { Snapshot } from '../../src/sources/snapshot.ts';
import { KubernetesSource, type KubernetesSourceOptions } from '../../src/sources/kubernetes.ts';
import { loadKubeConfig } from '../../src/sources/kube-credentials.ts';
import { endpointsKind } from '../../src/sources/kube-resources.ts';
import { backoffDelay, RETRY } from '../../src/sources/resource-watch.ts';
import { startApiServer, applyManifests } from '../helpers/apiserver.ts';
import { startNetnsBackend } from '../helpers/netns.ts';
import { freePort, httpGet, nginxBinary, startNginx, type RunningNginx } from '../helpers/nginx.ts';

type ApiServer = Awaited<ReturnType<typeof startApiServer>>;

/** Restarts in the tests are retried quickly; the production ceiling is 30 s. */
const FAST_RETRY = { initialMs: 200, maxMs: 1000 };

/** Polls `check` until it returns true (or throws a last time); the failure says what was awaited. */
async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(50);
  }
}

function names(objs: KubernetesObject[], namespace?: string): string[] {
  return objs
    .filter((o) => namespace === undefined || o.metadata?.namespace === namespace)
    .map((o) => o.metadata?.name ?? '');
}

/** An Ingress routing `host` / to port `port` of `service`; className null names no class. */
function ingressYaml(
  namespace: string,
  name: string,
  host: string,
  service: string,
  port = 80,
  className: string | null = 'nginx',
): string {
  return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, namespace: ${namespace}}
spec:
${className !== null ? `  ingressClassName: ${className}\n` : ''}  rules:
  - host: ${host}
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: ${service}, port: {number: ${port}}}}}]
`;
}

function serviceYaml(namespace: string, name: string, targetPort = 8080): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  ports: [{name: http, port: 80, targetPort: ${targetPort}}]
`;
}

function endpointsYaml(namespace: string, name: string, ip: string, port: number): string {
  return `apiVersion: v1
kind: Endpoints
metadata: {name: ${name}, namespace: ${namespace}}
subsets: [{addresses: [{ip: "${ip}"}], ports: [{name: http, port: ${port}}]}]
`;
}

function secretYaml(namespace: string, name: string, type: string): string {
  // Any bytes do for kubernetes.io/tls: the API server checks that both keys exist, not their content.
  const data = type === 'kubernetes.io/tls' ? '{tls.crt: Y2VydA==, tls.key: a2V5}' : '{password: aHVudGVyMg==}';
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: ${namespace}}
type: ${type}
data: ${data}
`;
}

function reachable(url: URL): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A TCP relay in front of the API server that can be cut (every connection dropped, new ones refused) and healed. */
async function startRelay(target: URL): Promise<{ url: string; cut(): void; heal(): void; close(): Promise<void> }> {
  let open = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', done);
      s.on('close', done);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    heal() {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('KubernetesSource: pure parts', () => {
  const groups = (versions: string[] | null): V1APIGroupList => ({
    groups: [
      { name: 'apps', versions: [{ groupVersion: 'apps/v1', version: 'v1' }] },
      ...(versions
        ? [
            {
              name: 'discovery.k8s.io',
              versions: versions.map((v) => ({ groupVersion: `discovery.k8s.io/${v}`, version: v })),
            },
          ]
        : []),
    ],
  });

  it('reads EndpointSlices where discovery.k8s.io/v1 is served, else core/v1 Endpoints', () => {
    assert.equal(endpointsKind(groups(['v1', 'v1beta1'])), 'EndpointSlice');
    assert.equal(endpointsKind(groups(['v1'])), 'EndpointSlice');
    // Kubernetes 1.20 (the test server) serves only v1beta1, whose shape we do not read.
    assert.equal(endpointsKind(groups(['v1beta1'])), 'Endpoints');
    assert.equal(endpointsKind(groups(null)), 'Endpoints');
  });

  it('backs off from 500 ms doubling to 5 s, jittered by 20%', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, 0.5)),
      [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000, 5000],
    );
    assert.equal(backoffDelay(0, 0), 400);
    assert.equal(backoffDelay(0, 0.9999), 600);
    assert.equal(backoffDelay(10, 0), 4_000);
    assert.equal(backoffDelay(1000, 0.5), RETRY.maxMs);
    assert.equal(backoffDelay(3, 0.5, { initialMs: 200, maxMs: 1000 }), 1000);
  });

  describe('credentials', () => {
    let dir: string;
    const kubeconfig = (server: string) => `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'kube-credentials-'));
      await mkdir(path.join(dir, 'sa'));
      await mkdir(path.join(dir, 'home', '.kube'), { recursive: true });
      await writeFile(path.join(dir, 'sa', 'token'), 'sa-token');
      await writeFile(path.join(dir, 'flag.yaml'), kubeconfig('https://flag.test:6443'));
      await writeFile(path.join(dir, 'env.yaml'), kubeconfig('https://env.test:6443'));
      await writeFile(path.join(dir, 'home', '.kube', 'config'), kubeconfig('https://home.test:6443'));
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    const server = (opts: Parameters<typeof loadKubeConfig>[0]) =>
      loadKubeConfig(opts).kubeConfig.getCurrentCluster()?.server;

    it('takes --kubeconfig first, then in-cluster, then KUBECONFIG, then ~/.kube/config', () => {
      const sa = path.join(dir, 'sa');
      const env = {
        kubeconfigPath: path.join(dir, 'env.yaml'),
        home: path.join(dir, 'home'),
        serviceHost: '10.96.0.1',
        servicePort: '443',
      };
      assert.equal(
        server({ kubeconfig: path.join(dir, 'flag.yaml'), env, serviceAccountDir: sa }),
        'https://flag.test:6443',
      );
      const inCluster = loadKubeConfig({ env, serviceAccountDir: sa });
      assert.equal(inCluster.from, 'the in-cluster service account');
      assert.equal(inCluster.kubeConfig.getCurrentCluster()?.server, 'https://10.96.0.1:443');
      assert.equal(inCluster.kubeConfig.getCurrentCluster()?.caFile, path.join(sa, 'ca.crt'));
      assert.equal(server({ env: { ...env, serviceHost: 'fd00::1' }, serviceAccountDir: sa }), 'https://[fd00::1]:443');
      // No token (not in a pod), or no service host: the kubeconfig files.
      assert.equal(server({ env, serviceAccountDir: path.join(dir, 'nowhere') }), 'https://env.test:6443');
      assert.equal(server({ env: { ...env, serviceHost: undefined }, serviceAccountDir: sa }), 'https://env.test:6443');
      assert.equal(server({ env: { home: env.home }, serviceAccountDir: sa }), 'https://home.test:6443');
    });

    it('merges the files KUBECONFIG names, the first one deciding the context', async () => {
      await writeFile(
        path.join(dir, 'second.yaml'),
        kubeconfig('https://second.test:6443')
          .replace(/name: c\b/, 'name: c2')
          .replace('cluster: c,', 'cluster: c2,')
          .replace(/name: x\b/, 'name: x2')
          .replace(/name: u\b/, 'name: u2')
          .replace('user: u}', 'user: u2}')
          .replace('current-context: x', 'current-context: x2'),
      );
      const kc = loadKubeConfig({
        env: { kubeconfigPath: [path.join(dir, 'env.yaml'), path.join(dir, 'second.yaml')].join(path.delimiter) },
      }).kubeConfig;
      assert.equal(kc.getCurrentCluster()?.server, 'https://env.test:6443');
      assert.deepEqual(
        kc.getContexts().map((c) => c.name),
        ['x', 'x2'],
      );
    });

    it('refuses to guess when there are no credentials at all', () => {
      assert.throws(
        () =>
          loadKubeConfig({ env: { home: path.join(dir, 'empty-home') }, serviceAccountDir: path.join(dir, 'nowhere') }),
        /no Kubernetes credentials: give --kubeconfig FILE, run in a pod with a service account token, set KUBECONFIG/,
      );
      assert.throws(() => loadKubeConfig({ kubeconfig: path.join(dir, 'missing.yaml') }), /ENOENT/);
    });
  });

  it('waits for an API server that does not answer, one error line for the outage, and stops cleanly', async function () {
    this.timeout(10_000);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kube-down-'));
    try {
      const port = await freePort();
      await writeFile(
        path.join(dir, 'kubeconfig'),
        `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
      );
      const { logger, entries } = createMemoryLogger();
      let errors = 0;
      const source = new KubernetesSource({
        kubeconfig: path.join(dir, 'kubeconfig'),
        logger,
        retry: { initialMs: 50, maxMs: 100 },
        onError: () => errors++,
      });
      let settled: string | undefined;
      const started = source
        .start(() => {})
        .then(
          () => (settled = 'resolved'),
          (err: Error) => (settled = `rejected: ${err.message}`),
        );
      await sleep(1500);
      assert.equal(settled, undefined, 'start() waits for the first full read');
      assert.ok(errors >= 5, `every attempt is counted (onError), got ${errors}`);
      const lines = entries.filter((e) => e.level === 'error');
      assert.equal(lines.length, 1, 'one error line for the whole outage');
      assert.equal(lines[0]!.message, 'Kubernetes API: discovery failed; retrying with backoff');
      assert.match(String(lines[0]!.error), /ECONNREFUSED/);
      await source.stop();
      await started;
      assert.equal(settled, 'rejected: the Kubernetes source was stopped before its first full read');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('KubernetesSource against a real kube-apiserver', function () {
  this.timeout(120_000);
  let api: ApiServer;
  let work: string;
  const sources: KubernetesSource[] = [];

  const kubectl = async (args: string[], input?: string) => {
    const r = await execa('kubectl', ['--kubeconfig', api.adminKubeconfig, ...args], {
      ...(input !== undefined ? { input } : {}),
      reject: false,
    });
    if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const apply = (yaml: string) => kubectl(['apply', '-f', '-'], yaml);

  /** A started source, stopped after the test; `changes` counts onChange calls. */
  async function startSource(opts: Partial<KubernetesSourceOptions> = {}) {
    const { logger, entries } = createMemoryLogger();
    const source = new KubernetesSource({ kubeconfig: api.adminKubeconfig, logger, retry: FAST_RETRY, ...opts });
    sources.push(source);
    const state = { changes: 0, source, logs: entries };
    await source.start(() => state.changes++);
    return state;
  }

  before(async function () {
    this.timeout(180_000);
    api = await startApiServer();
    work = await mkdtemp(path.join(os.tmpdir(), 'kube-source-spec-'));
  });
  after(async () => {
    await api?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.stop()));
  });

  it('as an identity the API refuses, waits with one error line per kind, and stops cleanly', async () => {
    // The ServiceAccount may read nothing until manifests/ is applied (by the e2e tests, below).
    const { logger, entries } = createMemoryLogger();
    const source = new KubernetesSource({
      kubeconfig: api.sidecarKubeconfig,
      logger,
      retry: { initialMs: 50, maxMs: 200 },
    });
    sources.push(source);
    let settled = false;
    const started = source
      .start(() => {})
      .then(
        () => (settled = true),
        () => (settled = true),
      );
    const refused = () => entries.filter((e) => e.level === 'error');
    // Six watches: Secrets are read by two, one per type (TLS and Opaque).
    await eventually('every watch reported the refusal', () => new Set(refused().map((e) => e.message)).size === 6);
    await sleep(600);
    assert.equal(settled, false, 'start() waits for a first full read');
    assert.equal(refused().length, 6, 'one line per watch, however many retries');
    assert.deepEqual(
      refused()
        .filter((e) => e.resource === 'Secret')
        .map((e) => e.message)
        .sort(),
      [
        'Kubernetes API: cannot list Opaque Secrets; retrying with backoff',
        'Kubernetes API: cannot list TLS Secrets; retrying with backoff',
      ],
    );
    for (const e of refused()) {
      assert.match(String(e.message), /^Kubernetes API: cannot list .+; retrying with backoff$/);
      assert.match(
        String(e.error),
        /^HTTP 403: .+ is forbidden: User "system:serviceaccount:ingress-sidecar:ingress-sidecar" cannot list resource/,
      );
    }
    await source.stop();
    await started;
  });

  it('starts with everything created before it, then sees adds, updates and deletes', async () => {
    const ns = 'first-read';
    await kubectl(['create', 'namespace', ns]);
    await apply(
      [
        serviceYaml(ns, 'web'),
        endpointsYaml(ns, 'web', '10.244.0.10', 8080),
        ingressYaml(ns, 'b-site', 'b.test', 'web'),
        ingressYaml(ns, 'a-site', 'a.test', 'web'),
        secretYaml(ns, 'site-tls', 'kubernetes.io/tls'),
        'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: first-read-class}\nspec: {controller: example.com/ingress-sidecar}\n',
      ].join('---\n'),
    );
    const t = await startSource();
    // start() resolved: the first full read is in, no waiting.
    const s = t.source.snapshot();
    assert.deepEqual(names(s.ingresses, ns), ['a-site', 'b-site'], 'sorted by namespace/name');
    assert.deepEqual(names(s.services, ns), ['web']);
    assert.deepEqual(names(s.endpoints, ns), ['web']);
    assert.deepEqual(names(s.secrets, ns), ['site-tls']);
    assert.ok(names(s.ingressClasses).includes('first-read-class'));
    assert.equal(t.changes, 0, 'no onChange for the first read');
    const listed = s.ingresses.find((i) => i.metadata?.name === 'a-site')!;
    assert.equal(listed.kind, 'Ingress');
    assert.equal(listed.apiVersion, 'networking.k8s.io/v1');
    assert.ok(listed.metadata?.creationTimestamp instanceof Date, 'typed like the generated clients return them');
    const sorted = (xs: KubernetesObject[]) => xs.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`);
    for (const field of Object.keys(s) as Array<keyof Snapshot>) {
      const keys = sorted(s[field]);
      assert.deepEqual(keys, [...keys].sort(), `${field} sorted`);
    }
    // Fresh arrays: a caller may sort or filter its copy.
    assert.notEqual(t.source.snapshot().ingresses, s.ingresses);

    await apply(ingressYaml(ns, 'a-site', 'a2.test', 'web'));
    await eventually('the update is seen', () =>
      t.source.snapshot().ingresses.some((i) => i.spec?.rules?.[0]?.host === 'a2.test'),
    );
    assert.ok(t.changes >= 1);
    const watched = t.source.snapshot().ingresses.find((i) => i.metadata?.name === 'a-site')!;
    assert.ok(watched.metadata?.creationTimestamp instanceof Date, 'watched objects are typed like listed ones');
    assert.equal(watched.kind, 'Ingress');

    const before = t.changes;
    await apply(ingressYaml(ns, 'c-site', 'c.test', 'web'));
    await eventually('the add is seen', () => names(t.source.snapshot().ingresses, ns).includes('c-site'));
    assert.ok(t.changes > before);
    await kubectl(['-n', ns, 'delete', 'ingress', 'b-site']);
    await eventually('the delete is seen', () => !names(t.source.snapshot().ingresses, ns).includes('b-site'));
    assert.deepEqual(names(t.source.snapshot().ingresses, ns), ['a-site', 'c-site']);
    await kubectl(['delete', 'ingressclass', 'first-read-class']);
  });

  it('caches Secrets of type kubernetes.io/tls and Opaque only, without their managedFields and last-applied copy', async () => {
    const ns = 'secrets';
    await kubectl(['create', 'namespace', ns]);
    // Helm keeps every release in a Secret of its own type; service-account tokens and registry
    // credentials have theirs: none of them is the sidecar's business.
    const others = ['helm.sh/release.v1', 'example.com/other'];
    await apply(
      [
        secretYaml(ns, 'before-tls', 'kubernetes.io/tls'),
        secretYaml(ns, 'before-opaque', 'Opaque'),
        ...others.map((t, i) => secretYaml(ns, `before-other-${i}`, t)),
      ].join('---\n'),
    );
    const t = await startSource();
    assert.deepEqual(
      names(t.source.snapshot().secrets, ns),
      ['before-opaque', 'before-tls'],
      'one sorted list from both watches',
    );
    await apply(
      [
        secretYaml(ns, 'after-opaque', 'Opaque'),
        secretYaml(ns, 'after-tls', 'kubernetes.io/tls'),
        ...others.map((t, i) => secretYaml(ns, `after-other-${i}`, t)),
      ].join('---\n'),
    );
    await eventually('the new Secrets are seen', () => names(t.source.snapshot().secrets, ns).length === 4);
    assert.deepEqual(names(t.source.snapshot().secrets, ns), [
      'after-opaque',
      'after-tls',
      'before-opaque',
      'before-tls',
    ]);
    assert.ok(t.source.snapshot().secrets.every((s) => s.type === 'kubernetes.io/tls' || s.type === 'Opaque'));
    // Nor do other types leak into the cache through the watches.
    await apply(others.map((t, i) => secretYaml(ns, `later-other-${i}`, t)).join('---\n'));
    await sleep(300);
    assert.ok(!names(t.source.snapshot().secrets).some((n) => n.includes('-other-')));

    // kubectl apply keeps a copy of the whole Secret, data included, in an annotation: not cached,
    // from the list or from the watch; the data is.
    const slim = (name: string) => {
      const s = t.source.snapshot().secrets.find((x) => x.metadata?.namespace === ns && x.metadata?.name === name) as
        V1Secret | undefined;
      assert.ok(s, name);
      assert.equal(s.metadata?.managedFields, undefined, `${name}: managedFields`);
      assert.equal(
        s.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
        undefined,
        `${name}: last-applied`,
      );
      return s;
    };
    const stored = JSON.parse(await kubectl(['-n', ns, 'get', 'secret', 'before-opaque', '-o', 'json'])) as V1Secret;
    assert.ok(
      stored.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
      'the API server has the copy',
    );
    assert.deepEqual(slim('before-opaque').data, { password: 'aHVudGVyMg==' });
    slim('after-opaque');
    slim('before-tls');
    await apply(secretYaml(ns, 'before-opaque', 'Opaque').replace('aHVudGVyMg==', 'c2VjcmV0'));
    await eventually('the changed Opaque Secret is seen', () => slim('before-opaque').data?.password === 'c2VjcmV0');
    assert.equal(
      slim('before-opaque').metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
      undefined,
    );
  });

  it('with --namespace reads that namespace only, and IngressClasses cluster-wide', async () => {
    for (const ns of ['team-a', 'team-b']) {
      await kubectl(['create', 'namespace', ns]);
      await apply(
        [
          serviceYaml(ns, 'web'),
          ingressYaml(ns, 'site', `${ns}.test`, 'web'),
          secretYaml(ns, 'tls', 'kubernetes.io/tls'),
        ].join('---\n'),
      );
    }
    await apply(
      'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: scoped-class}\nspec: {controller: example.com/ingress-sidecar}\n',
    );
    const t = await startSource({ namespace: 'team-a' });
    const s = t.source.snapshot();
    for (const field of ['ingresses', 'services', 'secrets'] as const) {
      assert.deepEqual([...new Set(s[field].map((o) => o.metadata?.namespace))], ['team-a'], field);
    }
    assert.ok(names(s.ingressClasses).includes('scoped-class'));
    await apply(ingressYaml('team-b', 'other', 'other.test', 'web'));
    await apply(ingressYaml('team-a', 'mine', 'mine.test', 'web'));
    await eventually("the namespace's new Ingress is seen", () =>
      names(t.source.snapshot().ingresses).includes('mine'),
    );
    assert.deepEqual(names(t.source.snapshot().ingresses), ['mine', 'site']);
    await kubectl(['delete', 'ingressclass', 'scoped-class']);
  });

  it('reads core/v1 Endpoints on this server, which does not serve discovery.k8s.io/v1', async () => {
    const ns = 'endpoints';
    await kubectl(['create', 'namespace', ns]);
    await apply([serviceYaml(ns, 'web'), endpointsYaml(ns, 'web', '10.244.0.20', 8080)].join('---\n'));
    const t = await startSource();
    assert.equal(t.source.endpointsKind, 'Endpoints');
    const s = t.source.snapshot();
    assert.deepEqual(s.endpointSlices, []);
    assert.deepEqual(names(s.endpoints, ns), ['web']);
    assert.equal(
      s.endpoints.find((e) => e.metadata?.namespace === ns)?.subsets?.[0]?.addresses?.[0]?.ip,
      '10.244.0.20',
    );
    const line = t.logs.find((l) => l.message === 'read the objects from the Kubernetes API');
    assert.match(String(line?.endpointsFrom), /core\/v1 Endpoints/);

    // An annotation-only change (old control planes renew leader locks on Endpoints) is not a change...
    const before = t.changes;
    await kubectl(['-n', ns, 'annotate', 'endpoints', 'web', 'example.com/renewed=1']);
    await sleep(500);
    assert.equal(t.changes, before, 'no onChange for an Endpoints annotation');
    // ... a new address is.
    await apply(endpointsYaml(ns, 'web', '10.244.0.21', 8080));
    await eventually('the new address is seen', () =>
      t.source.snapshot().endpoints.some((e) => e.subsets?.[0]?.addresses?.[0]?.ip === '10.244.0.21'),
    );
    assert.ok(t.changes > before);
  });

  it('keeps its cache while the API server restarts, then applies later changes', async () => {
    const ns = 'restart';
    await kubectl(['create', 'namespace', ns]);
    await apply([serviceYaml(ns, 'web'), ingressYaml(ns, 'site', 'restart.test', 'web')].join('---\n'));
    const t = await startSource();
    const before = JSON.stringify(t.source.snapshot());

    const restarting = api.restart();
    // While the server is down (its port refuses connections), the snapshot is the one from before.
    let sawDown = false;
    for (let i = 0; i < 400 && !sawDown; i++) {
      sawDown = !(await reachable(new URL(api.url)));
      if (!sawDown) await sleep(10);
    }
    assert.ok(sawDown, 'the API server went down');
    await sleep(300);
    assert.equal(JSON.stringify(t.source.snapshot()), before, 'the cache is kept while the API server is down');
    await restarting;
    assert.deepEqual(names(t.source.snapshot().ingresses, ns), ['site']);

    await apply(ingressYaml(ns, 'site', 'restarted.test', 'web'));
    await apply(ingressYaml(ns, 'later', 'later.test', 'web'));
    await eventually(
      'changes after the restart are seen',
      () => {
        const ings = t.source.snapshot().ingresses.filter((i) => i.metadata?.namespace === ns);
        return ings.length === 2 && ings.some((i) => i.spec?.rules?.[0]?.host === 'restarted.test');
      },
      45_000,
    );
    // One error line per watch for the outage, however many retries it took (Secrets have two
    // watches, whose lines name them: "TLS Secrets", "Opaque Secrets").
    const errorLines = t.logs.filter((l) => l.level === 'error');
    const perWatch = new Map<string, number>();
    for (const l of errorLines) perWatch.set(String(l.message), (perWatch.get(String(l.message)) ?? 0) + 1);
    for (const [message, n] of perWatch) assert.equal(n, 1, `${message}: one error line per outage`);
  });

  it('notices what was deleted while the API was unreachable, once it answers again', async () => {
    const ns = 'outage';
    await kubectl(['create', 'namespace', ns]);
    await apply(
      [
        serviceYaml(ns, 'web'),
        serviceYaml(ns, 'gone'),
        ingressYaml(ns, 'kept', 'kept.test', 'web'),
        ingressYaml(ns, 'doomed', 'doomed.test', 'gone'),
      ].join('---\n'),
    );
    // The source talks to the API server through a relay the test can cut.
    const relay = await startRelay(new URL(api.url));
    try {
      const kc = new KubeConfig();
      kc.loadFromFile(api.adminKubeconfig);
      kc.clusters = kc.clusters.map((c) => ({ ...c, server: relay.url }));
      const file = path.join(work, 'relayed-kubeconfig');
      await writeFile(file, kc.exportConfig());
      const t = await startSource({ kubeconfig: file });
      assert.deepEqual(names(t.source.snapshot().ingresses, ns), ['doomed', 'kept']);

      relay.cut();
      await eventually(
        'every resource has reported the outage',
        () => new Set(t.logs.filter((l) => l.level === 'error').map((l) => l.resource)).size === 5,
      );
      // The API server restarts meanwhile, and objects are deleted and changed that the source cannot see.
      await api.restart();
      await kubectl(['-n', ns, 'delete', 'ingress', 'doomed']);
      await kubectl(['-n', ns, 'delete', 'service', 'gone']);
      await apply(ingressYaml(ns, 'kept', 'kept2.test', 'web'));
      await sleep(1500);
      assert.deepEqual(
        names(t.source.snapshot().ingresses, ns),
        ['doomed', 'kept'],
        'the last cache serves during the outage',
      );
      assert.deepEqual(names(t.source.snapshot().services, ns), ['gone', 'web']);
      const changesBefore = t.changes;

      relay.heal();
      // Each kind is restarted on its own backoff: wait for both.
      await eventually(
        'the relists replace the caches',
        () =>
          names(t.source.snapshot().ingresses, ns).join() === 'kept' &&
          names(t.source.snapshot().services, ns).join() === 'web',
        20_000,
      );
      assert.equal(
        t.source.snapshot().ingresses.find((i) => i.metadata?.name === 'kept')?.spec?.rules?.[0]?.host,
        'kept2.test',
      );
      assert.ok(t.changes > changesBefore, 'onChange after the relist');
      assert.ok(t.logs.some((l) => l.message === 'Kubernetes API: watching Ingresses again' && l.changed === true));
    } finally {
      await relay.close();
    }
  });

  describe('the whole sidecar: kubectl -> API -> sidecar -> nginx -> a backend in a network namespace', () => {
    let nginx: RunningNginx | undefined;
    let confDir: string;
    let port: number;
    let sidecarKubeconfig: string;
    const backends: Array<{ stop(): Promise<void> }> = [];
    const sidecars: Sidecar[] = [];

    before(async function () {
      this.timeout(60_000);
      confDir = path.join(work, 'conf.d');
      await mkdir(confDir, { recursive: true });
      port = await freePort();
      nginx = await startNginx({ confDir });
      // As the ServiceAccount the manifests grant, so a missing permission fails here.
      await applyManifests(api.adminKubeconfig);
      sidecarKubeconfig = api.sidecarKubeconfig;
    });
    after(async () => {
      await Promise.all(sidecars.splice(0).map((s) => s.stop().catch(() => {})));
      await nginx?.stop();
      await Promise.all(backends.splice(0).map((b) => b.stop()));
    });

    function makeSidecar() {
      const { logger, entries } = createMemoryLogger();
      const sidecar = new Sidecar({
        source: new KubernetesSource({ kubeconfig: sidecarKubeconfig, logger, retry: FAST_RETRY }),
        translate: { ingressClass: 'nginx', httpPort: port, ipv6: false, accessLog: null },
        confDir,
        nginxBinary: nginxBinary(),
        nginxPidFile: nginx!.pidFile,
        reloadTimeoutMs: 5000,
        debounceMs: 20,
        maxDelayMs: 500,
        logger,
      });
      sidecars.push(sidecar);
      return { sidecar, logs: entries };
    }

    /** Which backend answered for Host `host`, or the status when none did. */
    async function who(host: string): Promise<string> {
      const res = await httpGet(port, host, '/').catch((err: Error) => ({ status: 0, body: err.message }));
      if (res.status !== 200) return String(res.status);
      try {
        return (JSON.parse(res.body) as EchoReply).service;
      } catch {
        return `200: ${res.body.slice(0, 80)}`;
      }
    }

    /**
     * Runs `change` (a kubectl call), then polls until `host` answers `expected`. Returns the ms
     * from the call's start, and from its end (the object is stored) to the answer.
     */
    async function timed(
      change: () => Promise<unknown>,
      host: string,
      expected: string,
      timeoutMs = 15_000,
    ): Promise<string> {
      const began = performance.now();
      await change();
      const stored = performance.now();
      let last: string;
      while ((last = await who(host)) !== expected) {
        if (performance.now() - began > timeoutMs)
          assert.fail(`${host} still answers ${last}, not ${expected}, after ${timeoutMs} ms`);
        await sleep(10);
      }
      const now = performance.now();
      return `${Math.round(now - began)} ms (${Math.round(now - stored)} ms after kubectl returned)`;
    }

    it('routes an Ingress to its backend, follows an update and a delete, and a restart with nothing changed reloads nothing', async function () {
      this.timeout(120_000);
      const ns = 'e2e';
      const blue = await startNetnsBackend('blue');
      backends.push(blue);
      const green = await startNetnsBackend('green');
      backends.push(green);
      await kubectl(['create', 'namespace', ns]);
      await apply(
        [
          serviceYaml(ns, 'blue', blue.port),
          endpointsYaml(ns, 'blue', blue.ip, blue.port),
          serviceYaml(ns, 'green', green.port),
          endpointsYaml(ns, 'green', green.ip, green.port),
        ].join('---\n'),
      );

      const first = makeSidecar();
      await first.sidecar.start();
      assert.equal(await who('shop.test'), '404');

      const added = await timed(() => apply(ingressYaml(ns, 'shop', 'shop.test', 'blue')), 'shop.test', 'blue');
      const updated = await timed(() => apply(ingressYaml(ns, 'shop', 'shop.test', 'green')), 'shop.test', 'green');
      await first.sidecar.idle();
      const echo = JSON.parse((await httpGet(port, 'shop.test', '/cart?id=7')).body) as EchoReply;
      assert.equal(echo.url, '/cart?id=7');
      assert.equal(echo.headers.host, 'shop.test');

      // Restarted with nothing changed: the files on disk are what nginx already runs.
      await first.sidecar.stop();
      const second = makeSidecar();
      await second.sidecar.start();
      await second.sidecar.idle();
      assert.equal(second.sidecar.stats.reloads, 0, 'no reload after a restart with nothing changed');
      assert.equal(await who('shop.test'), 'green');

      const deleted = await timed(() => kubectl(['-n', ns, 'delete', 'ingress', 'shop']), 'shop.test', '404');
      assert.ok(
        !second.logs.some((l) => l.level === 'error'),
        `no errors: ${JSON.stringify(second.logs.filter((l) => l.level === 'error'))}`,
      );
      await second.sidecar.stop();
      console.log(
        `      kubectl -> route answering: add ${added}, update ${updated}, delete ${deleted}` +
          ' (sidecar as the ingress-sidecar ServiceAccount)',
      );
    });

    it('follows IngressClass changes: an Ingress naming no class is served while nginx is the default class', async function () {
      this.timeout(60_000);
      const ns = 'e2e-class';
      const backend = await startNetnsBackend('plain');
      backends.push(backend);
      await kubectl(['create', 'namespace', ns]);
      // Created while no IngressClass is the default, so the DefaultIngressClass admission plugin leaves it classless.
      await apply(
        [
          serviceYaml(ns, 'plain', backend.port),
          endpointsYaml(ns, 'plain', backend.ip, backend.port),
          ingressYaml(ns, 'plain', 'plain.test', 'plain', 80, null),
        ].join('---\n'),
      );
      assert.equal(await kubectl(['-n', ns, 'get', 'ingress', 'plain', '-o', 'jsonpath={.spec.ingressClassName}']), '');
      const { sidecar } = makeSidecar();
      await sidecar.start();
      try {
        assert.equal(await who('plain.test'), '404');
        await timed(
          () => kubectl(['annotate', 'ingressclass', 'nginx', 'ingressclass.kubernetes.io/is-default-class=true']),
          'plain.test',
          'plain',
        );
        await timed(
          () => kubectl(['annotate', 'ingressclass', 'nginx', 'ingressclass.kubernetes.io/is-default-class-']),
          'plain.test',
          '404',
        );
      } finally {
        await sidecar.stop();
      }
    });
  });
});
