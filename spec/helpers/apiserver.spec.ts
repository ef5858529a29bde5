// The e2e fixture itself: a real kube-apiserver v1.20.2 with Debian's etcd on loopback (see
// spec/helpers/apiserver.ts), echo backends at non-loopback addresses in network namespaces
// (spec/helpers/netns.ts), and the machine's kubectl. Skips nothing: without the binary this fails
// and says to run scripts/kube-apiserver/build.sh.
import assert from 'node:assert/strict';
import http from 'node:http';
import { kubectl, kubectlOk, SIDECAR_USER, startApiServer, type ApiServer } from './apiserver.ts';
import { startNetnsBackend, type NetnsBackend } from './netns.ts';

function getJson(
  ip: string,
  port: number,
  urlPath: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port, path: urlPath, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Record<string, unknown> }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${ip}:${port}${urlPath} timed out`)));
    req.on('error', reject);
  });
}

const manifests = (backend: NetnsBackend): string => `
apiVersion: v1
kind: Namespace
metadata:
  name: fixture
---
apiVersion: v1
kind: Service
metadata:
  name: blue
  namespace: fixture
spec:
  ports:
    - name: http
      port: 80
      targetPort: ${backend.port}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: blue
  namespace: fixture
subsets:
  - addresses:
      - ip: ${backend.ip}
    ports:
      - name: http
        port: ${backend.port}
`;

describe('e2e fixture: kube-apiserver, etcd, netns backends', function () {
  this.timeout(120_000);
  let api: ApiServer | undefined;
  let backend: NetnsBackend | undefined;

  before(async function () {
    api = await startApiServer();
    backend = await startNetnsBackend('blue');
  });

  after(async function () {
    await backend?.stop();
    await api?.stop();
  });

  it('serves Ingress and IngressClass as networking.k8s.io/v1, EndpointSlice only as discovery.k8s.io/v1beta1', async function () {
    const versions = (await kubectlOk(api!.adminKubeconfig, ['api-versions'])).split('\n');
    assert.ok(versions.includes('networking.k8s.io/v1'), versions.join(' '));
    assert.ok(versions.includes('discovery.k8s.io/v1beta1'), versions.join(' '));
    assert.ok(!versions.includes('discovery.k8s.io/v1'), 'kube-apiserver 1.20 does not serve discovery.k8s.io/v1');
    const networking = await kubectlOk(api!.adminKubeconfig, [
      'api-resources',
      '--api-group=networking.k8s.io',
      '-o',
      'name',
    ]);
    assert.match(networking, /^ingresses\.networking\.k8s\.io$/m);
    assert.match(networking, /^ingressclasses\.networking\.k8s\.io$/m);
  });

  it('the netns backend answers from the host at its non-loopback address', async function () {
    assert.doesNotMatch(backend!.ip, /^127\./);
    const r = await getJson(backend!.ip, backend!.port, '/hello');
    assert.equal(r.status, 200);
    assert.equal(r.body.service, 'blue');
    assert.equal(r.body.url, '/hello');
  });

  it('kubectl apply of a Namespace, a Service without selector and Endpoints at the backend; kubectl get returns them', async function () {
    await kubectlOk(api!.adminKubeconfig, ['apply', '-f', '-'], manifests(backend!));
    const svc = JSON.parse(
      await kubectlOk(api!.adminKubeconfig, ['-n', 'fixture', 'get', 'service', 'blue', '-o', 'json']),
    ) as {
      spec: { clusterIP: string; ports: { port: number }[] };
    };
    assert.match(svc.spec.clusterIP, /^10\.213\./);
    assert.equal(svc.spec.ports[0]?.port, 80);
    const ep = JSON.parse(
      await kubectlOk(api!.adminKubeconfig, ['-n', 'fixture', 'get', 'endpoints', 'blue', '-o', 'json']),
    ) as {
      subsets: { addresses: { ip: string }[]; ports: { port: number }[] }[];
    };
    assert.equal(ep.subsets[0]?.addresses[0]?.ip, backend!.ip);
    assert.equal(ep.subsets[0]?.ports[0]?.port, backend!.port);
  });

  it('refuses loopback Endpoints (why the backends live in network namespaces)', async function () {
    const r = await kubectl(
      api!.adminKubeconfig,
      ['apply', '-f', '-'],
      'apiVersion: v1\nkind: Endpoints\nmetadata: {name: loop, namespace: fixture}\nsubsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 80}]}]\n',
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /loopback/);
  });

  it('RBAC is on: the sidecar identity may not list Secrets until granted; the admin may', async function () {
    const denied = await kubectl(api!.sidecarKubeconfig, ['get', 'secrets', '--all-namespaces']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden/);
    assert.ok(denied.stderr.includes(`"${SIDECAR_USER}"`), denied.stderr);
    await kubectlOk(api!.adminKubeconfig, ['get', 'secrets', '--all-namespaces']);
    const canI = await kubectl(api!.adminKubeconfig, [
      'auth',
      'can-i',
      'list',
      'secrets',
      '--all-namespaces',
      '--as',
      SIDECAR_USER,
    ]);
    assert.equal(canI.stdout.trim(), 'no');
  });

  it('restart(): kube-apiserver comes back on the same URL with the same objects', async function () {
    const url = api!.url;
    await api!.restart();
    assert.equal(api!.url, url);
    const ep = await kubectlOk(api!.adminKubeconfig, [
      '-n',
      'fixture',
      'get',
      'endpoints',
      'blue',
      '-o',
      'jsonpath={.subsets[0].addresses[0].ip}',
    ]);
    assert.equal(ep, backend!.ip);
  });
});
