// A whole sidecar on this machine: manifests in a temp directory, a real nginx on a loopback
// port, real echo backends, and the sidecar in-process driving reloads.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { certDirFor, loadOrCreateSelfSignedCertificate } from '../../src/nginx/cert-store.ts';
import { startEcho, type EchoReply, type EchoServer } from '../../src/dev/echo.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Sidecar } from '../../src/sync/sidecar.ts';
import { startStatusServer, type StatusServer } from '../../src/ops/http.ts';
import { DirectorySource } from '../../src/sources/directory.ts';
import { EndpointAnswers } from '../../src/dns/answers.ts';
import { DnsServer } from '../../src/dns/server.ts';
import { nginxVersion } from '../../src/nginx/process.ts';
import { freePort, httpGet, nginxBinary, startNginx, type HttpAnswer, type RunningNginx } from './nginx.ts';

export interface StackTls {
  /** `namespace/name` of a kubernetes.io/tls Secret for the default certificate. */
  defaultSslCertificate?: string;
  /** The port in redirects; defaults to the HTTPS port itself, so that a client can follow them. */
  httpsRedirectPort?: number;
  /** The sidecar's clock runs this far ahead of the real one (certificate validity). */
  clockOffsetMs?: number;
}

export interface Stack {
  watchDir: string;
  confDir: string;
  port: number;
  /** With `tls`: the HTTPS port, the certificate directory and the generated default certificate. */
  https: { port: number; certDir: string; defaultPem: string } | null;
  nginx: RunningNginx;
  sidecar: Sidecar;
  backends: Map<string, EchoServer>;
  logs: Array<Record<string, unknown>>;
  write(file: string, yaml: string): Promise<void>;
  remove(file: string): Promise<void>;
  get(host: string, urlPath: string, headers?: Record<string, string>): Promise<HttpAnswer>;
  /** Which echo backend answered, or the status when none did. */
  who(host: string, urlPath: string): Promise<string>;
  /** Polls (bounded) until who(host, path) is `expected`; returns the last answer. */
  eventually(host: string, urlPath: string, expected: string, timeoutMs?: number): Promise<string>;
  restartSidecar(): Promise<Sidecar>;
  /** The sidecar's /healthz, /readyz, /metrics and /routes, on a loopback port. */
  status(urlPath: string): Promise<HttpAnswer>;
  stop(): Promise<void>;
}

export async function startStack(opts: {
  backends: string[];
  debounceMs?: number;
  files?: Record<string, string>;
  status?: boolean;
  accessLog?: string;
  tls?: StackTls;
  /** --allow-snippet-annotations. */
  allowSnippets?: boolean;
  /** --default-backend-service NAMESPACE/NAME. */
  defaultBackendService?: string;
  /** The nginx to run and check with (and its version, for translate); nginxBinary() when absent. */
  nginx?: { binary: string; version: string };
  /** --resolver. */
  resolver?: string[];
  /**
   * --endpoints-mode (absent: no DNS responder, as reload): `dns` and `auto` run the responder on
   * a free loopback port, with the 503 listeners on two more.
   */
  endpointsMode?: 'auto' | 'dns' | 'reload';
}): Promise<Stack> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'sidecar-spec-'));
  const watchDir = path.join(work, 'manifests');
  const confDir = path.join(work, 'conf.d');
  await mkdir(watchDir);
  await mkdir(confDir);
  const backends = new Map<string, EchoServer>();
  for (const name of opts.backends) backends.set(name, await startEcho(name));
  // Service + EndpointSlice per backend, named after it, in namespace default.
  await writeFile(
    path.join(watchDir, 'backends.yaml'),
    [...backends].map(([name, b]) => backendYaml(name, b.port)).join('---\n'),
  );
  for (const [file, yaml] of Object.entries(opts.files ?? {})) await writeFile(path.join(watchDir, file), yaml);

  const port = await freePort();
  let https: Stack['https'] = null;
  if (opts.tls) {
    const certDir = certDirFor(confDir);
    const httpsPort = await freePort();
    https = { port: httpsPort, certDir, defaultPem: (await loadOrCreateSelfSignedCertificate(certDir)).pem };
  }
  const tlsOpts = opts.tls;
  // Rendered for the version of the nginx it runs, as `run` renders for its nginx -v.
  const binary = opts.nginx?.binary ?? nginxBinary();
  const version = opts.nginx?.version ?? (await nginxVersion(binary));
  const nginx = await startNginx({ confDir, binary });
  const { logger, entries } = createMemoryLogger();
  const dns = opts.endpointsMode ? { port: await freePort(), unavailablePort: await freePortPair() } : null;
  const endpointsFor = () => {
    if (!dns || !opts.endpointsMode) return {};
    const answers = new EndpointAnswers({ unavailablePort: dns.unavailablePort });
    return {
      endpoints: {
        mode: opts.endpointsMode,
        answers,
        server: new DnsServer({ host: '127.0.0.1', port: dns.port, answers, logger }),
        resolver: `127.0.0.1:${dns.port}`,
        unavailablePort: dns.unavailablePort,
      },
    };
  };
  const make = () =>
    new Sidecar({
      ...endpointsFor(),
      source: new DirectorySource({ dir: watchDir, logger }),
      translate: {
        ingressClass: 'nginx',
        httpPort: port,
        ipv6: false,
        accessLog: opts.accessLog ?? null,
        ...(opts.allowSnippets ? { allowSnippets: true } : {}),
        ...(opts.defaultBackendService ? { defaultBackendService: opts.defaultBackendService } : {}),
        ...(version ? { nginxVersion: version } : {}),
        ...(opts.resolver ? { resolver: opts.resolver } : {}),
        ...(https && tlsOpts
          ? {
              tls: {
                httpsPort: https.port,
                httpsRedirectPort: tlsOpts.httpsRedirectPort ?? https.port,
                certDir: https.certDir,
                defaultCertificate: { pem: https.defaultPem },
                ...(tlsOpts.defaultSslCertificate ? { defaultSslCertificate: tlsOpts.defaultSslCertificate } : {}),
              },
            }
          : {}),
      },
      ...(tlsOpts?.clockOffsetMs ? { clock: () => new Date(Date.now() + tlsOpts.clockOffsetMs!) } : {}),
      confDir,
      nginxBinary: binary,
      nginxPidFile: nginx.pidFile,
      reloadTimeoutMs: 5000,
      debounceMs: opts.debounceMs ?? 20,
      maxDelayMs: 500,
      logger,
    });
  let sidecar = make();
  let statusServer: StatusServer | null = null;
  const statusSource = { healthy: () => sidecar.healthy(), ready: () => sidecar.ready(), model: () => sidecar.model() };
  try {
    if (opts.status) statusServer = await startStatusServer('127.0.0.1:0', statusSource, sidecar.metrics);
    await sidecar.start();
  } catch (err) {
    // The caller gets no stack to stop: leave no nginx or backend behind.
    await statusServer?.close();
    await nginx.stop();
    await Promise.all([...backends.values()].map((b) => b.close()));
    await rm(work, { recursive: true, force: true });
    throw err;
  }

  const get = (host: string, urlPath: string, headers: Record<string, string> = {}) =>
    httpGet(port, host, urlPath, headers);
  const who = async (host: string, urlPath: string) => {
    const res = await get(host, urlPath).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }));
    if (res.status !== 200) return String(res.status);
    try {
      return (JSON.parse(res.body) as EchoReply).service;
    } catch {
      return `200 without an echo body: ${res.body.slice(0, 80)}`;
    }
  };
  const stack: Stack = {
    watchDir,
    confDir,
    port,
    https,
    nginx,
    get sidecar() {
      return sidecar;
    },
    backends,
    logs: entries,
    write: (file, yaml) => writeFile(path.join(watchDir, file), yaml),
    remove: (file) => rm(path.join(watchDir, file), { force: true }),
    get,
    who,
    async eventually(host, urlPath, expected, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      // For ~100 ms after a reload nginx lets the old workers accept too (its master sleeps
      // before retiring them), so the first right answer may be followed by an old one. Once the
      // sidecar is idle its reload has been verified, old workers retired: ask again then.
      for (let settled = false; ;) {
        for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
          last = await who(host, urlPath);
          if (last === expected) break;
          await sleep(20);
        }
        if (last !== expected || settled) return last;
        await sidecar.idle();
        settled = true;
      }
    },
    async restartSidecar() {
      await sidecar.stop();
      sidecar = make();
      await sidecar.start();
      return sidecar;
    },
    status(urlPath) {
      if (!statusServer) throw new Error('start the stack with status: true');
      return httpGet(statusServer.port, '127.0.0.1', urlPath);
    },
    async stop() {
      await statusServer?.close();
      await sidecar.stop().catch(() => {});
      await nginx.stop();
      await Promise.all([...backends.values()].map((b) => b.close()));
      await rm(work, { recursive: true, force: true });
    },
  };
  return stack;
}

/** A free loopback port whose next port is free too (the 503 listeners: plain and TLS). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p < 65535 && (await isFree(p + 1))) return p;
  }
  throw new Error('no two consecutive free ports found');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export function backendYaml(name: string, port: number, ready = true): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: ${port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-1
  namespace: default
  labels: {kubernetes.io/service-name: ${name}}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: ${ready}}}]
`;
}

/** One Ingress document. `paths` are [path, pathType, service] triples; service port is "http". */
export function ingressYaml(
  name: string,
  rules: Array<{ host?: string; paths: Array<[string, string, string]> }>,
  extra: {
    className?: string;
    defaultBackend?: string;
    created?: string;
    tls?: Array<{ hosts?: string[]; secretName?: string }>;
    annotations?: Record<string, string>;
  } = {},
): string {
  const ruleText = rules
    .map(
      (r) =>
        `  - ${r.host !== undefined ? `host: ${JSON.stringify(r.host)}\n    ` : ''}http:
      paths:
${r.paths.map(([p, t, s]) => `      - {path: ${JSON.stringify(p)}, pathType: ${t}, backend: {service: {name: ${s}, port: {name: http}}}}`).join('\n')}`,
    )
    .join('\n');
  return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
  namespace: default
${extra.created ? `  creationTimestamp: "${extra.created}"\n` : ''}${extra.annotations ? `  annotations: ${JSON.stringify(extra.annotations)}\n` : ''}spec:
  ingressClassName: ${extra.className ?? 'nginx'}
${extra.tls ? `  tls: ${JSON.stringify(extra.tls)}\n` : ''}${extra.defaultBackend ? `  defaultBackend: {service: {name: ${extra.defaultBackend}, port: {name: http}}}\n` : ''}${rules.length ? `  rules:\n${ruleText}\n` : ''}`;
}
