// The two numbers that pace reloads, without timers: the share of wall time reloads may take
// (ReloadShare, on explicit times) and how many old worker generations drain (drainingGenerations,
// on a /proc laid out in a temporary directory; spec/integration/nginx-draining.spec.ts counts a
// real nginx's).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { drainingGenerations, masterDrainingGenerations } from '../../src/nginx/draining.ts';
import { ReloadShare } from '../../src/sync/pacing.ts';

describe('ReloadShare', () => {
  it('lets a reload start at once when nothing, or little, was reloaded in the window', () => {
    const share = new ReloadShare({ sharePercent: 50, windowMs: 10_000 });
    assert.equal(share.earliest(1000), 1000);
    share.record(1000, 1150);
    assert.equal(share.earliest(1150), 1150);
    // A 150 ms reload every 450 ms (applied one by one) is a third of the time: never held.
    for (let t = 1450; t < 60_000; t += 450) {
      assert.equal(share.earliest(t), t, `held at ${t}`);
      share.record(t, t + 150);
    }
  });

  it('holds the next reload until the window holds its share, the next reload counted in', () => {
    const share = new ReloadShare({ sharePercent: 50, windowMs: 10_000 });
    // Five 1 s reloads back to back: 5 s of the 10 s window, and the next would take 1 s more.
    for (let t = 0; t < 5000; t += 1000) share.record(t, t + 1000);
    // Starting at 10 s, the window that ends with it, (1 s, 11 s], holds 4 s + the next 1 s.
    assert.equal(share.earliest(5000), 10_000);
    assert.equal(share.earliest(12_000), 12_000);
  });

  it('finds the start inside a reload that leaves the window only in part', () => {
    const share = new ReloadShare({ sharePercent: 25, windowMs: 1000 });
    share.record(0, 100);
    share.record(200, 300);
    // Budget 250, next reload 100: at most 150 of the past two in the window that ends with the
    // next one. Starting at 950: (50, 1050] keeps 50 of the first, 100 of the second, the next 100.
    assert.equal(share.earliest(300), 950);
  });

  it('stretches the window for a reload longer than its share, so that large configurations get the same share', () => {
    const share = new ReloadShare({ sharePercent: 50, windowMs: 10_000 });
    share.record(0, 8000);
    // A window of 8 s / 50% = 16 s may hold only the next 8 s reload: 8 s without one first.
    assert.equal(share.earliest(8000), 16_000);
  });

  it('does not limit at 100%, and forgets reloads that left every window', () => {
    const all = new ReloadShare({ sharePercent: 100, windowMs: 1000 });
    all.record(0, 5000);
    assert.equal(all.earliest(5000), 5000);
    const half = new ReloadShare({ sharePercent: 50, windowMs: 1000 });
    half.record(0, 400);
    half.record(400, 800);
    assert.equal(half.earliest(800), 1300);
    assert.equal(half.earliest(100_000), 100_000);
  });
});

describe('drainingGenerations', () => {
  let proc: string;
  beforeEach(async () => {
    proc = await mkdtemp(path.join(os.tmpdir(), 'draining-proc-'));
  });
  afterEach(async () => {
    await rm(proc, { recursive: true, force: true });
  });

  /** One process: its title (NUL-separated, as the kernel gives it), parent and start time in ticks. */
  async function processEntry(pid: number, title: string, ppid: number, start: number): Promise<void> {
    await mkdir(path.join(proc, String(pid)), { recursive: true });
    await writeFile(path.join(proc, String(pid), 'cmdline'), title.replace(/ /g, '\0') + '\0');
    // Fields after "(comm)": state, ppid, then 17 more, then starttime (field 22).
    const after = ['S', String(ppid), ...Array.from({ length: 17 }, () => '0'), String(start), '0'];
    await writeFile(path.join(proc, String(pid), 'stat'), `${pid} (nginx: a) b) ${after.join(' ')}\n`);
  }

  async function nginxTree(children: boolean): Promise<void> {
    await processEntry(100, 'nginx: master process nginx -c /etc/nginx/nginx.conf', 1, 500);
    await processEntry(101, 'nginx: worker process', 100, 9000);
    await processEntry(102, 'nginx: worker process', 100, 9000);
    // Two generations draining: one forked over ticks 7000-7002 (a large configuration forks slowly), one at 8000.
    await processEntry(103, 'nginx: worker process is shutting down', 100, 7000);
    await processEntry(104, 'nginx: worker process is shutting down', 100, 7002);
    await processEntry(105, 'nginx: worker process is shutting down', 100, 8000);
    await processEntry(106, 'nginx: cache manager process', 100, 9000);
    // Another master's draining worker is not ours.
    await processEntry(200, 'nginx: worker process is shutting down', 199, 6000);
    if (children) {
      await mkdir(path.join(proc, '100/task/100'), { recursive: true });
      // 107 exited between the list and the read: no files, not counted.
      await writeFile(path.join(proc, '100/task/100/children'), '101 102 103 104 105 106 107 ');
    }
  }

  it("counts the master's old generations still shutting down, from the kernel's list of children", async () => {
    await nginxTree(true);
    assert.equal(await drainingGenerations(100, proc), 2);
  });

  it('finds the children by their parent where the kernel keeps no list', async () => {
    await nginxTree(false);
    assert.equal(await drainingGenerations(100, proc), 2);
  });

  it('is 0 for a master without draining workers, a gone master, or no master at all', async () => {
    await processEntry(100, 'nginx: master process nginx', 1, 500);
    await processEntry(101, 'nginx: worker process', 100, 9000);
    assert.equal(await drainingGenerations(100, proc), 0);
    assert.equal(await drainingGenerations(4242, proc), 0);
    assert.equal(await masterDrainingGenerations({ pidFile: path.join(proc, 'no.pid'), procDir: proc }), 0);
  });

  it('finds the master from its pid file', async () => {
    await nginxTree(true);
    await writeFile(path.join(proc, 'nginx.pid'), '100\n');
    assert.equal(await masterDrainingGenerations({ pidFile: path.join(proc, 'nginx.pid'), procDir: proc }), 2);
  });
});
