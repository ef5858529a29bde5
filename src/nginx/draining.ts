// How many old worker generations an nginx master still has draining: after a reload the old
// workers retitle themselves "nginx: worker process is shutting down" and live on until their last
// connection closes (or worker_shutdown_timeout). Each generation holds its connections and its
// configuration's memory meanwhile, so the reconciler waits while too many drain.
//
// Generations are told apart by start time: a master forks one generation's workers back to back,
// one fork after the other (a fork of a 600 MB process, nginx's master at 10,000 Ingresses, took
// 13-22 ms here), while a reload first parses the whole configuration, forks, then sleeps 100 ms
// before it retires the old workers (ngx_master_process_cycle()), so the next reload's workers
// start at least that much later. A worker started GENERATION_GAP_TICKS or more after the
// previous one therefore begins a new generation. A worker the master respawned after a crash
// counts as a generation of its own, which errs on the safe side; a reload within 50 ms of
// nginx's start merges its generation with the first one, which only a tiny configuration can.
import { readFile, readdir } from 'node:fs/promises';
import { findMaster } from './process.ts';

const DRAINING_TITLE = 'nginx: worker process is shutting down';
/** 5 clock ticks: 50 ms at the USER_HZ of 100 that /proc reports start times in on Linux. */
const GENERATION_GAP_TICKS = 5;

/** Old worker generations of `masterPid` still draining; 0 when it has none or is gone. */
export async function drainingGenerations(masterPid: number, procDir = '/proc'): Promise<number> {
  const starts: number[] = [];
  for (const pid of await children(procDir, masterPid)) {
    const title = await readText(`${procDir}/${pid}/cmdline`);
    if (!title?.replace(/\0/g, ' ').startsWith(DRAINING_TITLE)) continue;
    const stat = await readText(`${procDir}/${pid}/stat`);
    const start = stat === null ? undefined : startTime(stat);
    if (start !== undefined) starts.push(start);
  }
  starts.sort((a, b) => a - b);
  let generations = 0;
  for (let i = 0; i < starts.length; i++) {
    if (i === 0 || starts[i]! - starts[i - 1]! >= GENERATION_GAP_TICKS) generations++;
  }
  return generations;
}

/**
 * The same for the master named by the pid file (or found in /proc, as findMaster does): what
 * the reconciler's `drainingGenerations` option wants. 0 while no master runs.
 */
export async function masterDrainingGenerations(opts: { pidFile?: string; procDir?: string }): Promise<number> {
  const master = await findMaster(opts);
  return master === null ? 0 : drainingGenerations(master, opts.procDir);
}

/**
 * The master's children: the kernel's list where it has one (Linux >= 3.5 with
 * CONFIG_PROC_CHILDREN), else every process whose parent it is. A draining worker that exits
 * during the read may be missing from either (proc_tid_children(5)): one too few, for one pass.
 */
async function children(procDir: string, masterPid: number): Promise<number[]> {
  const list = await readText(`${procDir}/${masterPid}/task/${masterPid}/children`);
  if (list !== null) return list.split(/\s+/).filter(isPid).map(Number);
  const pids: number[] = [];
  const names = await readdir(procDir).catch(() => [] as string[]);
  for (const name of names.filter(isPid)) {
    const stat = await readText(`${procDir}/${name}/stat`);
    if (stat !== null && parentPid(stat) === masterPid) pids.push(Number(name));
  }
  return pids;
}

/** Fields of /proc/PID/stat after the command name, which may itself hold spaces and ')'. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function parentPid(stat: string): number | undefined {
  const ppid = statFields(stat)[1];
  return ppid !== undefined && isPid(ppid) ? Number(ppid) : undefined;
}

/** Field 22, starttime: clock ticks since boot. */
function startTime(stat: string): number | undefined {
  const start = statFields(stat)[19];
  return start !== undefined && /^[0-9]+$/.test(start) ? Number(start) : undefined;
}

function isPid(text: string): boolean {
  return /^[1-9][0-9]{0,9}$/.test(text);
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'latin1');
  } catch {
    // Processes come and go while we read; a gone one counts as not draining.
    return null;
  }
}
