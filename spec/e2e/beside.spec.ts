// ingress-nginx's switches for running beside another controller, end to end: bin/ingress-sidecar
// against a real kube-apiserver, as the ServiceAccount that manifests/ grants, driving a real
// nginx, with a backend in a network namespace; asserted as a client or a `kubectl get` user sees it.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventuallyAnswers, sidecarPod, startShopCluster, waitFor, type ShopCluster } from '../helpers/cluster.ts';
import { freePort } from '../helpers/nginx.ts';

const ELECTION_ID = 'beside-leader';

describe('e2e: --update-status=false and --watch-ingress-without-class in cluster mode', function () {
  this.timeout(180_000);
  let cluster: ShopCluster;
  const sidecar = sidecarPod('beside-0');
  let httpPort: number;

  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input);
  const output = () => sidecar.output();

  function startSidecar(extra: string[]): void {
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
      '0',
      '--no-ipv6',
      '--listen',
      '127.0.0.1:0',
      '--publish-address',
      '203.0.113.10',
      '--election-id',
      ELECTION_ID,
      '--debounce-ms',
      '20',
      '--access-log',
      'off',
      ...extra,
    ]);
  }

  const stopSidecar = async (): Promise<void> => {
    await sidecar.stop();
  };

  const until = (what: string, cond: () => Promise<boolean>, timeoutMs = 15_000) =>
    waitFor(what, cond, output, timeoutMs);

  /** Which backend answers through nginx (or the status code), polled until `expected`. */
  const eventually = (host: string, expected: string) => eventuallyAnswers(httpPort, host, expected);

  const address = (name: string) =>
    kubectl(['-n', 'shop', 'get', 'ingress', name, '-o', 'jsonpath={.status.loadBalancer.ingress[*].ip}']);
  const servedEvent = async (name: string) =>
    /Normal Served/.test(
      await kubectl([
        '-n',
        'shop',
        'get',
        'events',
        '--field-selector',
        `involvedObject.name=${name}`,
        '-o',
        'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}',
      ]),
    );

  /** `class` null: neither spec.ingressClassName nor the annotation. */
  const ingressYaml = (name: string, host: string, cls: string | null) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, namespace: shop}
spec:
${cls === null ? '' : `  ingressClassName: ${cls}\n`}  rules:
  - host: ${host}
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: blue, port: {name: http}}}}]
`;

  before(async () => {
    httpPort = await freePort();
    // The IngressClass nginx of manifests/ (applied by the fixture) is not the default one: the
    // DefaultIngressClass admission plugin leaves a class-less Ingress without a class.
    cluster = await startShopCluster('e2e-beside-', ['blue']);
  });

  after(async () => {
    await stopSidecar();
    await cluster?.stop();
  });

  it('serves Ingresses with and without a class but never writes their status, nor takes a Lease; Events still go out', async () => {
    startSidecar(['--update-status=false', '--watch-ingress-without-class']);
    await kubectl(
      ['apply', '-f', '-'],
      ingressYaml('named', 'named.shop.test', 'nginx') +
        '---\n' +
        ingressYaml('classless', 'classless.shop.test', null) +
        '---\n' +
        ingressYaml('theirs', 'theirs.shop.test', 'other'),
    );
    assert.equal(
      await kubectl(['-n', 'shop', 'get', 'ingress', 'classless', '-o', 'jsonpath={.spec.ingressClassName}']),
      '',
      'still without a class',
    );
    assert.equal(await eventually('named.shop.test', 'blue'), 'blue');
    assert.equal(await eventually('classless.shop.test', 'blue'), 'blue');
    assert.equal(await eventually('theirs.shop.test', '404'), '404', 'another class is not ours');
    // The Served Events come from the same pass that would have written status.
    await until(
      'Served Events on both Ingresses',
      async () => (await servedEvent('named')) && (await servedEvent('classless')),
    );
    for (let i = 0; i < 10; i++) {
      assert.equal(await address('named'), '', 'no status written');
      assert.equal(await address('classless'), '', 'no status written');
      await sleep(200);
    }
    assert.equal(await kubectl(['-n', 'ingress-sidecar', 'get', 'leases', '-o', 'name']), '', 'no Lease');
    assert.doesNotMatch(output(), /Ingress status updated/);
    await stopSidecar();
  });

  // The Ingresses of the test above, now with a sidecar that writes status.
  it('with status on (the default), publishes to the class-less Ingress it serves, and not to another class', async () => {
    startSidecar(['--watch-ingress-without-class']);
    await until('the status of the class-less Ingress', async () => (await address('classless')) === '203.0.113.10');
    await until('the status of the named Ingress', async () => (await address('named')) === '203.0.113.10');
    assert.equal(await address('theirs'), '');
    await stopSidecar();
  });
});
