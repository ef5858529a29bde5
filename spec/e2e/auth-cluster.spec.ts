// auth-type basic end to end (issue #4), as a user sees it: bin/ingress-sidecar driving a real
// nginx, with
// - the Kubernetes source: an Opaque Secret made by `kubectl create secret generic --from-file=auth`
//   (as ingress-nginx users do) on a real kube-apiserver, the sidecar as the ServiceAccount that
//   manifests/ grants, a backend in a network namespace;
// - TLS off (`--https-port 0`) with the directory source.
// Where the tests run as root, nginx's master runs as root and its workers as another user
// (nobody), as with the official nginx image and manifests/components/root-nginx: conf.d is made what the
// kubelet makes of an emptyDir with fsGroup (setgid, group = the workers' group), and the workers
// must read the htpasswd files through that group.
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAllYaml, type V1Deployment } from '@kubernetes/client-node';
import { execa, execaSync } from 'execa';
import { certDirFor } from '../../src/nginx/cert-store.ts';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { workerPids } from '../../src/nginx/process.ts';
import { runSidecar, startShopCluster, type ShopCluster } from '../helpers/cluster.ts';
import { freePort, httpGet, startNginx, type HttpAnswer, type RunningNginx } from '../helpers/nginx.ts';
import { backendYaml } from '../helpers/sidecar.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const AS_ROOT = process.getuid?.() === 0;

const apr1 = (password: string) => String(execaSync('openssl', ['passwd', '-apr1', password]).stdout).trim();
const basic = (user: string, password: string) => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

/** The primary group nginx's workers run as (from /proc), once they are there. */
async function workerGid(nginx: RunningNginx): Promise<number> {
  const [worker] = await workerPids(await nginx.masterPid());
  assert.ok(worker, 'nginx has a worker');
  const status = await readFile(`/proc/${worker}/status`, 'utf8');
  const [uid, gid] = ['Uid', 'Gid'].map((k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1]));
  assert.notEqual(uid, 0, 'as root, nginx runs its workers as another user: the case under test');
  return gid!;
}

/**
 * A work directory laid out like the pod: conf.d an emptyDir. As root, nginx's workers run as
 * another user: give conf.d to their group, setgid, as the kubelet does for fsGroup, and let them
 * traverse the work directory (/etc/nginx in a pod).
 */
async function podLikeConfDir(work: string, nginx: RunningNginx | null, confDir: string): Promise<number | null> {
  if (!AS_ROOT || !nginx) return null;
  const gid = await workerGid(nginx);
  await chmod(work, 0o711);
  await chown(confDir, 0, gid);
  await chmod(confDir, 0o2777);
  return gid;
}

/** Polls GET until `ok` holds (bounded); returns the last answer. */
async function until(
  port: number,
  host: string,
  headers: Record<string, string>,
  ok: (a: HttpAnswer) => boolean,
  timeoutMs = 20_000,
): Promise<HttpAnswer> {
  const deadline = Date.now() + timeoutMs;
  let last: HttpAnswer = { status: 0, headers: {}, body: '' };
  while (Date.now() < deadline) {
    last = await httpGet(port, host, '/', headers).catch((e: Error) => ({ status: 0, headers: {}, body: e.message }));
    if (ok(last)) {
      // For ~100 ms after a reload the old workers may still answer: ask once more after that.
      await sleep(250);
      last = await httpGet(port, host, '/', headers);
      if (ok(last)) return last;
    }
    await sleep(50);
  }
  return last;
}

const service = (a: HttpAnswer) =>
  a.status === 200 ? (JSON.parse(a.body) as { service: string }).service : String(a.status);

/** What the sidecar wrote for auth: the files in the certificate directory that hold no PEM block. */
async function htpasswdFiles(
  confDir: string,
): Promise<Array<{ name: string; mode: number; gid: number; content: string }>> {
  const dir = certDirFor(confDir);
  const out = [];
  for (const name of (await readdir(dir)).sort()) {
    const content = await readFile(path.join(dir, name), 'utf8');
    if (content.includes('-----BEGIN')) continue;
    const st = await stat(path.join(dir, name));
    out.push({ name, mode: st.mode & 0o7777, gid: st.gid, content });
  }
  return out;
}

describe('auth-type basic end to end: cluster mode (Opaque Secret from kubectl create secret generic)', function () {
  this.timeout(180_000);
  let cluster: ShopCluster;
  let nginx: RunningNginx;
  let work: string;
  let confDir: string;
  let sidecar: ReturnType<typeof runSidecar> | undefined;
  let httpPort: number;
  let gid: number | null;
  const kubectl = (args: string[], input?: string) => cluster.kubectl(args, input);

  /** Creates or replaces the Secret the way its users do: kubectl create secret generic --from-file=auth. */
  async function authSecret(lines: string): Promise<void> {
    const file = path.join(work, 'auth');
    await writeFile(file, lines, { mode: 0o600 });
    const yaml = await kubectl([
      '-n',
      'shop',
      'create',
      'secret',
      'generic',
      'basic-auth',
      `--from-file=auth=${file}`,
      '--dry-run=client',
      '-o',
      'yaml',
    ]);
    await kubectl(['apply', '-f', '-'], yaml);
    await rm(file);
  }

  before(async () => {
    const [statusPort, httpsPort] = [await freePort(), await freePort()];
    httpPort = await freePort();
    cluster = await startShopCluster('auth-cluster-', ['blue']);
    ({ nginx, work, confDir } = cluster);
    gid = await podLikeConfDir(work, nginx, confDir);
    sidecar = runSidecar([
      '--kubeconfig',
      cluster.api.sidecarKubeconfig,
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

  it('401 without or with wrong credentials, 200 with them; a changed Secret changes the password', async () => {
    await authSecret(`# staff\nalice:${apr1('s3cret')}\n`);
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: staff
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: basic-auth
    nginx.ingress.kubernetes.io/auth-realm: Staff only
spec:
  ingressClassName: nginx
  rules:
  - host: staff.shop.test
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: blue, port: {name: http}}}}]
`,
    );
    const denied = await until(httpPort, 'staff.shop.test', {}, (a) => a.status === 401);
    assert.equal(denied.status, 401, `sidecar output:\n${sidecar!.output().slice(-3000)}`);
    assert.equal(denied.headers['www-authenticate'], 'Basic realm="Staff only"');
    assert.equal((await httpGet(httpPort, 'staff.shop.test', '/', basic('alice', 'wrong'))).status, 401);
    // Not 500: nginx's workers could read the file.
    assert.equal(
      service(await httpGet(httpPort, 'staff.shop.test', '/', basic('alice', 's3cret'))),
      'blue',
      await nginx.errorLog(),
    );

    const [file] = await htpasswdFiles(confDir);
    assert.ok(file, 'an htpasswd file in the certificate directory');
    assert.equal(file.mode, 0o640);
    assert.match(file.content, /^alice:\$apr1\$/m);
    if (gid !== null) assert.equal(file.gid, gid, "the file has the group of nginx's workers (fsGroup)");

    // Rotation: a new password works, the old one no longer does.
    await authSecret(`alice:${apr1('n3w-pass')}\nbob:${apr1('b0b')}\n`);
    const rotated = await until(httpPort, 'staff.shop.test', basic('alice', 'n3w-pass'), (a) => a.status === 200);
    assert.equal(service(rotated), 'blue', sidecar!.output().slice(-3000));
    assert.equal((await httpGet(httpPort, 'staff.shop.test', '/', basic('alice', 's3cret'))).status, 401);
    assert.equal(service(await httpGet(httpPort, 'staff.shop.test', '/', basic('bob', 'b0b'))), 'blue');
    assert.equal((await httpGet(httpPort, 'staff.shop.test', '/')).status, 401);
    // The old file is removed once nginx runs the new configuration.
    const deadline = Date.now() + 5000;
    while ((await htpasswdFiles(confDir)).length > 1 && Date.now() < deadline) await sleep(50);
    const files = await htpasswdFiles(confDir);
    assert.equal(files.length, 1, files.map((f) => f.name).join(' '));
    assert.match(files[0]!.content, /^alice:\$apr1\$.*\nbob:\$apr1\$/);
  });
});

describe('auth-type basic end to end: TLS off (--https-port 0), directory source', function () {
  this.timeout(60_000);
  let nginx: RunningNginx;
  let echo: EchoServer;
  let work: string;
  let sidecar: ReturnType<typeof runSidecar> | undefined;

  after(async () => {
    sidecar?.proc.kill('SIGTERM');
    await sidecar?.proc;
    await nginx?.stop();
    await echo?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('401 without credentials, 200 with them, served over plain HTTP with no HTTPS listener', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'auth-notls-'));
    const confDir = path.join(work, 'conf.d');
    const watchDir = path.join(work, 'manifests');
    await mkdir(confDir);
    await mkdir(watchDir);
    echo = await startEcho('alpha');
    nginx = await startNginx({ confDir });
    const gid = await podLikeConfDir(work, nginx, confDir);
    await writeFile(
      path.join(watchDir, 'app.yaml'),
      `${backendYaml('alpha', echo.port)}---
apiVersion: v1
kind: Secret
metadata: {name: basic-auth, namespace: default}
type: Opaque
data:
  auth: ${Buffer.from(`alice:${apr1('s3cret')}\n`).toString('base64')}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: private
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: basic-auth}
spec:
  ingressClassName: nginx
  rules:
  - host: private.test
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: alpha, port: {name: http}}}}]
`,
    );
    const httpPort = await freePort();
    sidecar = runSidecar([
      '--watch-dir',
      watchDir,
      '--conf-dir',
      confDir,
      '--nginx-pid-file',
      nginx.pidFile,
      '--http-port',
      String(httpPort),
      '--https-port',
      '0',
      '--no-ipv6',
      '--listen',
      `127.0.0.1:${await freePort()}`,
      '--debounce-ms',
      '20',
      '--access-log',
      'off',
    ]);
    const denied = await until(httpPort, 'private.test', {}, (a) => a.status === 401);
    assert.equal(
      denied.status,
      401,
      `not 503: the htpasswd file has a place without TLS\nsidecar output:\n${sidecar.output().slice(-3000)}`,
    );
    assert.equal(denied.headers['www-authenticate'], 'Basic realm="Authentication Required"');
    assert.equal((await httpGet(httpPort, 'private.test', '/', basic('alice', 'nope'))).status, 401);
    assert.equal(
      service(await httpGet(httpPort, 'private.test', '/', basic('alice', 's3cret'))),
      'alpha',
      await nginx.errorLog(),
    );
    assert.doesNotMatch(sidecar.output(), /partly rejected/);

    const conf = (
      await Promise.all(
        (await readdir(confDir)).filter((f) => f.endsWith('.conf')).map((f) => readFile(path.join(confDir, f), 'utf8')),
      )
    ).join('\n');
    assert.doesNotMatch(conf, /\bssl\b/, 'no TLS anywhere');
    const [file] = await htpasswdFiles(confDir);
    assert.equal(file?.mode, 0o640);
    if (gid !== null) assert.equal(file?.gid, gid);
  });
});

describe('manifests/components/root-nginx', () => {
  it("sets fsGroup 101, so that nginx's workers (user nginx) can read the htpasswd files the root sidecar writes", async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'root-nginx-'));
    try {
      await writeFile(
        path.join(work, 'deploy.yaml'),
        `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {ingress-sidecar.dev/inject: "true"}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.30.4"}]
`,
      );
      const rel = (p: string) => path.relative(work, path.join(ROOT, p));
      await writeFile(
        path.join(work, 'kustomization.yaml'),
        `resources: [deploy.yaml]\ncomponents: [${rel('manifests/components/sidecar')}, ${rel('manifests/components/root-nginx')}]\n`,
      );
      const out = await execa('kubectl', ['kustomize', work]);
      const deployment = (loadAllYaml(out.stdout) as V1Deployment[]).find((o) => o.kind === 'Deployment')!;
      const pod = deployment.spec!.template.spec!;
      assert.equal(pod.securityContext?.fsGroup, 101);
      assert.equal(
        pod.containers.find((c) => c.name === 'ingress-sidecar')?.securityContext?.runAsUser,
        0,
        'the sidecar writes as root',
      );
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
