// The composition root: reads the configuration once, builds the parts, starts them, and stops
// them all on SIGTERM/SIGINT. No behaviour lives here beyond wiring.

import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, parseConfig, translateOptions, type Config } from './config.ts';
import { startEcho, type EchoServer } from './echo.ts';
import { startNginx, type RunningNginx } from './local-nginx.ts';
import { createLogger, type Logger } from './log.ts';
import { findExecutable } from './nginx-process.ts';
import { renderCommand } from './render-command.ts';
import { Sidecar } from './sidecar.ts';
import { DirectorySource } from './sources/directory.ts';
import { startStatusServer } from './status-server.ts';

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
  const { command, config } = parsed;
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  switch (command) {
    case 'run':
      return run(config, logger);
    case 'demo':
      return demo(config, logger);
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

function sidecarFor(config: Config, watchDir: string, logger: Logger, pidFile?: string): Sidecar {
  const nginxBinary = findExecutable(config.nginxBinary);
  if (!nginxBinary) logger.warn('nginx binary not found: configs are written without an `nginx -t` check', { nginxBinary: config.nginxBinary });
  const nginxPidFile = pidFile ?? config.nginxPidFile;
  return new Sidecar({
    source: new DirectorySource({ dir: watchDir, logger }),
    translate: translateOptions(config),
    confDir: config.confDir,
    nginxBinary,
    ...(nginxPidFile ? { nginxPidFile } : {}),
    reloadTimeoutMs: config.reloadTimeoutMs,
    debounceMs: config.debounceMs,
    maxDelayMs: config.maxDelayMs,
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

async function run(config: Config, logger: Logger): Promise<number> {
  if (!config.watchDir) throw new ConfigError('--watch-dir is required');
  const sidecar = sidecarFor(config, config.watchDir, logger);
  if (config.once) {
    // For an init container: the files are in place (and nginx, if running, reloaded), or exit 1.
    try {
      await sidecar.runOnce();
      return 0;
    } catch (err) {
      logger.error('sync failed', { error: err instanceof Error ? err.message : String(err) });
      return 1;
    }
  }
  return serve(config, logger, sidecar, async () => {
    logger.info('ingress-sidecar running', { watchDir: config.watchDir, confDir: config.confDir, ingressClass: config.ingressClass });
  });
}

/** Runs the sidecar and its status endpoint until SIGTERM or SIGINT; nginx keeps serving after. */
async function serve(config: Config, logger: Logger, sidecar: Sidecar, started: () => Promise<void>): Promise<number> {
  const stop = terminated(logger);
  // Up before the first sync, so that liveness and readiness can answer while it runs.
  const status = await startStatusServer(config.listen, sidecar, sidecar.metrics);
  try {
    await sidecar.start();
    await started();
    await stop;
  } finally {
    await sidecar.stop();
    await status.close();
  }
  return 0;
}

/**
 * The embedded default: a local nginx started for you, echo backends for the example Services,
 * and the sidecar watching examples/local. Edit a file there and the route changes.
 */
async function demo(config: Config, logger: Logger): Promise<number> {
  const root = path.resolve(import.meta.dirname, '..');
  const watchDir = config.watchDir ?? path.join(root, 'examples', 'local');
  const stateDir = path.join(root, '.run');
  const confDir = path.join(stateDir, 'conf.d');
  await rm(confDir, { recursive: true, force: true });
  await mkdir(confDir, { recursive: true });

  const backends: EchoServer[] = [];
  let nginx: RunningNginx | null = null;
  try {
    // The ports that examples/local's EndpointSlices point at.
    backends.push(await startEcho('blue', { port: 9081 }), await startEcho('green', { port: 9082 }));
    nginx = await startNginx({ confDir, pidFile: path.join(stateDir, 'nginx.pid') });
    const accessLog = path.join(stateDir, 'access.log');
    const sidecar = sidecarFor({ ...config, confDir, accessLog }, watchDir, logger, nginx.pidFile);
    return await serve(config, logger, sidecar, async () => {
      process.stdout.write(
        [
          '',
          `ingress-sidecar demo: nginx on http://127.0.0.1:${config.httpPort}, manifests in ${watchDir}`,
          `  curl -H 'Host: demo.local' http://127.0.0.1:${config.httpPort}/          (blue)`,
          `  curl -H 'Host: demo.local' http://127.0.0.1:${config.httpPort}/green     (green)`,
          `  curl -H 'Host: x.apps.local' http://127.0.0.1:${config.httpPort}/        (green, wildcard host)`,
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
    process.stderr.write(`ingress-sidecar: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
