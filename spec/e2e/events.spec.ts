// Events on Ingresses: a Warning for each rejection, a Normal `Served` when an Ingress first
// serves, each recorded once however many syncs see it; a repeat after the problem went away
// bumps the count at most once a minute; replicas and restarts do not duplicate Events.
// Pure parts and the recorder against a fake API first, then against a real kube-apiserver as the
// sidecar's ServiceAccount with manifests/ applied.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoreV1Api, KubeConfig, NetworkingV1Api, type CoreV1Event } from '@kubernetes/client-node';
import { execa } from 'execa';
import {
  IngressEventRecorder,
  SERVED_MESSAGE,
  eventIntents,
  eventName,
  type EventApi,
} from '../../src/cluster/events.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import type { RoutingModel } from '../../src/model.ts';
import { emptySnapshot, type Snapshot } from '../../src/sources/snapshot.ts';
import { translate } from '../../src/translate/index.ts';
import { startApiServer, type ApiServer, applyManifests } from '../helpers/apiserver.ts';
import { ingress, path as p, rule } from '../helpers/builders.ts';

function withUid<T extends { metadata?: { uid?: string } }>(o: T, uid: string): T {
  return { ...o, metadata: { ...o.metadata, uid } };
}

function model(parts: Partial<Pick<RoutingModel, 'served' | 'rejections'>>): RoutingModel {
  return { served: [], rejections: [], ...parts } as RoutingModel;
}

/** An in-memory events API with the server's create/409 and patch/404 behaviour. */
function fakeEvents() {
  const events = new Map<string, CoreV1Event>();
  const calls: string[] = [];
  let down = false;
  const api: EventApi = {
    async createNamespacedEvent(q) {
      if (down) throw new Error('connect ECONNREFUSED');
      const key = `${q.namespace}/${q.body.metadata.name}`;
      calls.push(`create ${key}`);
      if (events.has(key)) throw new ApiException(409, 'exists', '{"message":"already exists"}', {});
      events.set(key, structuredClone(q.body));
      return q.body;
    },
    async patchNamespacedEvent(q) {
      if (down) throw new Error('connect ECONNREFUSED');
      const key = `${q.namespace}/${q.name}`;
      calls.push(`patch ${key}`);
      const e = events.get(key);
      if (!e) throw new ApiException(404, 'nf', '{"message":"not found"}', {});
      Object.assign(e, q.body);
      return e;
    },
  };
  return { api, events, calls, setDown: (d: boolean) => (down = d) };
}

describe('events: what to record (eventIntents)', () => {
  const good = withUid(ingress('good', [rule('a.example.com', p('/', 'Prefix', 'svc'))]), 'u-good');
  const bad = withUid(ingress('bad', [rule('b.example.com', p('/', 'Prefix', 'svc'))], { namespace: 'shop' }), 'u-bad');
  const snap: Snapshot = { ...emptySnapshot(), ingresses: [good, bad] };

  it('one Warning per reason (Rejected / PartlyRejected), one Normal Served per served Ingress', () => {
    const m = model({
      served: ['default/good'],
      rejections: [
        { ingress: 'shop/bad', severity: 'rejected', reason: 'host "X" is invalid' },
        { ingress: 'default/good', severity: 'partial', reason: 'Service default/x does not exist' },
        { ingress: 'default/good', severity: 'partial', reason: 'spec.tls is not supported yet' },
        { ingress: 'default/vanished', severity: 'rejected', reason: 'not in the snapshot: no Event' },
      ],
    });
    const got = eventIntents(snap, m).map(
      (i) => `${i.ingress.metadata?.namespace}/${i.ingress.metadata?.name} ${i.type} ${i.reason}: ${i.message}`,
    );
    assert.deepEqual(got, [
      'default/good Normal Served: ' + SERVED_MESSAGE,
      'default/good Warning PartlyRejected: Service default/x does not exist',
      'default/good Warning PartlyRejected: spec.tls is not supported yet',
      'shop/bad Warning Rejected: host "X" is invalid',
    ]);
  });

  it('names Events after the Ingress and what they say: stable, distinct, valid object names', () => {
    const [a, b] = eventIntents(
      snap,
      model({ served: ['default/good'], rejections: [{ ingress: 'default/good', severity: 'partial', reason: 'r' }] }),
    );
    assert.match(a!.name, /^good\.[0-9a-f]{16}$/);
    assert.notEqual(a!.name, b!.name);
    assert.equal(
      eventIntents(snap, model({ served: ['default/good'] }))[0]!.name,
      a!.name,
      'same condition, same name',
    );
    // Same name and message on a re-created Ingress (new uid): a new Event.
    const again = eventIntents(
      { ...emptySnapshot(), ingresses: [withUid(good, 'u-good-2')] },
      model({ served: ['default/good'] }),
    );
    assert.notEqual(again[0]!.name, a!.name);
    const long = withUid(ingress('x'.repeat(250), [], {}), 'u');
    const n = eventName(long, 'k');
    assert.ok(n.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(n), n);
  });

  it('cuts very long messages', () => {
    const m = model({ rejections: [{ ingress: 'default/good', severity: 'rejected', reason: 'e'.repeat(5000) }] });
    assert.equal(eventIntents(snap, m)[0]!.message.length, 1024);
  });
});

describe('IngressEventRecorder (fake API)', () => {
  const bad = withUid(ingress('bad', []), 'u-bad');
  const snap: Snapshot = { ...emptySnapshot(), ingresses: [bad] };
  const rejected = model({
    rejections: [
      { ingress: 'default/bad', severity: 'rejected', reason: 'spec has neither rules nor a defaultBackend' },
    ],
  });
  const fine = model({});

  function recorder(api: EventApi, clock: { t: number }, extra: { cacheSize?: number } = {}) {
    const { logger, entries } = createMemoryLogger();
    const r = new IngressEventRecorder({
      api,
      instance: 'pod-a',
      logger,
      now: () => clock.t,
      retryBaseMs: 20,
      ...extra,
    });
    return { r, entries };
  }

  it('records a lasting problem once, however many syncs see it', async () => {
    const f = fakeEvents();
    const { r } = recorder(f.api, { t: Date.UTC(2026, 0, 1) });
    for (let i = 0; i < 5; i++) r.record(snap, rejected);
    await r.idle();
    assert.equal(f.events.size, 1);
    assert.equal(f.calls.length, 1);
    const e = [...f.events.values()][0]!;
    assert.equal(e.type, 'Warning');
    assert.equal(e.reason, 'Rejected');
    assert.equal(e.count, 1);
    assert.deepEqual(e.involvedObject, {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      namespace: 'default',
      name: 'bad',
      uid: 'u-bad',
    });
    assert.equal(e.source?.component, 'ingress-sidecar');
    assert.equal(e.reportingComponent, 'ingress-sidecar');
    assert.equal(e.reportingInstance, 'pod-a');
    await r.stop();
  });

  it('a problem that comes back bumps count and lastTimestamp, at most once a minute', async () => {
    const f = fakeEvents();
    const clock = { t: Date.UTC(2026, 0, 1) };
    const { r } = recorder(f.api, clock);
    const flap = async () => {
      r.record(snap, fine);
      r.record(snap, rejected);
      await r.idle();
    };
    r.record(snap, rejected);
    await r.idle();
    clock.t += 10_000;
    await flap(); // 10 s later: counted, not written
    assert.deepEqual(
      f.calls.map((c) => c.split(' ')[0]),
      ['create'],
    );
    clock.t += 55_000;
    await flap(); // 65 s after the create: written, with both repeats
    const e = [...f.events.values()][0]!;
    assert.equal(e.count, 3);
    assert.equal(String(e.lastTimestamp), new Date(clock.t).toISOString());
    clock.t += 1_000;
    await flap();
    assert.deepEqual(
      f.calls.map((c) => c.split(' ')[0]),
      ['create', 'patch'],
    );
    await r.stop();
  });

  it('a second replica (or a restart) finds the Event already there and writes nothing more', async () => {
    const f = fakeEvents();
    const a = recorder(f.api, { t: Date.UTC(2026, 0, 1) });
    const b = recorder(f.api, { t: Date.UTC(2026, 0, 1) });
    a.r.record(snap, rejected);
    b.r.record(snap, rejected);
    await Promise.all([a.r.idle(), b.r.idle()]);
    assert.equal(f.events.size, 1);
    assert.equal(a.r.stats.created + b.r.stats.created, 1);
    assert.equal(a.r.stats.alreadyExisted + b.r.stats.alreadyExisted, 1);
    await Promise.all([a.r.stop(), b.r.stop()]);
  });

  it('an Event that expired is created anew on the next repeat', async () => {
    const f = fakeEvents();
    const clock = { t: Date.UTC(2026, 0, 1) };
    const { r } = recorder(f.api, clock);
    r.record(snap, rejected);
    await r.idle();
    f.events.clear(); // the API server's event TTL
    clock.t += 120_000;
    r.record(snap, fine);
    r.record(snap, rejected);
    await r.idle();
    assert.equal(f.events.size, 1);
    assert.equal([...f.events.values()][0]!.count, 1);
    await r.stop();
  });

  it('keeps an Event it could not write and retries it until the API answers', async () => {
    const f = fakeEvents();
    const { r, entries } = recorder(f.api, { t: Date.UTC(2026, 0, 1) });
    f.setDown(true);
    r.record(snap, rejected);
    await r.idle();
    assert.equal(f.events.size, 0);
    assert.ok(entries.some((e) => e.message === 'could not record an Event; will retry'));
    f.setDown(false);
    await sleep(100);
    await r.idle();
    assert.equal(f.events.size, 1);
    await r.stop();
  });

  it('remembers a bounded number of recorded conditions', async () => {
    const f = fakeEvents();
    const clock = { t: Date.UTC(2026, 0, 1) };
    const { r } = recorder(f.api, clock, { cacheSize: 3 });
    const many = Array.from({ length: 10 }, (_, i) => withUid(ingress(`i${i}`, []), `u${i}`));
    r.record(
      { ...emptySnapshot(), ingresses: many },
      model({ served: many.map((i) => `default/${i.metadata?.name}`) }),
    );
    await r.idle();
    assert.equal(f.events.size, 10);
    assert.ok((r as unknown as { recorded: Map<string, unknown> }).recorded.size <= 3);
    await r.stop();
  });
});

describe('events against a real kube-apiserver, as the sidecar ServiceAccount', function () {
  this.timeout(60_000);
  let server: ApiServer;
  let sidecar: KubeConfig;
  const kubectl = (...args: string[]) => execa('kubectl', ['--kubeconfig', server.adminKubeconfig, ...args]);
  const apply = (yaml: string) =>
    execa('kubectl', ['--kubeconfig', server.adminKubeconfig, 'apply', '-f', '-'], { input: yaml });
  const events = async (): Promise<CoreV1Event[]> =>
    (JSON.parse((await kubectl('-n', 'web', 'get', 'events', '-o', 'json')).stdout) as { items: CoreV1Event[] }).items;

  /** What the sidecar would see (listed with its own permissions) and what translate makes of it. */
  async function sync(): Promise<{ snap: Snapshot; model: RoutingModel }> {
    const net = sidecar.makeApiClient(NetworkingV1Api);
    const core = sidecar.makeApiClient(CoreV1Api);
    const snap: Snapshot = {
      ...emptySnapshot(),
      ingresses: (await net.listIngressForAllNamespaces()).items,
      ingressClasses: (await net.listIngressClass()).items,
      services: (await core.listServiceForAllNamespaces()).items,
      endpoints: (await core.listEndpointsForAllNamespaces()).items,
    };
    return { snap, model: translate(snap, { ingressClass: 'nginx', httpPort: 80, ipv6: false }) };
  }

  before(async function () {
    this.timeout(120_000);
    server = await startApiServer();
    await applyManifests(server.adminKubeconfig);
    await kubectl('create', 'namespace', 'web');
    await apply(`
apiVersion: v1
kind: Service
metadata: {name: app, namespace: web}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app, namespace: web}
subsets: [{addresses: [{ip: 10.213.64.5}], ports: [{name: http, port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: good, namespace: web}
spec:
  ingressClassName: nginx
  rules: [{host: good.example.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: partly, namespace: web}
spec:
  ingressClassName: nginx
  rules:
    - host: partly.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
          - {path: /gone, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: broken, namespace: web}
spec:
  ingressClassName: nginx
  rules:
    - host: broken.example.com
      http: {paths: [{path: /, pathType: Prefix, backend: {resource: {apiGroup: example.com, kind: Bucket, name: b}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: theirs, namespace: web}
spec:
  ingressClassName: other
  defaultBackend: {resource: {apiGroup: example.com, kind: Bucket, name: b}}
`);
    sidecar = new KubeConfig();
    sidecar.loadFromFile(server.sidecarKubeconfig);
  });

  after(async () => {
    await server?.stop();
  });

  it('records each Event once across several syncs and replicas, visible on the Ingress', async () => {
    const { logger, entries } = createMemoryLogger();
    const a = new IngressEventRecorder({ kubeConfig: sidecar, instance: 'pod-a', logger });
    const b = new IngressEventRecorder({ kubeConfig: sidecar, instance: 'pod-b', logger });
    try {
      for (let i = 0; i < 3; i++) {
        const { snap, model } = await sync();
        a.record(snap, model);
        b.record(snap, model);
        await Promise.all([a.idle(), b.idle()]);
      }
      assert.equal(a.stats.failures + b.stats.failures, 0, JSON.stringify(entries));
      const got = (await events())
        .map((e) => `${e.involvedObject.name} ${e.type} ${e.reason} x${e.count}: ${e.message}`)
        .sort();
      assert.deepEqual(got, [
        `broken Warning Rejected x1: rules[0].http.paths[0]: resource backends (Bucket) are not supported; use a Service backend`,
        `good Normal Served x1: ${SERVED_MESSAGE}`,
        `partly Normal Served x1: ${SERVED_MESSAGE}`,
        `partly Warning PartlyRejected x1: ${(await sync()).model.rejections.find((r) => r.ingress === 'web/partly')!.reason}`,
      ]);
      assert.equal(a.stats.created + b.stats.created, 4);
      const e = (await events()).find((x) => x.reason === 'Rejected')!;
      assert.equal(e.source?.component, 'ingress-sidecar');
      assert.equal(e.reportingComponent, 'ingress-sidecar');
      assert.equal(e.involvedObject.kind, 'Ingress');
      assert.ok(e.involvedObject.uid);
      // What a user runs.
      const described = (await kubectl('-n', 'web', 'describe', 'ingress', 'broken')).stdout;
      assert.match(
        described,
        /Warning\s+Rejected\s+.*ingress-sidecar\s+rules\[0\]\.http\.paths\[0\]: resource backends/,
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('a repeat a minute later bumps the count of the same Event', async () => {
    const { logger } = createMemoryLogger();
    const clock = { t: Date.now() };
    const r = new IngressEventRecorder({ kubeConfig: sidecar, instance: 'pod-a', logger, now: () => clock.t });
    try {
      const { snap, model } = await sync();
      r.record(snap, model); // already recorded by the replicas above: nothing new
      await r.idle();
      assert.equal(r.stats.created, 0);
      r.record(snap, { ...model, rejections: model.rejections.filter((x) => x.ingress !== 'web/broken') });
      clock.t += 61_000;
      r.record(snap, model);
      await r.idle();
      assert.equal(r.stats.bumped, 1);
      const rejectedEvents = (await events()).filter((e) => e.reason === 'Rejected');
      assert.equal(rejectedEvents.length, 1);
      assert.equal(rejectedEvents[0]!.count, 2);
      assert.equal(new Date(String(rejectedEvents[0]!.lastTimestamp)).getTime(), Math.floor(clock.t / 1000) * 1000);
    } finally {
      await r.stop();
    }
  });
});
