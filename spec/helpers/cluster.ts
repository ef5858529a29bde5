// The cluster-mode e2e fixture: a real kube-apiserver with manifests/ applied, a real nginx on a
// conf.d of a temporary work directory, echo backends in network namespaces with their Services in
// namespace shop, and bin/ingress-sidecar run as a pod's process. Tests must stop() what they start
// in an after hook.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { applyManifests, kubectlOk, startApiServer, type ApiServer } from './apiserver.ts';
import { startNginx, whoAnswers, type RunningNginx } from './nginx.ts';
import { netnsServiceYaml, startNetnsBackend, type NetnsBackend } from './netns.ts';

export const SIDECAR_BIN = path.resolve(import.meta.dirname, '../../bin/ingress-sidecar');

export interface ShopCluster {
  api: ApiServer;
  work: string;
  confDir: string;
  nginx: RunningNginx;
  /** In the order of the names given, each with a Service of its name in namespace shop. */
  backends: NetnsBackend[];
  /** kubectl as the admin; its stdout, or throws. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** nginx, the backends, the API server, the work directory; in that order. */
  stop(): Promise<void>;
}

/** Starts the fixture (work directory named `prefix`-…); whatever started is stopped again if a step fails. */
export async function startShopCluster(prefix: string, backendNames: string[]): Promise<ShopCluster> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const work = await mkdtemp(path.join(os.tmpdir(), prefix));
    stops.push(() => rm(work, { recursive: true, force: true }));
    const api = await startApiServer();
    stops.push(() => api.stop());
    const kubectl = (args: string[], input?: string) => kubectlOk(api.adminKubeconfig, args, input);
    await applyManifests(api.adminKubeconfig);
    const confDir = path.join(work, 'conf.d');
    await mkdir(confDir);
    const backends: NetnsBackend[] = [];
    stops.push(() => Promise.all(backends.map((b) => b.stop())));
    const nginx = await startNginx({ confDir });
    stops.push(() => nginx.stop());
    for (const name of backendNames) backends.push(await startNetnsBackend(name));
    await kubectl(['create', 'namespace', 'shop']);
    await kubectl(['apply', '-f', '-'], backends.map((b, i) => netnsServiceYaml(backendNames[i]!, b)).join('---\n'));
    return { api, work, confDir, nginx, backends, kubectl, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** An Ingress of namespace shop: host -> / (Prefix) -> `service`; `extra` goes into spec before the rules. */
export const shopIngressYaml = (
  name: string,
  host: string,
  service: string,
  extra = '',
) => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ${name}, namespace: shop}
spec:
  ingressClassName: nginx
${extra}  rules:
  - host: ${host}
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: ${service}, port: {name: http}}}}]
`;

/** bin/ingress-sidecar run as pod `podName` of namespace ingress-sidecar, its output kept for failure messages. */
export function runSidecar(args: string[], podName = 'sidecar-0'): { proc: ResultPromise; output: () => string } {
  let output = '';
  const proc = execa(SIDECAR_BIN, ['run', ...args], {
    env: { POD_NAME: podName, POD_NAMESPACE: 'ingress-sidecar' },
    reject: false,
    all: true,
    buffer: false,
  });
  proc.all?.on('data', (d: Buffer) => (output += d.toString()));
  return { proc, output: () => output };
}

/** One sidecar pod that a test starts and stops again; output() is that of its latest start. */
export function sidecarPod(podName: string) {
  let run: ReturnType<typeof runSidecar> | undefined;
  let output = () => '';
  return {
    start(args: string[]): void {
      run = runSidecar(args, podName);
      output = run.output;
    },
    /** SIGTERM; resolves with its exit code (undefined when it was not running). */
    async stop(): Promise<number | undefined> {
      if (!run) return undefined;
      run.proc.kill('SIGTERM');
      const r = await run.proc;
      run = undefined;
      return r.exitCode;
    },
    output: () => output(),
  };
}

/** Polls `cond` (bounded); on timeout throws with the tail of the sidecar's output. */
export async function waitFor(
  what: string,
  cond: () => Promise<boolean>,
  output: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\nsidecar output:\n${output().slice(-3000)}`);
    await sleep(100);
  }
}

/** Which backend answers for `host` through nginx (or the status code), polled (bounded) until `expected`. */
export async function eventuallyAnswers(
  port: number,
  host: string,
  expected: string,
  timeoutMs = 15_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await whoAnswers(port, host);
    if (last === expected) return last;
    await sleep(50);
  }
  return last;
}
