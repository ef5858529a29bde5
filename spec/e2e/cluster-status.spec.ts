// Ingress status: our Ingresses show the publish addresses, written by the leader only and only
// when they differ; an Ingress that leaves our class is cleared; other classes are left alone.
// Pure parts and the writer against a fake API first, then the whole thing against a real
// kube-apiserver, running as the sidecar's ServiceAccount with manifests/ applied.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  NetworkingV1Api,
  type V1Ingress,
  type V1Service,
} from '@kubernetes/client-node';
import { execa } from 'execa';
import {
  StatusPublisher,
  normalize,
  parsePublishAddresses,
  parsePublishService,
  planStatus,
  sameAddresses,
  serviceAddresses,
  startClusterWriters,
  type IngressStatusApi,
  type LoadBalancerAddress,
} from '../../src/cluster/status.ts';
import { LeaderElector, type Leadership } from '../../src/cluster/leader.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { emptySnapshot, type Snapshot } from '../../src/sources/snapshot.ts';
import { translate } from '../../src/translate/index.ts';
import { startApiServer, type ApiServer, applyManifests } from '../helpers/apiserver.ts';
import { ingress, ingressClass, path as p, rule } from '../helpers/builders.ts';

function withStatus(
  ing: V1Ingress,
  addrs: LoadBalancerAddress[],
  uid = `uid-${ing.metadata?.name}`,
  rv = '1',
): V1Ingress {
  return {
    ...ing,
    metadata: { ...ing.metadata, uid, resourceVersion: rv },
    status: { loadBalancer: { ingress: addrs } },
  };
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(25);
  }
}

class FakeLeader implements Leadership {
  leader: boolean;
  private cbs = new Set<(l: boolean) => void>();
  constructor(leader: boolean) {
    this.leader = leader;
  }
  isLeader() {
    return this.leader;
  }
  onChange(cb: (l: boolean) => void) {
    this.cbs.add(cb);
    return () => this.cbs.delete(cb);
  }
  set(l: boolean) {
    this.leader = l;
    for (const cb of this.cbs) cb(l);
  }
}

function fakeIngressApi(opts: { fail?: () => boolean } = {}) {
  const patches: Array<{ key: string; body: any }> = [];
  let rv = 100;
  const api: IngressStatusApi = {
    async patchNamespacedIngressStatus(q) {
      if (opts.fail?.()) throw new ApiException(500, 'boom', '{"message":"etcdserver: request timed out"}', {});
      patches.push({ key: `${q.namespace}/${q.name}`, body: q.body });
      return { metadata: { name: q.name, namespace: q.namespace, resourceVersion: String(++rv) } };
    },
  };
  return { api, patches };
}

describe('cluster status: flags and addresses', () => {
  it('parses --publish-address: IPs become ip, names hostname, sorted and de-duplicated', () => {
    assert.deepEqual(parsePublishAddresses('203.0.113.7, LB.example.com,2001:db8::1,203.0.113.7'), [
      { ip: '2001:db8::1' },
      { ip: '203.0.113.7' },
      { hostname: 'lb.example.com' },
    ]);
    assert.throws(() => parsePublishAddresses('203.0.113.7,,x.example'), /comma-separated/);
    assert.throws(() => parsePublishAddresses('not a host'), /neither an IP address nor a DNS name/);
    assert.throws(() => parsePublishAddresses('1.2.3.4:80'), /neither/);
  });

  it('parses --publish-service NS/NAME', () => {
    assert.deepEqual(parsePublishService('ingress-sidecar/ingress-sidecar'), {
      namespace: 'ingress-sidecar',
      name: 'ingress-sidecar',
    });
    for (const bad of ['svc', 'a/b/c', '/svc', 'ns/', 'NS/svc', 'ns/1svc'])
      assert.throws(() => parsePublishService(bad), /NAMESPACE\/NAME/, bad);
  });

  it("takes a Service's load balancer IPs and hostnames, else its cluster IPs", () => {
    const svc = (spec: V1Service['spec'], lb?: LoadBalancerAddress[]): V1Service => ({
      metadata: { name: 's', namespace: 'n' },
      spec,
      ...(lb ? { status: { loadBalancer: { ingress: lb } } } : {}),
    });
    assert.deepEqual(
      serviceAddresses(
        svc({ type: 'LoadBalancer', clusterIP: '10.0.0.9' }, [{ hostname: 'a.elb.example' }, { ip: '203.0.113.1' }]),
      ),
      [{ ip: '203.0.113.1' }, { hostname: 'a.elb.example' }],
    );
    assert.deepEqual(
      serviceAddresses(svc({ type: 'LoadBalancer', clusterIP: '10.0.0.9' }, [])),
      [{ ip: '10.0.0.9' }],
      'no LB address yet: ClusterIP',
    );
    assert.deepEqual(serviceAddresses(svc({ clusterIP: '10.0.0.9', clusterIPs: ['10.0.0.9', 'fd00::9'] })), [
      { ip: '10.0.0.9' },
      { ip: 'fd00::9' },
    ]);
    assert.deepEqual(serviceAddresses(svc({ clusterIP: 'None' })), []);
    assert.deepEqual(serviceAddresses(svc({ type: 'ExternalName', externalName: 'edge.example.com' })), [
      { hostname: 'edge.example.com' },
    ]);
  });

  it('compares address lists as sets, ignoring ports', () => {
    assert.ok(sameAddresses([{ ip: '1.1.1.1' }, { hostname: 'a' }], [{ hostname: 'a' }, { ip: '1.1.1.1' }]));
    assert.ok(
      sameAddresses(
        [{ ip: '1.1.1.1', ports: [{ port: 80, protocol: 'TCP' }] } as LoadBalancerAddress],
        [{ ip: '1.1.1.1' }],
      ),
    );
    assert.ok(!sameAddresses([{ ip: '1.1.1.1' }], [{ ip: '1.1.1.1' }, { ip: '1.1.1.2' }]));
    assert.deepEqual(normalize([{ ip: '' }, {}]), []);
  });
});

describe('cluster status: what to write (planStatus)', () => {
  const ours = [{ ip: '203.0.113.10' }];
  const r = rule('a.example.com', p('/', 'Prefix', 'svc'));
  const snap = (...ingresses: V1Ingress[]): Snapshot => ({
    ...emptySnapshot(),
    ingresses,
    ingressClasses: [ingressClass('nginx', false)],
  });
  const names = (cs: ReturnType<typeof planStatus>) =>
    cs.map((c) => `${c.ingress.metadata?.name}:${c.why}:${c.addresses.map((a) => a.ip ?? a.hostname).join(',')}`);

  it('publishes to ours that show anything else, and leaves ours that already show it', () => {
    const s = snap(
      ingress('fresh', [r]),
      withStatus(ingress('done', [r]), ours),
      withStatus(ingress('stale', [r]), [{ ip: '198.51.100.1' }]),
    );
    assert.deepEqual(names(planStatus(s, 'nginx', ours)), ['fresh:publish:203.0.113.10', 'stale:publish:203.0.113.10']);
  });

  it('clears an Ingress of another class only when it shows our addresses (now, or as we wrote them to it)', () => {
    const s = snap(
      withStatus(ingress('moved', [r], { className: 'other' }), ours),
      withStatus(ingress('moved-before-address-change', [r], { className: 'other' }), [{ ip: '192.0.2.50' }]),
      withStatus(ingress('theirs', [r], { className: 'other' }), [{ ip: '198.51.100.7' }]),
      ingress('theirs-empty', [r], { className: 'other' }),
      withStatus(
        ingress('legacy-annotation', [r], { className: null, annotations: { 'kubernetes.io/ingress.class': 'other' } }),
        [{ ip: '198.51.100.8' }],
      ),
    );
    const wrote = (uid: string) => (uid === 'uid-moved-before-address-change' ? [{ ip: '192.0.2.50' }] : undefined);
    assert.deepEqual(names(planStatus(s, 'nginx', ours, wrote)), [
      'moved:clear:',
      'moved-before-address-change:clear:',
    ]);
  });

  it('follows the default IngressClass for Ingresses that name no class', () => {
    const unnamed = ingress('unnamed', [r], { className: null });
    const s = { ...snap(unnamed), ingressClasses: [ingressClass('nginx', true)] };
    assert.deepEqual(names(planStatus(s, 'nginx', ours)), ['unnamed:publish:203.0.113.10']);
    assert.deepEqual(
      names(planStatus(snap(unnamed), 'nginx', ours)),
      [],
      'not the default class: not ours, and nothing to clear',
    );
  });

  it('with --watch-ingress-without-class, publishes to Ingresses that name no class, as translate serves them', () => {
    const unnamed = ingress('unnamed', [r], { className: null });
    const theirs = ingress('theirs', [r], { className: 'other' });
    assert.deepEqual(names(planStatus(snap(unnamed, theirs), 'nginx', ours, undefined, true)), [
      'unnamed:publish:203.0.113.10',
    ]);
  });
});

describe('StatusPublisher (fake API)', () => {
  const r = rule('a.example.com', p('/', 'Prefix', 'svc'));
  const snap = (...ingresses: V1Ingress[]): Snapshot => ({ ...emptySnapshot(), ingresses, ingressClasses: [] });
  const publish = { kind: 'addresses' as const, addresses: [{ ip: '203.0.113.10' }] };

  it('writes only while leading; a new leader writes at once from the last sync', async () => {
    const { api, patches } = fakeIngressApi();
    const leader = new FakeLeader(false);
    const { logger } = createMemoryLogger();
    const sp = new StatusPublisher({ ingressApi: api, ingressClass: 'nginx', publish, leadership: leader, logger });
    sp.update(snap(withStatus(ingress('a', [r]), [])));
    await sp.idle();
    assert.equal(patches.length, 0);
    leader.set(true);
    await sp.idle();
    assert.deepEqual(patches, [
      { key: 'default/a', body: { status: { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } } } },
    ]);
    await sp.stop();
  });

  it('does not write twice when the next sync still holds the object it patched (watch not caught up)', async () => {
    const { api, patches } = fakeIngressApi();
    const { logger } = createMemoryLogger();
    const sp = new StatusPublisher({
      ingressApi: api,
      ingressClass: 'nginx',
      publish,
      leadership: new FakeLeader(true),
      logger,
    });
    const before = withStatus(ingress('a', [r]), [], 'uid-a', '7');
    sp.update(snap(before));
    await sp.idle();
    sp.update(snap(before));
    await sp.idle();
    assert.equal(patches.length, 1);
    // Someone else then overwrote it (a new resourceVersion): that is put right.
    sp.update(snap(withStatus(ingress('a', [r]), [{ ip: '198.51.100.1' }], 'uid-a', '9')));
    await sp.idle();
    assert.equal(patches.length, 2);
    await sp.stop();
  });

  it('clears with a merge patch that removes the list, and logs; a failure is logged and retried without a new sync', async () => {
    let failures = 1;
    const { api, patches } = fakeIngressApi({ fail: () => failures-- > 0 });
    const { logger, entries } = createMemoryLogger();
    const sp = new StatusPublisher({
      ingressApi: api,
      ingressClass: 'nginx',
      publish,
      leadership: new FakeLeader(true),
      logger,
      retryBaseMs: 50,
    });
    sp.update(snap(withStatus(ingress('gone', [r], { className: 'other' }), [{ ip: '203.0.113.10' }])));
    await sp.idle();
    assert.equal(patches.length, 0);
    assert.ok(
      entries.some(
        (e) =>
          e.message === 'could not write Ingress status; will retry' &&
          String(e.error).includes('etcdserver: request timed out'),
      ),
    );
    await sleep(150);
    await sp.idle();
    assert.deepEqual(patches, [{ key: 'default/gone', body: { status: { loadBalancer: { ingress: null } } } }]);
    assert.ok(entries.some((e) => e.message === 'Ingress status cleared (no longer of our class)'));
    await sp.stop();
  });

  it('waits (and says so once) while the publish Service does not exist', async () => {
    const { api, patches } = fakeIngressApi();
    const { logger, entries } = createMemoryLogger();
    let reads = 0;
    const serviceApi = {
      async readNamespacedService(): Promise<V1Service> {
        reads++;
        throw new ApiException(404, 'nf', '{"message":"services \\"lb\\" not found"}', {});
      },
    };
    const sp = new StatusPublisher({
      ingressApi: api,
      serviceApi,
      ingressClass: 'nginx',
      publish: { kind: 'service', namespace: 'ingress-sidecar', name: 'lb' },
      leadership: new FakeLeader(true),
      logger,
      retryBaseMs: 30,
    });
    sp.update(snap(ingress('a', [r])));
    await sleep(200);
    await sp.stop();
    assert.equal(patches.length, 0);
    assert.ok(reads >= 3, `retried (${reads} reads)`);
    assert.equal(entries.filter((e) => e.message === 'Ingress status not written; will retry').length, 1);
  });
});

describe('cluster status against a real kube-apiserver, as the sidecar ServiceAccount', function () {
  this.timeout(60_000);
  let server: ApiServer;
  let sidecar: KubeConfig;
  const kubectl = (...args: string[]) => execa('kubectl', ['--kubeconfig', server.adminKubeconfig, ...args]);
  const apply = (yaml: string) =>
    execa('kubectl', ['--kubeconfig', server.adminKubeconfig, 'apply', '-f', '-'], { input: yaml });
  const getIngress = async (name: string): Promise<V1Ingress> =>
    JSON.parse((await kubectl('-n', 'web', 'get', 'ingress', name, '-o', 'json')).stdout) as V1Ingress;

  /** What the informers would hold, listed with the sidecar's own (list/watch-only) permissions. */
  async function listAsSidecar(): Promise<Snapshot> {
    const net = sidecar.makeApiClient(NetworkingV1Api);
    const core = sidecar.makeApiClient(CoreV1Api);
    return {
      ...emptySnapshot(),
      ingresses: (await net.listIngressForAllNamespaces()).items,
      ingressClasses: (await net.listIngressClass()).items,
      services: (await core.listServiceForAllNamespaces()).items,
    };
  }

  const ingressYaml = (name: string, cls: string) => `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, namespace: web}
spec:
  ingressClassName: ${cls}
  rules:
    - host: ${name}.example.com
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]}
`;

  before(async function () {
    this.timeout(120_000);
    server = await startApiServer();
    await applyManifests(server.adminKubeconfig);
    await kubectl('create', 'namespace', 'web');
    // The base's publish Service, with the address a cloud load balancer would have given it.
    await kubectl(
      '-n',
      'ingress-sidecar',
      'patch',
      'service',
      'ingress-sidecar',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.10"},{"hostname":"lb.example.net"}]}}}',
    );
    await apply(
      ['ours', 'second'].map((n) => ingressYaml(n, 'nginx')).join('---\n') +
        '---\n' +
        ingressYaml('theirs', 'other') +
        '---\n' +
        ingressYaml('theirs-bare', 'other'),
    );
    await kubectl(
      '-n',
      'web',
      'patch',
      'ingress',
      'theirs',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.7"}]}}}',
    );
    sidecar = new KubeConfig();
    sidecar.loadFromFile(server.sidecarKubeconfig);
  });

  after(async () => {
    await server?.stop();
  });

  it('the leader writes the publish Service address to our Ingresses only, once; a class change clears it', async () => {
    const { logger, entries } = createMemoryLogger();
    const elector = new LeaderElector({
      kubeConfig: sidecar,
      namespace: 'ingress-sidecar',
      name: 'ingress-sidecar-leader',
      identity: 'pod-a',
      logger,
      leaseDurationMs: 4000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 500,
    });
    const sp = new StatusPublisher({
      kubeConfig: sidecar,
      ingressClass: 'nginx',
      publish: { kind: 'service', namespace: 'ingress-sidecar', name: 'ingress-sidecar' },
      leadership: elector,
      logger,
    });
    try {
      const theirsBefore = await getIngress('theirs');
      const bareBefore = await getIngress('theirs-bare');
      await elector.start();
      assert.equal(elector.isLeader(), true, JSON.stringify(entries));

      sp.update(await listAsSidecar());
      await sp.idle();
      const want = [{ ip: '203.0.113.10' }, { hostname: 'lb.example.net' }];
      for (const n of ['ours', 'second'])
        assert.deepEqual((await getIngress(n)).status?.loadBalancer?.ingress, want, n);
      assert.equal(sp.stats.writes, 2, JSON.stringify(entries.filter((e) => e.level !== 'debug')));
      assert.equal(sp.stats.failures, 0);

      // Nothing changed: more syncs write nothing, and resourceVersions stay put.
      const rv = (await getIngress('ours')).metadata?.resourceVersion;
      for (let i = 0; i < 3; i++) {
        sp.update(await listAsSidecar());
        await sp.idle();
      }
      assert.equal(sp.stats.writes, 2);
      assert.equal((await getIngress('ours')).metadata?.resourceVersion, rv);

      // Other classes: untouched, with or without a status of their own.
      assert.equal((await getIngress('theirs')).metadata?.resourceVersion, theirsBefore.metadata?.resourceVersion);
      assert.deepEqual((await getIngress('theirs')).status?.loadBalancer?.ingress, [{ ip: '198.51.100.7' }]);
      assert.equal((await getIngress('theirs-bare')).metadata?.resourceVersion, bareBefore.metadata?.resourceVersion);

      // "second" moves to another class: its status is cleared; "ours" keeps its own.
      await kubectl(
        '-n',
        'web',
        'patch',
        'ingress',
        'second',
        '--type=merge',
        '-p',
        '{"spec":{"ingressClassName":"other"}}',
      );
      sp.update(await listAsSidecar());
      await sp.idle();
      assert.deepEqual((await getIngress('second')).status?.loadBalancer?.ingress ?? [], []);
      assert.deepEqual((await getIngress('ours')).status?.loadBalancer?.ingress, want);
      assert.equal(sp.stats.writes, 3);

      // The load balancer's address changes: ours follow.
      await kubectl(
        '-n',
        'ingress-sidecar',
        'patch',
        'service',
        'ingress-sidecar',
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.11"}]}}}',
      );
      sp.update(await listAsSidecar());
      await sp.idle();
      assert.deepEqual((await getIngress('ours')).status?.loadBalancer?.ingress, [{ ip: '203.0.113.11' }]);
      assert.deepEqual((await getIngress('second')).status?.loadBalancer?.ingress ?? [], []);
    } finally {
      await sp.stop();
      await elector.stop();
    }
  });

  it('reads the publish Service itself (Role: get services) when the informers do not hold it', async () => {
    const { logger, entries } = createMemoryLogger();
    const leader = new FakeLeader(true);
    await kubectl(
      '-n',
      'web',
      'patch',
      'ingress',
      'ours',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"loadBalancer":{"ingress":null}}}',
    );
    const sp = new StatusPublisher({
      kubeConfig: sidecar,
      ingressClass: 'nginx',
      publish: { kind: 'service', namespace: 'ingress-sidecar', name: 'ingress-sidecar' },
      leadership: leader,
      logger,
    });
    try {
      const snap = await listAsSidecar();
      sp.update({ ...snap, services: [] });
      await sp.idle();
      assert.deepEqual(
        (await getIngress('ours')).status?.loadBalancer?.ingress,
        [{ ip: '203.0.113.11' }],
        JSON.stringify(entries),
      );
    } finally {
      await sp.stop();
    }
  });

  it('publishes --publish-address values as given', async () => {
    const { logger } = createMemoryLogger();
    const sp = new StatusPublisher({
      kubeConfig: sidecar,
      ingressClass: 'nginx',
      publish: { kind: 'addresses', addresses: parsePublishAddresses('192.0.2.1,edge.example.org') },
      leadership: new FakeLeader(true),
      logger,
    });
    try {
      sp.update(await listAsSidecar());
      await sp.idle();
      assert.deepEqual((await getIngress('ours')).status?.loadBalancer?.ingress, [
        { ip: '192.0.2.1' },
        { hostname: 'edge.example.org' },
      ]);
    } finally {
      await sp.stop();
    }
  });

  it('two replicas: only the leader writes; after its stop() the other writes at once from its last sync', async () => {
    const replicas = ['pod-a', 'pod-b'].map((identity) => {
      const { logger, entries } = createMemoryLogger();
      const elector = new LeaderElector({
        kubeConfig: sidecar,
        namespace: 'ingress-sidecar',
        name: 'status-handover',
        identity,
        logger,
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 250,
      });
      const sp = new StatusPublisher({
        kubeConfig: sidecar,
        ingressClass: 'nginx',
        publish: { kind: 'addresses', addresses: [{ ip: '192.0.2.77' }] },
        leadership: elector,
        logger,
      });
      return { elector, sp, entries };
    });
    try {
      await Promise.all(replicas.map((r) => r.elector.start()));
      await until(() => replicas.some((r) => r.elector.isLeader()));
      const snap = await listAsSidecar();
      for (const r of replicas) r.sp.update(snap);
      await Promise.all(replicas.map((r) => r.sp.idle()));
      const [leader, follower] = replicas[0]!.elector.isLeader()
        ? [replicas[0]!, replicas[1]!]
        : [replicas[1]!, replicas[0]!];
      assert.equal(leader.sp.stats.writes, 1);
      assert.equal(follower.sp.stats.writes, 0);
      assert.deepEqual((await getIngress('ours')).status?.loadBalancer?.ingress, [{ ip: '192.0.2.77' }]);

      // Someone overwrites it; both replicas sync, but the leader is shutting down (SIGTERM).
      await kubectl(
        '-n',
        'web',
        'patch',
        'ingress',
        'ours',
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.200"}]}}}',
      );
      await leader.sp.stop();
      const snap2 = await listAsSidecar();
      follower.sp.update(snap2);
      await follower.sp.idle();
      assert.equal(follower.sp.stats.writes, 0, 'not leading yet');
      await leader.elector.stop();
      await until(() => follower.elector.isLeader());
      await until(() => follower.sp.stats.writes === 1);
      assert.deepEqual((await getIngress('ours')).status?.loadBalancer?.ingress, [{ ip: '192.0.2.77' }]);
    } finally {
      for (const r of replicas) {
        await r.sp.stop();
        await r.elector.stop();
      }
    }
  });

  it('startClusterWriters, wired as the cli does: status from the leader, Events, the Lease released on stop()', async () => {
    const { logger, entries } = createMemoryLogger();
    await kubectl(
      '-n',
      'web',
      'patch',
      'ingress',
      'ours',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"loadBalancer":{"ingress":null}}}',
    );
    const writers = await startClusterWriters({
      kubeConfig: sidecar,
      ingressClass: 'nginx',
      publish: { kind: 'addresses', addresses: parsePublishAddresses('192.0.2.99') },
      electionId: 'wired',
      podName: 'pod-w',
      podNamespace: 'ingress-sidecar',
      nodeName: 'node-1',
      logger,
    });
    try {
      assert.equal(writers.leader?.isLeader(), true);
      for (let i = 0; i < 2; i++) {
        const snap = await listAsSidecar();
        writers.afterSync(snap, translate(snap, { ingressClass: 'nginx', httpPort: 80, ipv6: false }));
        await Promise.all([writers.status?.idle(), writers.events?.idle()]);
      }
      assert.deepEqual((await getIngress('ours')).status?.loadBalancer?.ingress, [{ ip: '192.0.2.99' }]);
      assert.equal(writers.status?.stats.writes, 1, JSON.stringify(entries));
      const events = (
        JSON.parse((await kubectl('-n', 'web', 'get', 'events', '-o', 'json')).stdout) as {
          items: Array<{ reason: string; involvedObject: { name: string }; source?: { host?: string } }>;
        }
      ).items;
      assert.deepEqual(events.map((e) => `${e.involvedObject.name} ${e.reason} ${e.source?.host}`).sort(), [
        'ours PartlyRejected node-1',
        'ours Served node-1',
      ]); // its Service does not exist
    } finally {
      await writers.stop();
    }
    const lease = JSON.parse(
      (await kubectl('-n', 'ingress-sidecar', 'get', 'lease', 'wired', '-o', 'json')).stdout,
    ) as { spec: { holderIdentity?: string } };
    assert.equal(lease.spec.holderIdentity ?? '', '');
  });

  it('the sidecar identity is refused what it does not need', async () => {
    const net = sidecar.makeApiClient(NetworkingV1Api);
    const core = sidecar.makeApiClient(CoreV1Api);
    await kubectl('-n', 'web', 'create', 'secret', 'generic', 'db', '--from-literal=password=hunter2');
    const refused = async (what: string, call: () => Promise<unknown>) => {
      await assert.rejects(call, (err: unknown) => err instanceof ApiException && err.code === 403, what);
    };
    await refused('delete an Ingress', () => net.deleteNamespacedIngress({ name: 'ours', namespace: 'web' }));
    await refused('get an Ingress', () => net.readNamespacedIngress({ name: 'ours', namespace: 'web' }));
    await refused('change an Ingress spec', () =>
      net.replaceNamespacedIngress({
        name: 'ours',
        namespace: 'web',
        body: { metadata: { name: 'ours', namespace: 'web' }, spec: { ingressClassName: 'x' } },
      }),
    );
    await refused('get a Secret', () => core.readNamespacedSecret({ name: 'db', namespace: 'web' }));
    await refused('create a Secret', () =>
      core.createNamespacedSecret({ namespace: 'web', body: { metadata: { name: 'x' } } }),
    );
    await refused('get a Service outside its namespace', () =>
      core.readNamespacedService({ name: 'kubernetes', namespace: 'default' }),
    );
    await refused('list Pods', () => core.listPodForAllNamespaces());
    // And kubectl agrees on the verbs the ClusterRole grants.
    const can = async (...args: string[]) =>
      (
        await execa('kubectl', ['--kubeconfig', server.sidecarKubeconfig, 'auth', 'can-i', ...args], { reject: false })
      ).stdout.trim();
    assert.equal(await can('list', 'secrets', '-A'), 'yes');
    assert.equal(await can('get', 'secrets', '-n', 'web'), 'no');
    assert.equal(await can('patch', 'ingresses.networking.k8s.io', '--subresource=status', '-n', 'web'), 'yes');
    assert.equal(await can('update', 'ingresses', '-n', 'web'), 'no');
    assert.equal(await can('delete', 'events', '-n', 'web'), 'no');
  });
});
