// Finding and signalling the nginx master from outside its container. With a shared PID
// namespace the pid file nginx writes names a PID we can see, and /proc tells us what each
// process is: nginx retitles itself "nginx: master process ..." / "nginx: worker process".
// Also a binary's version (`nginx -v`); the serving master's is serving-version.ts's.
import { accessSync, constants, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { versionInBanner } from './version.ts';

const MASTER_TITLE = 'nginx: master process';
const WORKER_TITLE = 'nginx: worker process';

export type ReloadOutcome = { ok: true; newWorkers: number[] } | { ok: false; reason: string };

/**
 * The PID of the nginx master, or null when none is running. With a pid file the file decides
 * (a stale one gives null); without, /proc is scanned and more than one master is an error,
 * because signalling the wrong one would report success while nothing changed.
 * `procDir` exists for tests.
 */
export async function findMaster(opts: { pidFile?: string; procDir?: string }): Promise<number | null> {
  const proc = opts.procDir ?? '/proc';
  if (opts.pidFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.pidFile, 'utf8');
    } catch (err) {
      // nginx removes its pid file on exit, and it is not there yet while nginx starts.
      if (errCode(err) === 'ENOENT') return null;
      throw err;
    }
    const pid = parsePid(text.trim());
    if (pid === null) return null;
    return (await cmdline(proc, pid))?.startsWith(MASTER_TITLE) ? pid : null;
  }

  const masters: number[] = [];
  for (const pid of await listPids(proc)) {
    if ((await cmdline(proc, pid))?.startsWith(MASTER_TITLE)) masters.push(pid);
  }
  if (masters.length > 1) {
    throw new Error(
      `found ${masters.length} nginx master processes (PIDs ${masters.join(', ')}); ` +
        'pass --nginx-pid-file to say which one to reload',
    );
  }
  return masters[0] ?? null;
}

/**
 * A name for one nginx master that survives PID reuse: `PID@STARTTIME` (the start time in clock
 * ticks since boot, field 22 of /proc/PID/stat), or just `PID` when its stat cannot be read.
 * Costs one small read; the sidecar compares it every few seconds to notice a restarted nginx.
 */
export async function masterIdentity(pid: number, procDir = '/proc'): Promise<string> {
  try {
    const stat = await readFile(`${procDir}/${pid}/stat`, 'latin1');
    // Fields resume after the command name's last ')'; starttime is field 22, i.e. the 20th after it.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start !== undefined && /^[0-9]+$/.test(start) ? `${pid}@${start}` : String(pid);
  } catch {
    return String(pid);
  }
}

/** The live workers of a master; workers still draining after a reload do not count. */
export async function workerPids(masterPid: number, procDir = '/proc'): Promise<Set<number>> {
  const workers = new Set<number>();
  const children = await childPids(procDir, masterPid);
  for (const pid of children ?? (await listPids(procDir))) {
    // The kernel's list holds the master's children only; a scan of /proc has to ask each process.
    if (await isLiveWorker(procDir, masterPid, pid, children !== null)) workers.add(pid);
  }
  return workers;
}

async function isLiveWorker(procDir: string, masterPid: number, pid: number, knownChild: boolean): Promise<boolean> {
  if (!knownChild && (await parentPid(procDir, pid)) !== masterPid) return false;
  const title = await cmdline(procDir, pid);
  return title !== null && title.startsWith(WORKER_TITLE) && !title.includes('is shutting down');
}

/**
 * The master's children from `/proc/<pid>/task/<pid>/children` (Linux >= 3.5 with
 * CONFIG_PROC_CHILDREN), or null when the kernel has no such file: then the caller scans /proc,
 * which costs a stat and a cmdline read per process on the machine (~7 ms for 100 processes).
 * The nginx master is single-threaded, so its main task's list is all of its children. The list
 * may omit a live child while a sibling exits during the read (proc_tid_children(5)), which
 * happens as old workers finish draining: reloadAndVerify() therefore never concludes from the
 * absence of an old worker in the list, and asks each old worker itself.
 */
async function childPids(procDir: string, pid: number): Promise<number[] | null> {
  let text: string;
  try {
    text = await readFile(`${procDir}/${pid}/task/${pid}/children`, 'latin1');
  } catch {
    // ENOENT: no such kernel feature (or the master is gone, which the scan then shows); EACCES
    // and the like: the scan is the slow but sure way.
    return null;
  }
  const pids: number[] = [];
  for (const word of text.split(/\s+/)) {
    const child = parsePid(word);
    if (child !== null) pids.push(child);
  }
  return pids;
}

/**
 * SIGHUP the master and wait until its live workers are all new. nginx only forks a new worker
 * generation after it has parsed the new configuration and opened its sockets, then tells the
 * old workers to shut down; when it rejects the configuration it logs to its own error log and
 * keeps the old workers, so "no new generation in time" is the only failure visible from outside.
 * Waiting for the old workers to go as well (not just for one new worker) matters: a worker
 * forked late by the previous reload is new too, and on its own would pass for a success.
 */
export async function reloadAndVerify(masterPid: number, timeoutMs: number): Promise<ReloadOutcome> {
  const before = await workerPids(masterPid);
  try {
    process.kill(masterPid, 'SIGHUP');
  } catch (err) {
    const code = errCode(err);
    if (code === 'EPERM') {
      return {
        ok: false,
        reason: `not allowed to signal nginx master ${masterPid} (EPERM): run the sidecar as the same user as nginx`,
      };
    }
    if (code === 'ESRCH') return { ok: false, reason: `nginx master ${masterPid} is gone (ESRCH)` };
    return { ok: false, reason: `could not signal nginx master ${masterPid}: ${String(err)}` };
  }

  const pollMs = 15;
  const deadline = Date.now() + timeoutMs;
  const maxPolls = Math.ceil(timeoutMs / pollMs) + 1;
  for (let i = 0; i < maxPolls && Date.now() < deadline; i++) {
    await sleep(pollMs);
    const now = [...(await workerPids(masterPid))];
    if (now.length > 0 && now.every((pid) => !before.has(pid)) && !(await anyStillLive(masterPid, before))) {
      return { ok: true, newWorkers: now.sort((a, b) => a - b) };
    }
    if (!(await cmdline('/proc', masterPid))?.startsWith(MASTER_TITLE)) {
      return { ok: false, reason: `nginx master ${masterPid} exited during the reload` };
    }
  }
  return {
    ok: false,
    reason:
      `nginx master ${masterPid} did not replace its workers within ${timeoutMs} ms of SIGHUP; ` +
      'nginx most likely rejected the configuration (see its error log)',
  };
}

/** Whether any of the master's old workers is still a live worker (checked one by one, not by list). */
async function anyStillLive(masterPid: number, old: ReadonlySet<number>): Promise<boolean> {
  for (const pid of old) if (await isLiveWorker('/proc', masterPid, pid, false)) return true;
  return false;
}

async function listPids(procDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir(procDir)) {
    const pid = parsePid(name);
    if (pid !== null) pids.push(pid);
  }
  return pids;
}

/** The process title with NULs as spaces, or null when the process is gone or a zombie. */
async function cmdline(procDir: string, pid: number): Promise<string | null> {
  try {
    const raw = await readFile(`${procDir}/${pid}/cmdline`, 'latin1');
    return raw === '' ? null : raw.replace(/\0/g, ' ');
  } catch {
    // Processes come and go while we scan, and other users' entries may be unreadable.
    return null;
  }
}

async function parentPid(procDir: string, pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`${procDir}/${pid}/stat`, 'latin1');
    // The command name in parentheses may itself contain spaces and ')'; fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return parsePid(fields[1] ?? '');
  } catch {
    return null;
  }
}

function parsePid(text: string): number | null {
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return null;
  const pid = Number(text);
  return pid <= 2 ** 31 - 1 ? pid : null;
}

function errCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * The nginx binary for `nginx -t`: a path as given, or a name looked up on PATH and in the sbin
 * directories where distributions install nginx (often not on a non-root PATH). Null if absent.
 * `pathEnv` is PATH, as config read it (config.ts is the only reader of the environment).
 */
export function findExecutable(nameOrPath: string, pathEnv: string): string | null {
  const candidates = nameOrPath.includes('/')
    ? [nameOrPath]
    : [...pathEnv.split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'].map((d) => `${d}/${nameOrPath}`);
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not here; try the next place
    }
  }
  return null;
}

/** `major.minor.patch` from `nginx -v` (it prints "nginx version: nginx/1.27.4" on stderr), or null. */
export async function nginxVersion(binary: string): Promise<string | null> {
  const result = await execa(binary, ['-v'], { reject: false, stdin: 'ignore', timeout: 10_000, all: true });
  return versionInBanner(result.all ?? '');
}
