// A real Kubernetes API server for the tests: Debian's etcd and kube-apiserver v1.20.2 (built once
// per machine by scripts/kube-apiserver/build.sh) on random loopback ports, in a temp directory.
//
// - TLS: a throwaway CA and a serving cert for 127.0.0.1/localhost, made with openssl; the
//   kubeconfigs carry the CA (certificate-authority-data), so clients verify the server.
// - Authentication: a static token file with two users:
//     admin (groups system:masters)                                     -> adminKubeconfig
//     system:serviceaccount:ingress-sidecar:ingress-sidecar             -> sidecarKubeconfig
//       (groups system:serviceaccounts, system:serviceaccounts:ingress-sidecar,
//        system:authenticated), i.e. what the sidecar's ServiceAccount token would authenticate as.
// - Authorization: RBAC only. The sidecar user can do nothing until roles are applied.
// - No controllers run: nothing creates Endpoints, EndpointSlices, ServiceAccount tokens or
//   default ServiceAccounts, and a deleted namespace stays Terminating. Create Endpoints yourself.
//   The ServiceAccount admission plugin (needs the token controller) is off; DefaultIngressClass
//   and the other default plugins are on, as in a real cluster.
// - --endpoint-reconciler-type=none: the server does not publish its own address in
//   default/kubernetes (a loopback address would be refused).
//
// Every test that calls startApiServer() must call stop() (an after hook); a test process that
// exits without it still kills etcd and kube-apiserver and removes the temp directory on 'exit'.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './nginx.ts';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const buildScript = path.join(repoRoot, 'scripts', 'kube-apiserver', 'build.sh');

/** The Service ClusterIP range: private, and apart from the netns backends' 10.213.64.0/18. */
export const SERVICE_CLUSTER_IP_RANGE = '10.213.0.0/20';
export const SIDECAR_USER = 'system:serviceaccount:ingress-sidecar:ingress-sidecar';

export interface ApiServer {
  /** https://127.0.0.1:PORT */
  url: string;
  port: number;
  /** kubeconfig files (context "test") for the admin and for the sidecar's identity. */
  adminKubeconfig: string;
  sidecarKubeconfig: string;
  adminToken: string;
  sidecarToken: string;
  /** PEM of the CA that signed the serving cert. */
  caFile: string;
  /** http://127.0.0.1:PORT of etcd */
  etcdUrl: string;
  /** The temp directory: certs, tokens, kubeconfigs, etcd data, and the logs below. */
  dir: string;
  apiserverLog: string;
  etcdLog: string;
  /** Kills kube-apiserver and etcd and removes the temp directory. Safe to call twice. */
  stop(): Promise<void>;
  /** Stops kube-apiserver and starts it again on the same port with the same etcd (same data). */
  restart(): Promise<void>;
  /** Stops kube-apiserver only (for tests of an outage); start it again with startApiserverProcess(). */
  stopApiserverProcess(): Promise<void>;
  startApiserverProcess(): Promise<void>;
}

/** Where build.sh puts (or would put) the binary; KUBE_APISERVER overrides. */
export function kubeApiserverBinary(): string {
  if (process.env.KUBE_APISERVER) return process.env.KUBE_APISERVER;
  return execFileSync('bash', [buildScript, '--print-path'], { encoding: 'utf8' }).trim();
}

function etcdBinary(): string {
  if (process.env.ETCD) return process.env.ETCD;
  for (const candidate of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (existsSync(candidate)) return candidate;
  return 'etcd';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir, timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('openssl not found: apt-get install openssl', { cause: err });
    throw new Error(`openssl ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

async function makeCerts(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    dir,
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '3650',
    '-subj',
    '/CN=ingress-sidecar-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  await openssl(dir, 'req', ...ec, '-keyout', 'serving.key', '-out', 'serving.csr', '-subj', '/CN=kube-apiserver');
  await writeFile(
    path.join(dir, 'serving.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' +
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  );
  await openssl(
    dir,
    'x509',
    '-req',
    '-in',
    'serving.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '3650',
    '-out',
    'serving.crt',
    '-extfile',
    'serving.ext',
  );
  // Service-account token signing keys, required by 1.20 (TokenRequest).
  await openssl(dir, 'genrsa', '-out', 'sa.key', '2048');
  await openssl(dir, 'rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

function kubeconfig(url: string, caPem: string, user: string, token: string): string {
  // JSON is YAML: kubectl and client-node read it as a kubeconfig.
  return (
    JSON.stringify(
      {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'test',
            cluster: { server: url, 'certificate-authority-data': Buffer.from(caPem).toString('base64') },
          },
        ],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user } }],
        'current-context': 'test',
        preferences: {},
      },
      null,
      2,
    ) + '\n'
  );
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
}

function startProcess(binary: string, args: string[], logFile: string, what: string): Proc {
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(binary, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  child.once('error', (err) => {
    void writeFile(logFile, `${what}: cannot start ${binary}: ${err.message}\n`, { flag: 'a' });
  });
  return { child, exited };
}

async function stopProcess(proc: Proc | undefined, graceMs = 10_000): Promise<void> {
  if (!proc) return;
  const { child } = proc;
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await proc.exited;
    clearTimeout(timer);
  }
  await proc.exited;
}

function isRunning(proc: Proc): boolean {
  return proc.child.exitCode === null && proc.child.signalCode === null && proc.child.pid !== undefined;
}

function get(url: string, opts: { ca?: string; token?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        method: 'GET',
        timeout: 3000,
        agent: false,
        ca: opts.ca,
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(
  what: string,
  proc: Proc,
  logFile: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isRunning(proc))
      throw new Error(
        `${what} exited (${proc.child.exitCode ?? proc.child.signalCode}) while starting; log ${logFile}:\n${tail(logFile)}`,
      );
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`${what} not ready within ${timeoutMs / 1000} s; log ${logFile}:\n${tail(logFile)}`);
    await sleep(200);
  }
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the machine's kubectl with `--kubeconfig FILE`; `input` goes to its stdin (for `apply -f -`).
 * Resolves whatever the exit code; use kubectlOk() when anything but 0 is a failure.
 */
export function kubectl(
  kubeconfigFile: string,
  args: string[],
  input?: string,
  timeoutMs = 30_000,
): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.KUBECTL ?? 'kubectl', ['--kubeconfig', kubeconfigFile, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new Error('kubectl not found on PATH (Debian: apt-get install kubernetes-client)')
          : err,
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === 'SIGKILL' ? 124 : 1), stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

export async function kubectlOk(kubeconfigFile: string, args: string[], input?: string): Promise<string> {
  const r = await kubectl(kubeconfigFile, args, input);
  if (r.code !== 0)
    throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

const live = new Set<Proc>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.child.kill('SIGKILL');
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

/**
 * Starts etcd and kube-apiserver. Fails with a message naming scripts/kube-apiserver/build.sh when
 * the binary has not been built on this machine.
 */
export async function startApiServer(opts: { readyTimeoutMs?: number } = {}): Promise<ApiServer> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
  const apiserverBin = kubeApiserverBinary();
  if (!existsSync(apiserverBin)) {
    throw new Error(
      `kube-apiserver is not built on this machine (expected ${apiserverBin}): run scripts/kube-apiserver/build.sh (once per machine, about 4 minutes; .ci/run does it)`,
    );
  }
  const etcdBin = etcdBinary();
  if (etcdBin === 'etcd' || !existsSync(etcdBin)) {
    throw new Error('etcd not found: apt-get install etcd-server (or set ETCD=/path/to/etcd)');
  }
  installExitHook();

  // etcd's data in memory when /dev/shm is there: no fsync cost, nothing left on disk.
  const tmpRoot = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = await mkdtemp(path.join(tmpRoot, 'ingress-sidecar-apiserver-'));
  liveDirs.add(dir);
  let etcd: Proc | undefined;
  let apiserver: Proc | undefined;
  let stopped: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await stopProcess(apiserver);
      if (apiserver) live.delete(apiserver);
      await stopProcess(etcd);
      if (etcd) live.delete(etcd);
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    })();
    return stopped;
  };

  try {
    await makeCerts(dir);
    const caPem = await readFile(path.join(dir, 'ca.crt'), 'utf8');
    const adminToken = randomBytes(24).toString('hex');
    const sidecarToken = randomBytes(24).toString('hex');
    // token,user,uid,"group1,group2"
    await writeFile(
      path.join(dir, 'tokens.csv'),
      `${adminToken},admin,admin-uid,"system:masters,system:authenticated"\n` +
        `${sidecarToken},${SIDECAR_USER},ingress-sidecar-uid,"system:serviceaccounts,system:serviceaccounts:ingress-sidecar,system:authenticated"\n`,
      { mode: 0o600 },
    );

    const etcdLog = path.join(dir, 'etcd.log');
    const apiserverLog = path.join(dir, 'kube-apiserver.log');

    // --- etcd ---
    let etcdUrl = '';
    for (let attempt = 0; ; attempt++) {
      const clientPort = await freePort();
      const peerPort = await freePort();
      etcdUrl = `http://127.0.0.1:${clientPort}`;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      await rm(path.join(dir, 'etcd'), { recursive: true, force: true });
      etcd = startProcess(
        etcdBin,
        [
          '--name',
          'test',
          '--data-dir',
          path.join(dir, 'etcd'),
          '--listen-client-urls',
          etcdUrl,
          '--advertise-client-urls',
          etcdUrl,
          '--listen-peer-urls',
          peerUrl,
          '--initial-advertise-peer-urls',
          peerUrl,
          '--initial-cluster',
          `test=${peerUrl}`,
          '--initial-cluster-state',
          'new',
          '--log-level',
          'warn',
          '--logger',
          'zap',
        ],
        etcdLog,
        'etcd',
      );
      live.add(etcd);
      try {
        await waitFor('etcd', etcd, etcdLog, 30_000, async () => {
          const r = await get(`${etcdUrl}/health`);
          return r.status === 200 && r.body.includes('"health":"true"');
        });
        break;
      } catch (err) {
        await stopProcess(etcd);
        live.delete(etcd);
        // A port taken between freePort() and etcd's bind: try other ports.
        if (attempt >= 2 || !tail(etcdLog).includes('address already in use')) throw err;
      }
    }

    // --- kube-apiserver ---
    let port = 0;
    const apiserverArgs = (): string[] => [
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      '--advertise-address=127.0.0.1',
      `--tls-cert-file=${path.join(dir, 'serving.crt')}`,
      `--tls-private-key-file=${path.join(dir, 'serving.key')}`,
      `--cert-dir=${path.join(dir, 'certs')}`,
      `--etcd-servers=${etcdUrl}`,
      '--authorization-mode=RBAC',
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      '--disable-admission-plugins=ServiceAccount',
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      '--v=1',
    ];
    const url = (): string => `https://127.0.0.1:${port}`;
    const startApiserverProcess = async (): Promise<void> => {
      if (apiserver && isRunning(apiserver)) return;
      if (stopped) throw new Error('API server already stopped');
      await writeFile(apiserverLog, `--- start ${new Date().toISOString()} ---\n`, { flag: 'a' });
      apiserver = startProcess(apiserverBin, apiserverArgs(), apiserverLog, 'kube-apiserver');
      live.add(apiserver);
      await waitFor('kube-apiserver', apiserver, apiserverLog, readyTimeoutMs, async () => {
        const r = await get(`${url()}/readyz`, { ca: caPem, token: adminToken });
        return r.status === 200;
      });
    };
    const stopApiserverProcess = async (): Promise<void> => {
      await stopProcess(apiserver);
      if (apiserver) live.delete(apiserver);
    };

    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      try {
        await startApiserverProcess();
        break;
      } catch (err) {
        await stopApiserverProcess();
        if (attempt >= 2 || !tail(apiserverLog).includes('address already in use')) throw err;
      }
    }

    const adminKubeconfig = path.join(dir, 'admin.kubeconfig');
    const sidecarKubeconfig = path.join(dir, 'sidecar.kubeconfig');
    await writeFile(adminKubeconfig, kubeconfig(url(), caPem, 'admin', adminToken), { mode: 0o600 });
    await writeFile(sidecarKubeconfig, kubeconfig(url(), caPem, 'ingress-sidecar', sidecarToken), { mode: 0o600 });

    return {
      url: url(),
      port,
      adminKubeconfig,
      sidecarKubeconfig,
      adminToken,
      sidecarToken,
      caFile: path.join(dir, 'ca.crt'),
      etcdUrl,
      dir,
      apiserverLog,
      etcdLog,
      stop,
      restart: async () => {
        await stopApiserverProcess();
        await startApiserverProcess();
      },
      stopApiserverProcess,
      startApiserverProcess,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Everything in manifests/ (`kubectl kustomize`), applied as the admin. The test server is
 * Kubernetes 1.20, which predates policy/v1 (1.21): the PodDisruptionBudget is sent as
 * policy/v1beta1 there, same fields, so that every manifest really is applied and checked.
 */
export async function applyManifests(adminKubeconfig: string): Promise<void> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const built = await new Promise<string>((resolve, reject) =>
    execFile('kubectl', ['kustomize', path.join(root, 'manifests')], { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`kubectl kustomize manifests/ failed: ${stderr}`)) : resolve(stdout),
    ),
  );
  const for120 = built.replace(
    /^apiVersion: policy\/v1\nkind: PodDisruptionBudget$/m,
    'apiVersion: policy/v1beta1\nkind: PodDisruptionBudget',
  );
  await kubectlOk(adminKubeconfig, ['apply', '-f', '-'], for120);
}
