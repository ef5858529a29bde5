// Leader election: exactly one leader among candidates, a clean hand-over on stop(), a leader that
// cannot renew steps down before anyone else may take over, and an abandoned Lease is taken over
// after its duration. First against an in-memory Lease store with the API server's optimistic
// concurrency (resourceVersion), then against a real kube-apiserver as the sidecar's identity.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoordinationV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { execa } from 'execa';
import { LeaderElector, type LeaseApi } from '../../src/cluster/leader.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { startApiServer, type ApiServer, applyManifests } from '../helpers/apiserver.ts';

/** One Lease store shared by several fake clients; a client can be cut off from it. */
class LeaseStore {
  leases = new Map<string, V1Lease>();
  private rv = 0;
  writes = 0;

  client(): LeaseApi & { down: boolean; hangMs: number } {
    // The fake's methods are the api object's: they reach the store through this name.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const store = this;
    const api = {
      down: false,
      hangMs: 0,
      async readNamespacedLease(p: { name: string; namespace: string }): Promise<V1Lease> {
        if (api.hangMs) {
          await sleep(api.hangMs);
          throw new Error('The operation was aborted due to timeout');
        }
        api.check();
        const l = store.leases.get(`${p.namespace}/${p.name}`);
        if (!l) throw new ApiException(404, 'not found', '{"message":"leases not found"}', {});
        return structuredClone(l);
      },
      async createNamespacedLease(p: { namespace: string; body: V1Lease }): Promise<V1Lease> {
        api.check();
        const key = `${p.namespace}/${p.body.metadata?.name}`;
        if (store.leases.has(key)) throw new ApiException(409, 'exists', '{"message":"already exists"}', {});
        return store.put(key, p.body);
      },
      async replaceNamespacedLease(p: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease> {
        api.check();
        const key = `${p.namespace}/${p.name}`;
        const cur = store.leases.get(key);
        if (!cur) throw new ApiException(404, 'not found', '', {});
        if (p.body.metadata?.resourceVersion !== cur.metadata?.resourceVersion)
          throw new ApiException(409, 'conflict', '{"message":"the object has been modified"}', {});
        return store.put(key, p.body);
      },
      check() {
        if (api.down) throw new Error('connect ECONNREFUSED');
      },
    };
    return api;
  }

  private put(key: string, body: V1Lease): V1Lease {
    this.writes++;
    // What the wire does: Dates become strings.
    const stored = JSON.parse(JSON.stringify(body)) as V1Lease;
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    this.leases.set(key, stored);
    return structuredClone(stored);
  }
}

const FAST = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100 };

function elector(api: LeaseApi, identity: string, extra: Partial<typeof FAST> = {}) {
  const { logger, entries } = createMemoryLogger();
  const e = new LeaderElector({
    api,
    namespace: 'ingress-sidecar',
    name: 'ingress-sidecar-leader',
    identity,
    logger,
    ...FAST,
    ...extra,
  });
  const changes: boolean[] = [];
  e.onChange((l) => changes.push(l));
  return { e, entries, changes };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

describe('LeaderElector (in-memory Lease)', () => {
  it('a lone candidate creates the Lease and leads as soon as start() returns', async () => {
    const store = new LeaseStore();
    const a = elector(store.client(), 'pod-a');
    await a.e.start();
    try {
      assert.equal(a.e.isLeader(), true);
      const lease = store.leases.get('ingress-sidecar/ingress-sidecar-leader');
      assert.equal(lease?.spec?.holderIdentity, 'pod-a');
      assert.equal(lease?.spec?.leaseDurationSeconds, 2); // 1.5 s rounds up to whole seconds
      assert.match(
        String(lease?.spec?.renewTime),
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
        'MicroTime has six fractional digits',
      );
      assert.deepEqual(a.changes, [true]);
    } finally {
      await a.e.stop();
    }
  });

  it('of three candidates exactly one leads, and keeps leading while it renews', async () => {
    const store = new LeaseStore();
    const all = ['pod-a', 'pod-b', 'pod-c'].map((id) => elector(store.client(), id));
    await Promise.all(all.map((x) => x.e.start()));
    try {
      for (let i = 0; i < 10; i++) {
        assert.equal(all.filter((x) => x.e.isLeader()).length, 1);
        await sleep(100);
      }
      const leader = all.find((x) => x.e.isLeader())!;
      assert.equal(
        store.leases.get('ingress-sidecar/ingress-sidecar-leader')?.spec?.holderIdentity,
        (leader.e as unknown as { opts: { identity: string } }).opts.identity,
      );
      for (const x of all) assert.ok(x.changes.length <= 1, 'nobody flapped');
    } finally {
      await Promise.all(all.map((x) => x.e.stop()));
    }
  });

  it('stop() steps down first, releases the Lease, and another candidate takes over within a retry period', async () => {
    const store = new LeaseStore();
    const a = elector(store.client(), 'pod-a');
    const b = elector(store.client(), 'pod-b');
    await a.e.start();
    await b.e.start();
    try {
      assert.equal(a.e.isLeader(), true);
      assert.equal(b.e.isLeader(), false);
      const stopped = Date.now();
      await a.e.stop();
      assert.deepEqual(a.changes, [true, false]);
      assert.equal(store.leases.get('ingress-sidecar/ingress-sidecar-leader')?.spec?.holderIdentity, '');
      await until('b leads', () => b.e.isLeader());
      // Well before the 1.5 s lease duration: the release, not expiry, handed it over.
      assert.ok(Date.now() - stopped < 600, `took ${Date.now() - stopped} ms`);
      assert.equal(store.leases.get('ingress-sidecar/ingress-sidecar-leader')?.spec?.leaseTransitions, 1);
    } finally {
      await b.e.stop();
    }
  });

  it('a leader cut off from the API steps down after the renew deadline; the other takes over only after the lease duration', async () => {
    const store = new LeaseStore();
    const apiA = store.client();
    const a = elector(apiA, 'pod-a');
    const b = elector(store.client(), 'pod-b');
    await a.e.start();
    await b.e.start();
    try {
      assert.equal(a.e.isLeader(), true);
      const cut = Date.now();
      apiA.down = true;
      await until('a steps down', () => !a.e.isLeader());
      const steppedDown = Date.now() - cut;
      assert.ok(steppedDown >= 900 && steppedDown < 1400, `stepped down after ${steppedDown} ms`);
      await until('b leads', () => b.e.isLeader());
      const tookOver = Date.now() - cut;
      assert.ok(tookOver >= 1400, `b took over after ${tookOver} ms, before the lease duration`);
      assert.ok(a.entries.some((e) => e.message === 'leader election: lost the lead'));
      // Back online, a finds the Lease held and stays a follower.
      apiA.down = false;
      await sleep(400);
      assert.equal(a.e.isLeader(), false);
      assert.equal(b.e.isLeader(), true);
    } finally {
      await Promise.all([a.e.stop(), b.e.stop()]);
    }
  });

  it('a leader whose requests hang steps down at the renew deadline, not when the request gives up', async () => {
    const store = new LeaseStore();
    const apiA = store.client();
    const a = elector(apiA, 'pod-a');
    await a.e.start();
    try {
      assert.equal(a.e.isLeader(), true);
      const cut = Date.now();
      apiA.hangMs = 2500;
      await until('a steps down', () => a.changes.at(-1) === false, 2000);
      const ms = Date.now() - cut;
      assert.ok(ms < 1200, `stepped down after ${ms} ms`);
      assert.equal(a.e.isLeader(), false);
      apiA.hangMs = 0;
    } finally {
      await a.e.stop();
    }
  });

  it('refuses timings that could give two leaders', () => {
    const store = new LeaseStore();
    const { logger } = createMemoryLogger();
    assert.throws(
      () =>
        new LeaderElector({
          api: store.client(),
          namespace: 'n',
          name: 'l',
          identity: 'p',
          logger,
          leaseDurationMs: 1000,
          renewDeadlineMs: 1000,
          retryPeriodMs: 100,
        }),
      /lease duration > renew deadline/,
    );
    assert.throws(
      () => new LeaderElector({ api: store.client(), namespace: 'n', name: 'l', identity: '', logger }),
      /identity/,
    );
  });
});

describe('LeaderElector against a real kube-apiserver, as the sidecar ServiceAccount', function () {
  this.timeout(60_000);
  let server: ApiServer;
  let sidecar: KubeConfig;
  const kubectl = (...args: string[]) => execa('kubectl', ['--kubeconfig', server.adminKubeconfig, ...args]);
  const lease = async (): Promise<V1Lease> =>
    JSON.parse(
      (await kubectl('-n', 'ingress-sidecar', 'get', 'lease', 'ingress-sidecar-leader', '-o', 'json')).stdout,
    ) as V1Lease;
  const REAL = { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 250 };
  const real = (identity: string) => {
    const { logger, entries } = createMemoryLogger();
    const e = new LeaderElector({
      kubeConfig: sidecar,
      namespace: 'ingress-sidecar',
      name: 'ingress-sidecar-leader',
      identity,
      logger,
      ...REAL,
    });
    return { e, entries };
  };

  before(async function () {
    this.timeout(120_000);
    server = await startApiServer();
    await applyManifests(server.adminKubeconfig);
    sidecar = new KubeConfig();
    sidecar.loadFromFile(server.sidecarKubeconfig);
  });

  after(async () => {
    await server?.stop();
  });

  it('two replicas: exactly one leads; stop() hands over to the other well before the lease expires', async () => {
    const a = real('pod-a');
    const b = real('pod-b');
    try {
      await Promise.all([a.e.start(), b.e.start()]);
      await until('a leader', () => a.e.isLeader() || b.e.isLeader());
      for (let i = 0; i < 8; i++) {
        assert.equal([a, b].filter((x) => x.e.isLeader()).length, 1, JSON.stringify([...a.entries, ...b.entries]));
        await sleep(250);
      }
      const [leader, follower] = a.e.isLeader() ? [a, b] : [b, a];
      const before = await lease();
      assert.equal(before.spec?.holderIdentity, leader === a ? 'pod-a' : 'pod-b');
      assert.equal(before.spec?.leaseDurationSeconds, 4);
      assert.match(String(before.spec?.renewTime), /\.\d{6}Z$/);
      // The leader keeps renewing.
      await sleep(600);
      assert.notEqual((await lease()).spec?.renewTime, before.spec?.renewTime);

      const stopped = Date.now();
      await leader.e.stop();
      assert.equal(leader.e.isLeader(), false);
      await until('the other takes over', () => follower.e.isLeader());
      const ms = Date.now() - stopped;
      assert.ok(ms < 2000, `hand-over took ${ms} ms (lease duration 4 s)`);
      const after = await lease();
      assert.equal(after.spec?.holderIdentity, follower === a ? 'pod-a' : 'pod-b');
      assert.equal(after.spec?.leaseTransitions, (before.spec?.leaseTransitions ?? 0) + 1);
    } finally {
      await Promise.all([a.e.stop(), b.e.stop()]);
    }
  });

  it('with the default 15 s / 10 s timings, an API server restart does not move or drop the lead', async function () {
    this.timeout(40_000);
    const { logger, entries } = createMemoryLogger();
    const a = new LeaderElector({
      kubeConfig: sidecar,
      namespace: 'ingress-sidecar',
      name: 'restart-test',
      identity: 'pod-a',
      logger,
      retryPeriodMs: 500,
    });
    try {
      await a.start();
      assert.equal(a.isLeader(), true);
      const changes: boolean[] = [];
      a.onChange((l) => changes.push(l));
      const t = Date.now();
      await server.restart();
      const outage = Date.now() - t;
      await sleep(1500);
      assert.equal(a.isLeader(), true);
      assert.deepEqual(changes, [], `outage ${outage} ms: ${JSON.stringify(entries)}`);
      const l = JSON.parse(
        (await kubectl('-n', 'ingress-sidecar', 'get', 'lease', 'restart-test', '-o', 'json')).stdout,
      ) as V1Lease;
      assert.equal(l.spec?.holderIdentity, 'pod-a');
      assert.equal(l.spec?.leaseDurationSeconds, 15);
    } finally {
      await a.stop();
    }
  });

  it('the sidecar identity may use Leases only in its own namespace', async () => {
    const api = sidecar.makeApiClient(CoordinationV1Api);
    await assert.rejects(
      () => api.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'x' }, spec: {} } }),
      (err: unknown) => err instanceof ApiException && err.code === 403,
    );
    await assert.rejects(
      () => api.deleteNamespacedLease({ namespace: 'ingress-sidecar', name: 'ingress-sidecar-leader' }),
      (err: unknown) => err instanceof ApiException && err.code === 403,
    );
  });
});
