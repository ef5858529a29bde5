// The composition root: reads the configuration once, builds the parts, starts them, and stops
// them all on SIGTERM/SIGINT. No behaviour lives here beyond wiring.

import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ClusterWriters } from './cluster/status.ts';
import { ConfigError, parseConfig, type Config, type PodIdentity } from './config.ts';
// src/dev (echo backends, a local nginx) is for the demo and tests, and not in the image.
import type { EchoServer } from './dev/echo.ts';
import type { RunningNginx } from './dev/local-nginx.ts';
import { createLogger, type Logger } from './ops/log.ts';
import { Metrics } from './ops/metrics.ts';
import { findExecutable } from './nginx/process.ts';
import { renderCommand } from './commands/render.ts';
import { Sidecar } from './sync/sidecar.ts';
import { DirectorySource } from './sources/directory.ts';
// Cluster mode's modules are imported when cluster mode is chosen: they load
// @kubernetes/client-node, whose index alone costs ~85 MB of RSS that directory mode never uses.
import type { KubernetesSource } from './sources/kubernetes.ts';
import type { KubeEnvironment } from './sources/kube-credentials.ts';
import { startStatusServer } from './ops/http.ts';
import { runtimeTranslateOptions } from './sync/translate-options.ts';
import { describe } from './errors.ts';

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ingress-sidecar: ${err.message}\nRun with --help for the flags.\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  const { command, config, kubeEnv, pod } = parsed;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  switch (command) {
    case 'run':
      return run(config, kubeEnv, pod, logger);
    case 'demo':
      return demo(config, kubeEnv, logger);
    case 'render':
      if (parsed.rest.length > 0) {
        process.stderr.write(
          `ingress-sidecar: render takes no arguments (got ${JSON.stringify(parsed.rest[0])}); give the manifests with --file (-f)\nRun with --help for the flags.\n`,
        );
        return 2;
      }
      return renderCommand(config, { stdout: process.stdout, stderr: process.stderr });
  }
}

/** The sidecar over --watch-dir's manifests when given, else over the Kubernetes API. */
async function sidecarFor(
  config: Config,
  logger: Logger,
  parts: { source: DirectorySource | KubernetesSource; metrics: Metrics; pidFile?: string; afterSync?: ClusterWriters['afterSync'] },
): Promise<Sidecar> {
  const nginxBinary = findExecutable(config.nginxBinary);
  if (!nginxBinary) logger.warn('nginx binary not found: configs are written without an `nginx -t` check', { nginxBinary: config.nginxBinary });
  const nginxPidFile = parts.pidFile ?? config.nginxPidFile;
  const translate = await runtimeTranslateOptions(config, { nginxBinary, keepDefaultCertificate: true, logger });
  return new Sidecar({
    source: parts.source,
    metrics: parts.metrics,
    ...(parts.afterSync ? { afterSync: parts.afterSync } : {}),
    translate,
    confDir: config.confDir,
    nginxBinary,
    ...(nginxPidFile ? { nginxPidFile } : {}),
    reloadTimeoutMs: config.reloadTimeoutMs,
    debounceMs: config.debounceMs,
    maxDelayMs: config.maxDelayMs,
    logger,
  });
}

async function sourceFor(config: Config, kubeEnv: KubeEnvironment, logger: Logger, metrics: Metrics): Promise<DirectorySource | KubernetesSource> {
  if (config.watchDir) return new DirectorySource({ dir: config.watchDir, logger, onError: () => metrics.sourceError('directory') });
  const { KubernetesSource } = await import('./sources/kubernetes.ts');
  return new KubernetesSource({
    ...(config.kubeconfig !== undefined ? { kubeconfig: config.kubeconfig } : {}),
    ...(config.namespace !== undefined ? { namespace: config.namespace } : {}),
    env: kubeEnv,
    logger,
    onError: () => metrics.sourceError('kubernetes'),
  });
}

/**
 * Ingress status (from the elected replica) and Events, for the Kubernetes source. Without
 * --publish-service or --publish-address, or with --update-status=false, no status is written and
 * no Lease is used.
 */
async function clusterWriters(config: Config, pod: PodIdentity, source: KubernetesSource, logger: Logger): Promise<ClusterWriters> {
  // --update-status=false: another controller of the class owns status. The Lease only elects its
  // one writer, so none is used either; Events still go out from every replica.
  const publish = !config.updateStatus
    ? null
    : config.publishService
      ? ({ kind: 'service', ...config.publishService } as const)
      : config.publishAddress
        ? ({ kind: 'addresses', addresses: config.publishAddress } as const)
        : null;
  const namespace = pod.namespace ?? (await readFile('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').catch(() => '')).trim();
  if (publish && !namespace) throw new ConfigError('publishing Ingress status needs POD_NAMESPACE (the Lease lives there)');
  const { startClusterWriters } = await import('./cluster/status.ts');
  return startClusterWriters({
    kubeConfig: source.kubeConfig,
    ingressClass: config.ingressClass,
    watchIngressWithoutClass: config.watchIngressWithoutClass,
    publish,
    electionId: config.electionId,
    podName: pod.name,
    podNamespace: namespace || 'default',
    ...(pod.nodeName ? { nodeName: pod.nodeName } : {}),
    logger,
  });
}

/** Resolves when SIGTERM or SIGINT arrives. */
function terminated(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}

async function run(config: Config, kubeEnv: KubeEnvironment, pod: PodIdentity, logger: Logger): Promise<number> {
  const metrics = new Metrics();
  const source = await sourceFor(config, kubeEnv, logger, metrics);
  const writers = !(source instanceof DirectorySource) && !config.once ? await clusterWriters(config, pod, source, logger) : null;
  const sidecar = await sidecarFor(config, logger, { source, metrics, ...(writers ? { afterSync: writers.afterSync } : {}) });
  if (config.once) {
    // For an init container: the files are in place (and nginx, if running, reloaded), or exit 1.
    // Ingresses nginx refused are left out of what was applied, and fail the run too: an init
    // container must not report success for a config that serves less than the manifests ask.
    try {
      const setAside = await sidecar.runOnce();
      if (setAside.length === 0) return 0;
      logger.error(`applied the configuration without ${setAside.length === 1 ? 'an Ingress' : `${setAside.length} Ingresses`} that nginx refused: ${setAside.map((s) => s.ingress).join(', ')}`, {
        ingresses: setAside,
      });
      return 1;
    } catch (err) {
      logger.error('sync failed', { error: describe(err) });
      return 1;
    }
  }
  return serve(config, logger, sidecar, writers, async () => {
    const source = config.watchDir ?? `the Kubernetes API (${config.namespace ? `namespace ${config.namespace}` : 'all namespaces'})`;
    logger.info('ingress-sidecar running', { source, confDir: config.confDir, ingressClass: config.ingressClass });
  });
}

/** Runs the sidecar and its status endpoint until SIGTERM or SIGINT; nginx keeps serving after. */
async function serve(config: Config, logger: Logger, sidecar: Sidecar, writers: ClusterWriters | null, started: () => Promise<void>): Promise<number> {
  const stop = terminated(logger);
  // Up before the first sync, so that liveness and readiness can answer while it runs.
  const status = await startStatusServer(config.listen, sidecar, sidecar.metrics);
  try {
    // The first full read can wait on an API server that does not answer yet: a signal meanwhile
    // still stops the sidecar (whose start then fails, as nothing was rendered).
    const starting = sidecar.start().then(() => true);
    if (await Promise.race([starting, stop.then(() => false)])) {
      await started();
      await stop;
    } else {
      starting.catch(() => {});
    }
  } finally {
    await sidecar.stop();
    // Steps down and releases the Lease, so another replica takes over status at once.
    await writers?.stop();
    await status.close();
  }
  return 0;
}

/**
 * The embedded default: a local nginx started for you, echo backends for the example Services,
 * and the sidecar watching examples/local. Edit a file there and the route changes.
 */
async function demo(config: Config, kubeEnv: KubeEnvironment, logger: Logger): Promise<number> {
  const root = path.resolve(import.meta.dirname, '..');
  const watchDir = config.watchDir ?? path.join(root, 'examples', 'local');
  const stateDir = path.join(root, '.run');
  const confDir = path.join(stateDir, 'conf.d');
  await rm(confDir, { recursive: true, force: true });
  await mkdir(confDir, { recursive: true });

  const dev = await Promise.all([import('./dev/echo.ts'), import('./dev/local-nginx.ts')]).catch(() => null);
  if (!dev) {
    logger.error('demo runs from a checkout of ingress-sidecar (src/dev is not in the image); in a pod, use `run`');
    return 2;
  }
  const [{ startEcho }, { startNginx }] = dev;
  const backends: EchoServer[] = [];
  let nginx: RunningNginx | null = null;
  try {
    // The ports that examples/local's EndpointSlices point at.
    backends.push(await startEcho('blue', { port: 9081 }), await startEcho('green', { port: 9082 }));
    nginx = await startNginx({ confDir, pidFile: path.join(stateDir, 'nginx.pid') });
    const accessLog = path.join(stateDir, 'access.log');
    const demoConfig = { ...config, confDir, accessLog, watchDir };
    const metrics = new Metrics();
    const sidecar = await sidecarFor(demoConfig, logger, { source: await sourceFor(demoConfig, kubeEnv, logger, metrics), metrics, pidFile: nginx.pidFile });
    return await serve(config, logger, sidecar, null, async () => {
      process.stdout.write(
        [
          '',
          `ingress-sidecar demo: nginx on http://127.0.0.1:${config.httpPort}, manifests in ${watchDir}`,
          `  curl -H 'Host: demo.local' http://127.0.0.1:${config.httpPort}/          (blue)`,
          `  curl -H 'Host: demo.local' http://127.0.0.1:${config.httpPort}/green     (green)`,
          `  curl -H 'Host: x.apps.local' http://127.0.0.1:${config.httpPort}/        (green, wildcard host)`,
          `  curl -k --resolve secure.local:${config.httpsPort}:127.0.0.1 https://secure.local:${config.httpsPort}/   (blue, over TLS)`,
          `  curl http://${config.listen}/routes                            (the live routing table)`,
          `Edit ${path.join(watchDir, 'ingress.yaml')} and the routes follow; access log: ${accessLog}.`,
          'Ctrl-C stops everything.',
          '',
        ].join('\n'),
      );
    });
  } finally {
    await nginx?.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ingress-sidecar: ${describe(err)}\n`);
    process.exit(1);
  },
);
