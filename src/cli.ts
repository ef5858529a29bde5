// The composition root: reads the configuration once, builds the parts, starts them, and stops
// them all on SIGTERM/SIGINT. No behaviour lives here beyond wiring.

import { readFile } from 'node:fs/promises';
import type { ClusterWriters } from './cluster/status.ts';
import { ConfigError, parseConfig, readSystemFiles, type Config, type PodIdentity } from './config.ts';
import { createLogger, type Logger } from './ops/log.ts';
import { Metrics } from './ops/metrics.ts';
import { findExecutable } from './nginx/process.ts';
import { renderCommand } from './commands/render.ts';
import { runCommand } from './commands/run.ts';
// The demo loads src/dev (echo backends, a local nginx) itself, lazily: it is not in the image.
import { demoCommand } from './commands/demo.ts';
import { Sidecar } from './sync/sidecar.ts';
import { DirectorySource } from './sources/directory.ts';
// Cluster mode's modules are imported when cluster mode is chosen: they load
// @kubernetes/client-node, whose index alone costs ~85 MB of RSS that directory mode never uses.
import type { KubernetesSource } from './sources/kubernetes.ts';
import type { KubeEnvironment } from './sources/kube-credentials.ts';
import { runtimeTranslateOptions } from './sync/translate-options.ts';
import { EndpointAnswers } from './dns/answers.ts';
import { DnsServer } from './dns/server.ts';
import { describe } from './errors.ts';

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseConfig(argv, env, readSystemFiles());
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
  const { command, config, kubeEnv, pod, searchPath } = parsed;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  switch (command) {
    case 'run':
      return run(config, kubeEnv, pod, searchPath, logger);
    case 'demo':
      return demo(config, kubeEnv, searchPath, logger);
    case 'render':
      if (parsed.rest.length > 0) {
        process.stderr.write(
          `ingress-sidecar: render takes no arguments (got ${JSON.stringify(parsed.rest[0])}); give the manifests with --file (-f)\nRun with --help for the flags.\n`,
        );
        return 2;
      }
      return renderCommand(config, searchPath, { stdout: process.stdout, stderr: process.stderr });
  }
}

/** Where the DNS responder listens: nginx's resolver in the same pod reaches it over loopback. */
const DNS_HOST = '127.0.0.1';

/** The sidecar over --watch-dir's manifests when given, else over the Kubernetes API. */
async function sidecarFor(
  config: Config,
  searchPath: string,
  logger: Logger,
  parts: {
    source: DirectorySource | KubernetesSource;
    metrics: Metrics;
    pidFile?: string;
    afterSync?: ClusterWriters['afterSync'];
  },
): Promise<Sidecar> {
  const nginxBinary = findExecutable(config.nginxBinary, searchPath);
  if (!nginxBinary)
    logger.warn('nginx binary not found: configs are written without an `nginx -t` check', {
      nginxBinary: config.nginxBinary,
    });
  const nginxPidFile = parts.pidFile ?? config.nginxPidFile;
  const translate = await runtimeTranslateOptions(config, { nginxBinary, keepDefaultCertificate: true, logger });
  // The DNS responder of reload-free endpoints, on loopback (nginx in the same pod asks it); not
  // with --endpoints-mode reload. `auto` runs it and uses it when the serving nginx can.
  const answers = new EndpointAnswers({ unavailablePort: config.unavailablePort });
  const endpoints =
    config.endpointsMode === 'reload'
      ? undefined
      : {
          mode: config.endpointsMode,
          answers,
          server: new DnsServer({ host: DNS_HOST, port: config.dnsPort, answers, logger, metrics: parts.metrics }),
          resolver: `${DNS_HOST}:${config.dnsPort}`,
          unavailablePort: config.unavailablePort,
        };
  return new Sidecar({
    ...(endpoints ? { endpoints } : {}),
    ...(config.nginxVersion !== undefined ? { nginxVersionFlag: config.nginxVersion } : {}),
    pacing: {
      maxDrainingGenerations: config.maxDrainingGenerations,
      maxDrainWaitMs: config.maxDrainWaitMs,
      maxReloadSharePercent: config.maxReloadShare,
    },
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

async function sourceFor(
  config: Config,
  kubeEnv: KubeEnvironment,
  logger: Logger,
  metrics: Metrics,
): Promise<DirectorySource | KubernetesSource> {
  if (config.watchDir)
    return new DirectorySource({ dir: config.watchDir, logger, onError: () => metrics.sourceError('directory') });
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
async function clusterWriters(
  config: Config,
  pod: PodIdentity,
  source: KubernetesSource,
  logger: Logger,
): Promise<ClusterWriters> {
  // --update-status=false: another controller of the class owns status. The Lease only elects its
  // one writer, so none is used either; Events still go out from every replica.
  const publish = !config.updateStatus
    ? null
    : config.publishService
      ? ({ kind: 'service', ...config.publishService } as const)
      : config.publishAddress
        ? ({ kind: 'addresses', addresses: config.publishAddress } as const)
        : null;
  const namespace =
    pod.namespace ??
    (await readFile('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').catch(() => '')).trim();
  if (publish && !namespace)
    throw new ConfigError('publishing Ingress status needs POD_NAMESPACE (the Lease lives there)');
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

async function run(
  config: Config,
  kubeEnv: KubeEnvironment,
  pod: PodIdentity,
  searchPath: string,
  logger: Logger,
): Promise<number> {
  const metrics = new Metrics();
  const source = await sourceFor(config, kubeEnv, logger, metrics);
  const writers =
    !(source instanceof DirectorySource) && !config.once ? await clusterWriters(config, pod, source, logger) : null;
  const sidecar = await sidecarFor(config, searchPath, logger, {
    source,
    metrics,
    ...(writers ? { afterSync: writers.afterSync } : {}),
  });
  return runCommand(config, logger, sidecar, writers);
}

function demo(config: Config, kubeEnv: KubeEnvironment, searchPath: string, logger: Logger): Promise<number> {
  return demoCommand(config, logger, async (demoConfig, pidFile) => {
    const metrics = new Metrics();
    return sidecarFor(demoConfig, searchPath, logger, {
      source: await sourceFor(demoConfig, kubeEnv, logger, metrics),
      metrics,
      pidFile,
    });
  });
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ingress-sidecar: ${describe(err)}\n`);
    process.exit(1);
  },
);
