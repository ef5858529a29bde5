// The `run` command once the parts are built: either one pass and exit (`--once`, for an init
// container), or serving until SIGTERM/SIGINT. serve() is also how the demo runs.
import type { ClusterWriters } from '../cluster/status.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../ops/log.ts';
import { startStatusServer } from '../ops/http.ts';
import type { Sidecar } from '../sync/sidecar.ts';
import { describe } from '../errors.ts';

export async function runCommand(
  config: Config,
  logger: Logger,
  sidecar: Sidecar,
  writers: ClusterWriters | null,
): Promise<number> {
  if (config.once) {
    // For an init container: the files are in place (and nginx, if running, reloaded), or exit 1.
    // Ingresses nginx refused are left out of what was applied, and fail the run too: an init
    // container must not report success for a config that serves less than the manifests ask.
    try {
      const setAside = await sidecar.runOnce();
      if (setAside.length === 0) return 0;
      logger.error(
        `applied the configuration without ${setAside.length === 1 ? 'an Ingress' : `${setAside.length} Ingresses`} that nginx refused: ${setAside.map((s) => s.ingress).join(', ')}`,
        {
          ingresses: setAside,
        },
      );
      return 1;
    } catch (err) {
      logger.error('sync failed', { error: describe(err) });
      return 1;
    }
  }
  return serve(config, logger, sidecar, writers, async () => {
    const source =
      config.watchDir ??
      `the Kubernetes API (${config.namespace ? `namespace ${config.namespace}` : 'all namespaces'})`;
    logger.info('ingress-sidecar running', { source, confDir: config.confDir, ingressClass: config.ingressClass });
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

/** Runs the sidecar and its status endpoint until SIGTERM or SIGINT; nginx keeps serving after. */
export async function serve(
  config: Config,
  logger: Logger,
  sidecar: Sidecar,
  writers: ClusterWriters | null,
  started: () => Promise<void>,
): Promise<number> {
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
