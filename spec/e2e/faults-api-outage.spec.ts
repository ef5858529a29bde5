// Fault: the Kubernetes API server unreachable for a minute, with bin/ingress-sidecar in cluster
// mode as the ServiceAccount (manifests/ RBAC), a real nginx and backends in network namespaces.
// What a client sees: every route keeps answering through the outage, sampled every second, and
// the status endpoint keeps answering; once the API is back, changes made then (an update, a
// delete, a create) converge.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { runSidecar, shopIngressYaml as ingressYaml, startShopCluster, type ShopCluster } from '../helpers/cluster.ts';
import { freePort, httpGet, whoAnswers } from '../helpers/nginx.ts';

const OUTAGE_MS = 60_000;

describe('faults: the API server unreachable for a minute (bin/ingress-sidecar in cluster mode)', function () {
  this.timeout(240_000);
  let cluster: ShopCluster;
  let sidecar: ReturnType<typeof runSidecar> | undefined;
  let httpPort: number;
  let statusPort: number;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input);
  const output = () => sidecar?.output() ?? '';

  /** Which backend answers for `host` through nginx, or the status (0: no answer). */
  const who = (host: string) => whoAnswers(httpPort, host);
  const status = async (p: string) => (await httpGet(statusPort, '127.0.0.1', p).catch(() => ({ status: 0 }))).status;

  before(async function () {
    [httpPort, statusPort] = [await freePort(), await freePort()];
    const httpsPort = await freePort();
    cluster = await startShopCluster('faults-api-', ['blue', 'green']);
    const { api, confDir, nginx } = cluster;
    await kubectl(
      ['apply', '-f', '-'],
      [
        ingressYaml('one', 'one.shop.test', 'blue'),
        ingressYaml('two', 'two.shop.test', 'green'),
        ingressYaml('three', 'three.shop.test', 'blue'),
      ].join('---\n'),
    );
    sidecar = runSidecar([
      '--kubeconfig',
      api.sidecarKubeconfig,
      '--conf-dir',
      confDir,
      '--nginx-pid-file',
      nginx.pidFile,
      '--http-port',
      String(httpPort),
      '--https-port',
      String(httpsPort),
      '--no-ipv6',
      '--listen',
      `127.0.0.1:${statusPort}`,
      // As deployed: status publishing, so leader election and status writes face the outage too.
      '--publish-address',
      '203.0.113.10',
      '--debounce-ms',
      '20',
      '--access-log',
      'off',
    ]);
  });

  after(async () => {
    sidecar?.proc.kill('SIGTERM');
    await sidecar?.proc;
    await cluster?.stop();
  });

  it('keeps serving every route and answering /healthz through the outage, and converges after', async () => {
    const expected: Record<string, string> = {
      'one.shop.test': 'blue',
      'two.shop.test': 'green',
      'three.shop.test': 'blue',
    };
    const deadline = Date.now() + 30_000;
    while (
      Date.now() < deadline &&
      !(await Promise.all(Object.entries(expected).map(async ([h, b]) => (await who(h)) === b))).every(Boolean)
    )
      await sleep(100);
    for (const [host, backend] of Object.entries(expected))
      assert.equal(await who(host), backend, `${host} before the outage\n${output().slice(-2000)}`);
    assert.equal(await status('/healthz'), 200);

    // The outage: every second, every route through nginx and the sidecar's status endpoint.
    const stopping = Date.now();
    await cluster.api.stopApiserverProcess();
    const stoppedMs = Date.now() - stopping;
    const down = Date.now();
    const wrong: string[] = [];
    let samples = 0;
    for (let i = 0; i < 200 && Date.now() - down < OUTAGE_MS; i++) {
      const tick = Date.now();
      const at = `${((tick - down) / 1000).toFixed(1)} s`;
      const answers = await Promise.all([
        ...Object.entries(expected).map(async ([h, b]) => [h, b, await who(h)] as const),
        (async () => ['/healthz', '200', String(await status('/healthz'))] as const)(),
        (async () => ['/readyz', '200', String(await status('/readyz'))] as const)(),
      ]);
      for (const [what, want, got] of answers)
        if (got !== want) wrong.push(`${at}: ${what} answered ${got}, not ${want}`);
      samples++;
      await sleep(Math.max(0, 1000 - (Date.now() - tick)));
    }
    assert.deepEqual(wrong, [], `${samples} samples`);
    assert.ok(samples >= 55, `${samples} samples`);
    assert.match(
      output(),
      /Kubernetes API: watching Ingresses failed; retrying with backoff, the last known ones keep serving/,
    );

    // Back: change objects right away; each resource relists within its 5 s backoff ceiling.
    const back = Date.now();
    await cluster.api.startApiserverProcess();
    const startedMs = Date.now() - back;
    const changed = Date.now();
    await kubectl(
      ['apply', '-f', '-'],
      ingressYaml('one', 'one.shop.test', 'green') + '---\n' + ingressYaml('four', 'four.shop.test', 'green'),
    );
    await kubectl(['-n', 'shop', 'delete', 'ingress', 'two']);
    const want: Record<string, string> = {
      'one.shop.test': 'green',
      'two.shop.test': '404',
      'three.shop.test': 'blue',
      'four.shop.test': 'green',
    };
    const healthz = new Set<number>();
    let got: Record<string, string> = {};
    for (let i = 0; i < 1000 && Date.now() - changed < 15_000; i++) {
      got = Object.fromEntries(await Promise.all(Object.keys(want).map(async (h) => [h, await who(h)] as const)));
      healthz.add(await status('/healthz'));
      if (Object.entries(want).every(([h, b]) => got[h] === b)) break;
      // Until then the last known routes serve: three never changes.
      assert.equal(got['three.shop.test'], 'blue');
      await sleep(250);
    }
    const convergedMs = Date.now() - changed;
    assert.deepEqual(got, want, output().slice(-3000));
    assert.deepEqual([...healthz], [200]);
    assert.match(output(), /Kubernetes API: watching Ingresses again/);
    process.stdout.write(
      `      (${samples} samples, all good; kube-apiserver stopped in ${stoppedMs} ms, started in ${startedMs} ms; ` +
        `changes converged ${convergedMs} ms after they were applied)\n`,
    );
  });
});
