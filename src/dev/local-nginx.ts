// A real nginx on this machine, for the demo, the tests and the benchmarks: the stock image's main
// config shape (nginx/nginx.conf), moved into a temp prefix so it runs without root-owned
// directories, and including the conf dir the sidecar writes (or, for benchmarks, a literal http {}
// body). Callers must stop() it.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { findExecutable, findMaster, workerPids } from '../nginx/process.ts';
import { childPids } from './nginx-workers.ts';

export interface RunningNginx {
  pidFile: string;
  prefix: string;
  /** The main config file, for `nginx -t -c` of what a reload parses. */
  conf: string;
  errorLogPath: string;
  /** The master's pid at start; masterPid() re-reads the pid file. */
  master: number;
  errorLog(): Promise<string>;
  masterPid(): Promise<number>;
  /** Idempotent; resolves once the master (and its workers) have exited. */
  stop(): Promise<void>;
}

export function nginxBinary(): string {
  const found = findExecutable('nginx', process.env.PATH ?? '');
  if (!found)
    throw new Error('nginx not found on PATH or in /usr/sbin: install it (Debian: apt-get install nginx-light)');
  return found;
}

export interface NginxOptions {
  /** `include DIR/*.conf;` inside http {} (what the sidecar writes), or... */
  confDir?: string;
  /** ...a literal http {} body (benchmarks). */
  http?: string;
  /** The nginx to run; nginxBinary() (PATH) when absent. */
  binary?: string;
  workerProcesses?: number;
  /**
   * Defaults to one inside the fresh prefix; pass a fixed path to model a pod, where a restarted
   * nginx writes its pid where the old one did.
   */
  pidFile?: string;
  workerConnections?: number;
  /** e.g. "10s": how long an old worker may keep connections after a reload. */
  workerShutdownTimeout?: string;
  /** worker_cpu_affinity, e.g. "10" (the second CPU) */
  cpuAffinity?: string;
  /** keepalive_timeout for clients, in seconds; 65 when absent (as the stock image). */
  keepaliveTimeout?: number;
  /** error_log level; notice (the default) logs every reload signal. */
  errorLevel?: string;
  /** How long nginx may take to parse its config and start; benchmarks with large configs want more. */
  startTimeoutMs?: number;
  /**
   * stop() with SIGTERM (fast shutdown: draining workers go too) instead of SIGQUIT (graceful),
   * for benchmarks that leave old workers draining for a long worker_shutdown_timeout.
   */
  fastStop?: boolean;
}

export async function startNginx(opts: NginxOptions): Promise<RunningNginx> {
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-nginx-'));
  const pidFile = path.resolve(opts.pidFile ?? path.join(prefix, 'nginx.pid'));
  const errorLogPath = path.join(prefix, 'error.log');
  const conf = path.join(prefix, 'nginx.conf');
  const tmp = (name: string) => path.join(prefix, name);
  const body = opts.http ?? (opts.confDir ? `include ${path.resolve(opts.confDir)}/*.conf;` : '');
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  await writeFile(
    conf,
    `worker_processes ${opts.workerProcesses ?? 1};
error_log ${errorLogPath} ${opts.errorLevel ?? 'notice'};
pid ${pidFile};
${opts.workerShutdownTimeout ? `worker_shutdown_timeout ${opts.workerShutdownTimeout};\n` : ''}${opts.cpuAffinity ? `worker_cpu_affinity ${opts.cpuAffinity};\n` : ''}
events {
    worker_connections ${opts.workerConnections ?? 1024};
}

http {
    client_body_temp_path ${tmp('client_temp')};
    proxy_temp_path ${tmp('proxy_temp')};
    fastcgi_temp_path ${tmp('fastcgi_temp')};
    uwsgi_temp_path ${tmp('uwsgi_temp')};
    scgi_temp_path ${tmp('scgi_temp')};

    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout ${opts.keepaliveTimeout ?? 65};

${body
  .split('\n')
  .map((l) => (l ? `    ${l}` : l))
  .join('\n')}
}
`,
  );

  // Daemon mode: the command returns once the master has forked, so nothing here owns the
  // master's lifetime and stop() must find it through the pid file.
  const started = await execa(opts.binary ?? nginxBinary(), ['-p', prefix + '/', '-c', conf, '-e', errorLogPath], {
    reject: false,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    timeout: startTimeoutMs,
  });
  const log = async () => readFile(errorLogPath, 'utf8').catch(() => '');
  if (started.exitCode !== 0) {
    await rm(prefix, { recursive: true, force: true });
    throw new Error(`nginx did not start (${started.shortMessage}):\n${started.stderr}\n${await log()}`);
  }

  // Bounded polls: at least 200 of 10 ms, more for a longer start timeout.
  const polls = Math.max(200, Math.ceil(startTimeoutMs / 100));
  let pid: number | null = null;
  for (let i = 0; i < polls && pid === null; i++) {
    // A fixed pid file may still name a master that has since exited: wait for a live one.
    pid = await findMaster({ pidFile });
    if (pid === null) await sleep(10);
  }
  if (pid === null) {
    const text = await log();
    await rm(prefix, { recursive: true, force: true });
    throw new Error(`nginx started but wrote no pid to ${pidFile}:\n${text}`);
  }
  const master = pid;
  // Callers count worker generations: make sure the first one is there before they look.
  for (let i = 0; i < polls && (await workerPids(master)).size === 0; i++) await sleep(10);

  let stopped: Promise<void> | null = null;
  return {
    pidFile,
    prefix,
    conf,
    errorLogPath,
    master,
    errorLog: log,
    async masterPid() {
      const current = await readPid(pidFile);
      if (current === null) throw new Error(`no pid in ${pidFile}`);
      return current;
    },
    stop() {
      stopped ??= (async () => {
        await terminate(master, opts.fastStop ?? false);
        await rm(prefix, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/**
 * SIGQUIT (graceful), then SIGTERM, then SIGKILL for the master, and SIGKILL for any workers
 * (live or draining) it left behind; `fast` starts at SIGTERM and gives the master longer.
 */
async function terminate(master: number, fast: boolean): Promise<void> {
  const workers = new Set([...(await workerPids(master)), ...(await childPids(master))]);
  const signals = fast ? (['SIGTERM', 'SIGKILL'] as const) : (['SIGQUIT', 'SIGTERM', 'SIGKILL'] as const);
  for (const signal of signals) {
    if (!signalIfAlive(master, signal)) break;
    if (await exited(master, fast ? 5000 : 3000)) break;
  }
  for (const worker of workers) {
    if (signalIfAlive(worker, 'SIGKILL')) await exited(worker, 1000);
  }
}

/** Sends `signal`; false when the process is gone (or not ours to signal). */
export function signalIfAlive(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** True once the process is gone or a zombie (whoever reaps it may be slow). */
export async function exited(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / 10) + 1; i++) {
    const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => null);
    if (stat === null || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    if (Date.now() > deadline) break;
    await sleep(10);
  }
  return false;
}

async function readPid(pidFile: string): Promise<number | null> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}
