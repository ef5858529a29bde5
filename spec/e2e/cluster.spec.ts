// The product end to end, as it runs in a pod: bin/ingress-sidecar against a real kube-apiserver,
// as the ServiceAccount that manifests/ grants, driving a real nginx; backends at non-loopback
// addresses in network namespaces; everything applied with kubectl, asserted as a client or a
// `kubectl get` user sees it.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCert } from '../helpers/certs.ts';
import {
  eventuallyAnswers,
  shopIngressYaml as ingressYaml,
  sidecarPod,
  startShopCluster,
  waitFor,
  type ShopCluster,
} from '../helpers/cluster.ts';
import { freePort, httpGet } from '../helpers/nginx.ts';

describe('e2e: bin/ingress-sidecar in cluster mode', function () {
  this.timeout(180_000);
  let cluster: ShopCluster;
  const sidecar = sidecarPod('sidecar-0');
  let httpPort: number;
  let httpsPort: number;
  let statusPort: number;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input);

  function startSidecar(): void {
    sidecar.start([
      '--kubeconfig',
      cluster.api.sidecarKubeconfig,
      '--conf-dir',
      cluster.confDir,
      '--nginx-pid-file',
      cluster.nginx.pidFile,
      '--http-port',
      String(httpPort),
      '--https-port',
      String(httpsPort),
      '--https-redirect-port',
      String(httpsPort),
      '--no-ipv6',
      '--listen',
      `127.0.0.1:${statusPort}`,
      '--publish-address',
      '203.0.113.10',
      '--debounce-ms',
      '20',
      '--access-log',
      'off',
    ]);
  }

  const stopSidecar = () => sidecar.stop();

  /** Which backend answers through nginx, polled (bounded) until `expected`. */
  const eventually = (host: string, expected: string, timeoutMs = 15_000) =>
    eventuallyAnswers(httpPort, host, expected, timeoutMs);

  const until = (what: string, cond: () => Promise<boolean>, timeoutMs = 15_000) =>
    waitFor(what, cond, sidecar.output, timeoutMs);

  before(async () => {
    [httpPort, httpsPort, statusPort] = [await freePort(), await freePort(), await freePort()];
    cluster = await startShopCluster('e2e-cluster-', ['blue', 'green']);
    startSidecar();
  });

  after(async () => {
    await stopSidecar();
    await cluster?.stop();
  });

  it('serves an applied Ingress, follows an update, and answers 404 after delete', async () => {
    await kubectl(['apply', '-f', '-'], ingressYaml('web', 'web.shop.test', 'blue'));
    assert.equal(await eventually('web.shop.test', 'blue'), 'blue');
    await kubectl(['apply', '-f', '-'], ingressYaml('web', 'web.shop.test', 'green'));
    assert.equal(await eventually('web.shop.test', 'green'), 'green');
    await kubectl(['-n', 'shop', 'delete', 'ingress', 'web']);
    assert.equal(await eventually('web.shop.test', '404'), '404');
  });

  it('writes the published address into the status of our Ingresses only, and clears it when the class changes', async () => {
    await kubectl(['apply', '-f', '-'], ingressYaml('status', 'status.shop.test', 'blue'));
    const address = () =>
      kubectl(['-n', 'shop', 'get', 'ingress', 'status', '-o', 'jsonpath={.status.loadBalancer.ingress[*].ip}']);
    await until('the status address', async () => (await address()) === '203.0.113.10');
    await kubectl(
      ['apply', '-f', '-'],
      ingressYaml('status', 'status.shop.test', 'blue').replace('ingressClassName: nginx', 'ingressClassName: other'),
    );
    await until('the status to be cleared', async () => (await address()) === '');
    assert.equal(await eventually('status.shop.test', '404'), '404');
  });

  it('terminates TLS from a Secret applied with kubectl', async () => {
    const cert = makeCert({ dns: ['secure.shop.test'] });
    await kubectl([
      '-n',
      'shop',
      'create',
      'secret',
      'tls',
      'secure-tls',
      '--cert',
      await writeTemp('crt.pem', cert.crt),
      '--key',
      await writeTemp('key.pem', cert.key),
    ]);
    await kubectl(
      ['apply', '-f', '-'],
      ingressYaml(
        'secure',
        'secure.shop.test',
        'green',
        '  tls: [{hosts: [secure.shop.test], secretName: secure-tls}]\n',
      ),
    );
    await until(
      'HTTP to redirect',
      async () => (await httpGet(httpPort, 'secure.shop.test', '/').catch(() => ({ status: 0 }))).status === 308,
    );
    // The Ingress and its Secret come through separate watches: a pass may see the Ingress first
    // and serve the host with the default certificate until the Secret's event arrives.
    const get = () =>
      new Promise<{ status: number; body: string; subject: string }>((resolve, reject) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port: httpsPort,
            servername: 'secure.shop.test',
            headers: { host: 'secure.shop.test' },
            ca: cert.crt,
            timeout: 5000,
          },
          (res) => {
            const subject = String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '');
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body, subject }));
          },
        );
        req.on('error', reject);
      });
    await until("the Secret's certificate over HTTPS", async () => (await get().catch(() => null)) !== null);
    const served = await get();
    assert.equal(served.status, 200);
    assert.equal((JSON.parse(served.body) as { service: string }).service, 'green');
    assert.equal(served.subject, 'secure.shop.test');
  });

  it('rejects a bad Ingress alone, with a Warning Event, while the others keep serving', async () => {
    await kubectl(['apply', '-f', '-'], ingressYaml('good', 'good.shop.test', 'blue'));
    await kubectl(['apply', '-f', '-'], ingressYaml('bad', 'bad.shop.test', 'nonexistent'));
    assert.equal(await eventually('good.shop.test', 'blue'), 'blue');
    assert.equal(await eventually('bad.shop.test', '503'), '503');
    const events = async () =>
      kubectl([
        '-n',
        'shop',
        'get',
        'events',
        '--field-selector',
        'involvedObject.name=bad',
        '-o',
        'jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\\n"}{end}',
      ]);
    await until('a Warning Event on the bad Ingress', async () =>
      /Warning PartlyRejected: .*Service shop\/nonexistent not found/.test(await events()),
    );
    assert.match(await events(), /^Warning PartlyRejected/m);
  });

  it('keeps routes through an API server restart and applies later changes', async () => {
    await kubectl(['apply', '-f', '-'], ingressYaml('steady', 'steady.shop.test', 'blue'));
    assert.equal(await eventually('steady.shop.test', 'blue'), 'blue');
    await cluster.api.stopApiserverProcess();
    await sleep(1000);
    assert.equal(await eventually('steady.shop.test', 'blue', 2000), 'blue', 'routes stay while the API is down');
    await cluster.api.startApiserverProcess();
    await kubectl(['apply', '-f', '-'], ingressYaml('steady', 'steady.shop.test', 'green'));
    assert.equal(await eventually('steady.shop.test', 'green', 40_000), 'green');
  });

  it('does not reload nginx when restarted with nothing changed, and exits 0 on SIGTERM', async () => {
    await until(
      'the status endpoint to be ready',
      async () => (await httpGet(statusPort, '127.0.0.1', '/readyz').catch(() => ({ status: 0 }))).status === 200,
    );
    const reloads = (text: string) => (text.match(/"message":"nginx reloaded"/g) ?? []).length;
    assert.equal(await stopSidecar(), 0);
    startSidecar();
    await until(
      'the restarted sidecar to be ready',
      async () => (await httpGet(statusPort, '127.0.0.1', '/readyz').catch(() => ({ status: 0 }))).status === 200,
    );
    await sleep(500);
    assert.equal(reloads(sidecar.output()), 0, sidecar.output().slice(-2000));
    assert.equal(await eventually('steady.shop.test', 'green'), 'green');
  });

  async function writeTemp(name: string, content: string): Promise<string> {
    const file = path.join(cluster.work, name);
    await writeFile(file, content, { mode: 0o600 });
    return file;
  }
});
