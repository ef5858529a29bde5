// An nginx master's processes as benchmarks and tests look at them. The live workers are
// src/nginx/process.ts's workerPids (the one listing the sidecar's reload check uses); this adds
// the old workers still draining after a reload, and every child, for memory figures and cleanup.
import { readFile } from 'node:fs/promises';
import { workerPids } from '../nginx/process.ts';

/** The master's children from the kernel's list (/proc/PID/task/PID/children); empty when it has none. */
export async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'latin1').catch(() => '');
  return text
    .split(/\s+/)
    .filter((w) => /^\d+$/.test(w))
    .map(Number);
}

/** Workers of a master: live (the current generation) and draining (old ones shutting down). */
export async function nginxWorkers(master: number): Promise<{ live: number[]; draining: number[] }> {
  const live = await workerPids(master);
  const draining: number[] = [];
  for (const pid of await childPids(master)) {
    if (live.has(pid)) continue;
    const title = (await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '')).replace(/\0/g, ' ');
    if (title.startsWith('nginx: worker process is shutting down')) draining.push(pid);
  }
  return { live: [...live], draining };
}
