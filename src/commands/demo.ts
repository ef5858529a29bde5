// The `demo` command. src/dev (echo backends, a local nginx) is for the demo and tests, and not in
// the image: it is loaded only here, when the demo runs.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.ts';
import type { EchoServer } from '../dev/echo.ts';
import type { RunningNginx } from '../dev/local-nginx.ts';
import type { Logger } from '../ops/log.ts';
import type { Sidecar } from '../sync/sidecar.ts';
import { serve } from './run.ts';

/**
 * The embedded default: a local nginx started for you, echo backends for the example Services,
 * and the sidecar watching examples/local. Edit a file there and the route changes. `sidecarFor`
 * builds the sidecar (the composition root's wiring) for the demo's settings and nginx.
 */
export async function demoCommand(
  config: Config,
  logger: Logger,
  sidecarFor: (demoConfig: Config, nginxPidFile: string) => Promise<Sidecar>,
): Promise<number> {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const watchDir = config.watchDir ?? path.join(root, 'examples', 'local');
  const stateDir = path.join(root, '.run');
  const confDir = path.join(stateDir, 'conf.d');
  let dev;
  try {
    dev = await Promise.all([import('../dev/echo.ts'), import('../dev/local-nginx.ts')]);
  } catch (err) {
    // Only a missing src/dev means "not a checkout"; any other load error is a bug, shown as one.
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    logger.error('demo runs from a checkout of ingress-sidecar (src/dev is not in the image); in a pod, use `run`');
    return 2;
  }
  await rm(confDir, { recursive: true, force: true });
  await mkdir(confDir, { recursive: true });
  const [{ startEcho }, { startNginx }] = dev;
  const backends: EchoServer[] = [];
  let nginx: RunningNginx | null = null;
  try {
    // The ports that examples/local's EndpointSlices point at.
    backends.push(await startEcho('blue', { port: 9081 }), await startEcho('green', { port: 9082 }));
    nginx = await startNginx({ confDir, pidFile: path.join(stateDir, 'nginx.pid') });
    const accessLog = path.join(stateDir, 'access.log');
    const demoConfig = { ...config, confDir, accessLog, watchDir };
    const sidecar = await sidecarFor(demoConfig, nginx.pidFile);
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
