// Apply against a real nginx: what a client sees before and after, what is on disk, and which
// processes nginx runs. Every test gets its own conf dir, port and nginx master.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Applier, ReloadError, type ApplyResult } from '../../src/nginx/apply.ts';
import { NginxConfigError } from '../../src/nginx/config-test.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { findMaster, masterIdentity, workerPids } from '../../src/nginx/process.ts';
import { freePort, httpGet, nginxBinary, startNginx, type RunningNginx } from '../helpers/nginx.ts';

function serverBlock(port: number, body: string, extra = ''): string {
  return `server {
    listen 127.0.0.1:${port};
    server_name app.example;
${extra}    location / {
        default_type text/plain;
        return 200 "${body}\\n";
    }
}
`;
}

async function readConfDir(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  // Every file, temp files included, but the applier's record of what nginx has loaded.
  for (const name of (await readdir(dir)).sort()) {
    if (name !== '.ingress-sidecar-applied') out[name] = await readFile(path.join(dir, name), 'utf8');
  }
  return out;
}

/** Old workers close their listeners a moment after the new generation starts; allow that moment. */
async function bodyEventually(port: number, expected: string): Promise<string> {
  let body = '';
  for (let i = 0; i < 40; i++) {
    body = (await httpGet(port, 'app.example', '/')).body;
    if (body === expected) break;
    await sleep(25);
  }
  return body;
}

/** Every nginx master on the machine, by the same test /proc gives everyone. */
async function allMasters(): Promise<number[]> {
  const masters: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '');
    if (cmd.startsWith('nginx: master process')) masters.push(Number(name));
  }
  return masters;
}

describe('Applier against a real nginx', function () {
  this.timeout(30_000);

  let work: string;
  let confDir: string;
  let pidFile: string;
  let port: number;
  let nginx: RunningNginx | undefined;
  const extra: RunningNginx[] = [];

  function applier(over: Partial<ConstructorParameters<typeof Applier>[0]> = {}) {
    const { logger, entries } = createMemoryLogger();
    const a = new Applier({
      confDir,
      nginxBinary: nginxBinary(),
      pidFile,
      reloadTimeoutMs: 5000,
      logger,
      stateDir: path.join(work, 'state'),
      ...over,
    });
    return { applier: a, entries };
  }

  beforeEach(async function () {
    work = await mkdtemp(path.join(os.tmpdir(), 'apply-spec-'));
    confDir = path.join(work, 'conf.d');
    pidFile = path.join(work, 'run', 'nginx.pid');
    await mkdir(confDir);
    await mkdir(path.join(work, 'run'));
    await mkdir(path.join(work, 'state'));
    port = await freePort();
    nginx = await startNginx({ confDir, pidFile });
  });

  afterEach(async function () {
    await Promise.allSettled([nginx?.stop(), ...extra.map((n) => n.stop())]);
    nginx = undefined;
    extra.length = 0;
    await rm(work, { recursive: true, force: true });
  });

  it('writes the files, starts a new worker generation, and the served page changes', async function () {
    const { applier: a } = applier();
    const master = await nginx!.masterPid();

    const first = await a.apply(new Map([['ingress-sidecar-app.conf', serverBlock(port, 'one')]]));
    assert.deepEqual(first, { changed: true, reloaded: true, masterPid: master, files: ['ingress-sidecar-app.conf'] });
    assert.deepEqual(await readConfDir(confDir), { 'ingress-sidecar-app.conf': serverBlock(port, 'one') });
    assert.equal((await httpGet(port, 'app.example', '/')).body, 'one\n');

    const before = await workerPids(master);
    const second = await a.apply(new Map([['ingress-sidecar-app.conf', serverBlock(port, 'two')]]));
    assert.deepEqual(second, { changed: true, reloaded: true, masterPid: master, files: ['ingress-sidecar-app.conf'] });
    const after = await workerPids(master);
    assert.ok(after.size > 0 && [...after].every((pid) => !before.has(pid)), `workers ${[...before]} -> ${[...after]}`);
    assert.equal(await bodyEventually(port, 'two\n'), 'two\n');
  });

  it('does nothing at all when the desired files are already there', async function () {
    const files = new Map([
      ['ingress-sidecar-a.conf', serverBlock(port, 'same')],
      ['ingress-sidecar-b.conf', '# empty\n'],
    ]);
    const { applier: a } = applier();
    assert.equal((await a.apply(files)).reloaded, true);
    const master = await nginx!.masterPid();
    const workers = await workerPids(master);
    const mtime = (await stat(path.join(confDir, 'ingress-sidecar-a.conf'))).mtimeMs;

    assert.deepEqual(await a.apply(new Map(files)), { changed: false, reloaded: false });
    // A fresh applier (a restarted sidecar) reads the disk once and agrees.
    assert.deepEqual(await applier().applier.apply(new Map(files)), { changed: false, reloaded: false });
    assert.deepEqual(await workerPids(master), workers);
    assert.equal((await stat(path.join(confDir, 'ingress-sidecar-a.conf'))).mtimeMs, mtime);
  });

  it('reloads once when an earlier run left the files on disk but never got nginx to load them', async function () {
    // As if a sidecar crashed between swapping the files in and signalling nginx.
    await writeFile(path.join(confDir, 'ingress-sidecar-a.conf'), serverBlock(port, 'unloaded'));
    await assert.rejects(httpGet(port, 'app.example', '/'));
    const master = await nginx!.masterPid();
    const result = await applier().applier.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'unloaded')]]));
    assert.deepEqual(result, { changed: false, reloaded: true, masterPid: master, files: [] });
    assert.equal(await bodyEventually(port, 'unloaded\n'), 'unloaded\n');
    // Recorded: the next restart agrees without a reload.
    const again = await applier().applier.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'unloaded')]]));
    assert.deepEqual(again, { changed: false, reloaded: false });
  });

  it('rewrites only the files that changed', async function () {
    const { applier: a } = applier();
    await a.apply(
      new Map([
        ['ingress-sidecar-a.conf', serverBlock(port, 'a')],
        ['ingress-sidecar-b.conf', '# b\n'],
      ]),
    );
    const mtimeA = (await stat(path.join(confDir, 'ingress-sidecar-a.conf'))).mtimeMs;
    await sleep(20);
    const result = await a.apply(
      new Map([
        ['ingress-sidecar-a.conf', serverBlock(port, 'a')],
        ['ingress-sidecar-b.conf', '# b2\n'],
      ]),
    );
    assert.equal(result.reloaded, true);
    assert.equal((await stat(path.join(confDir, 'ingress-sidecar-a.conf'))).mtimeMs, mtimeA);
    assert.equal(await readFile(path.join(confDir, 'ingress-sidecar-b.conf'), 'utf8'), '# b2\n');
  });

  it('rejects what nginx -t rejects, names our file and line, and leaves everything as it was', async function () {
    const { applier: a } = applier();
    await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'good')]]));
    const master = await nginx!.masterPid();
    const workers = await workerPids(master);
    const disk = await readConfDir(confDir);

    const bad = new Map([
      ['ingress-sidecar-a.conf', serverBlock(port, 'better')],
      ['ingress-sidecar-b.conf', 'server {\n    listen 127.0.0.1:1;\n    no_such_directive on;\n}\n'],
    ]);
    const err = await a.apply(bad).then(
      () => assert.fail('expected NginxConfigError'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NginxConfigError, String(err));
    assert.equal(err.file, 'ingress-sidecar-b.conf');
    assert.equal(err.line, 3);
    assert.match(err.message, /unknown directive "no_such_directive" in .*conf\.d\/ingress-sidecar-b\.conf:3/);
    assert.match(err.nginxOutput, /test failed/);

    assert.deepEqual(await readConfDir(confDir), disk);
    assert.deepEqual(await readdir(path.join(work, 'state')), [], 'staging dirs are cleaned up');
    assert.deepEqual(await workerPids(master), workers);
    assert.equal((await httpGet(port, 'app.example', '/')).body, 'good\n');
  });

  it('checks the whole set in name order, unchanged files from confDir and changed ones staged', async function () {
    const { applier: a } = applier();
    const format = (name: string) => `log_format ${name} '$request';\n`;
    const user = (fmt: string, body: string) => serverBlock(port, body, `    access_log /dev/null ${fmt};\n`);
    await a.apply(
      new Map([
        ['ingress-sidecar-a.conf', format('fmt')],
        ['ingress-sidecar-b.conf', user('fmt', 'one')],
      ]),
    );
    // Unchanged a (from confDir) defines what changed b (staged) uses, and the other way round:
    // either way a must come first, as in nginx's own `include conf.d/*.conf`.
    assert.equal(
      (
        await a.apply(
          new Map([
            ['ingress-sidecar-a.conf', format('fmt')],
            ['ingress-sidecar-b.conf', user('fmt', 'two')],
          ]),
        )
      ).reloaded,
      true,
    );
    assert.equal(
      (
        await a.apply(
          new Map([
            ['ingress-sidecar-a.conf', format('fmt') + format('other')],
            ['ingress-sidecar-b.conf', user('fmt', 'two')],
          ]),
        )
      ).reloaded,
      true,
    );
    assert.equal(await bodyEventually(port, 'two\n'), 'two\n');

    // A removed file is not checked: c may take the default_server that b held.
    const otherPort = await freePort();
    const defaultServer = `server {\n    listen 127.0.0.1:${otherPort} default_server;\n}\n`;
    await a.apply(
      new Map([
        ['ingress-sidecar-a.conf', format('fmt')],
        ['ingress-sidecar-b.conf', defaultServer],
      ]),
    );
    const moved = await a.apply(
      new Map([
        ['ingress-sidecar-a.conf', format('fmt')],
        ['ingress-sidecar-c.conf', defaultServer],
      ]),
    );
    assert.deepEqual(moved.files, ['ingress-sidecar-b.conf', 'ingress-sidecar-c.conf']);

    // nginx blames the unchanged file that comes second, read from confDir: still ours, by name.
    const err = await a
      .apply(
        new Map([
          ['ingress-sidecar-a.conf', format('fmt')],
          ['ingress-sidecar-b.conf', defaultServer],
          ['ingress-sidecar-c.conf', defaultServer],
        ]),
      )
      .catch((e: unknown) => e);
    assert.ok(err instanceof NginxConfigError, String(err));
    assert.match(err.message, /duplicate default server .* in .*conf\.d\/ingress-sidecar-c\.conf:2/);
    assert.equal(err.file, 'ingress-sidecar-c.conf');
    assert.equal(err.line, 2);
    assert.deepEqual(await readdir(path.join(work, 'state')), [], 'staging dirs are cleaned up');
  });

  it('writes, renames and removes many files at once, and checks them all', async function () {
    const { applier: a } = applier();
    const many = (body: string, n: number) =>
      new Map(
        Array.from(
          { length: n },
          (_, i) => [`ingress-sidecar-s${String(i).padStart(3, '0')}.conf`, `# ${body} ${i}\n`] as [string, string],
        ),
      );
    await a.apply(new Map([...many('one', 200), ['ingress-sidecar-z.conf', serverBlock(port, 'one')]]));
    const result = await a.apply(new Map([...many('two', 150), ['ingress-sidecar-z.conf', serverBlock(port, 'two')]]));
    assert.equal(result.files?.length, 201);
    const disk = await readConfDir(confDir);
    assert.deepEqual(Object.keys(disk), [...many('two', 150).keys(), 'ingress-sidecar-z.conf']);
    assert.equal(disk['ingress-sidecar-s149.conf'], '# two 149\n');
    assert.equal(await bodyEventually(port, 'two\n'), 'two\n');
  });

  it("checks our files together with the user's own files in confDir", async function () {
    const userPort = await freePort();
    const userFile = serverBlock(userPort, 'user').replace(
      `listen 127.0.0.1:${userPort};`,
      `listen 127.0.0.1:${userPort} default_server;`,
    );
    await writeFile(path.join(confDir, 'user-site.conf'), userFile);
    const { applier: a } = applier();

    const clash = `server {\n    listen 127.0.0.1:${userPort} default_server;\n}\n`;
    const err = await a.apply(new Map([['ingress-sidecar-a.conf', clash]])).catch((e: unknown) => e);
    assert.ok(err instanceof NginxConfigError, String(err));
    assert.match(err.message, /duplicate default server/);
    assert.equal(err.file, 'ingress-sidecar-a.conf');
    assert.deepEqual(await readConfDir(confDir), { 'user-site.conf': userFile });
  });

  it('removes stale files of ours and leaves foreign files alone', async function () {
    const userPort = await freePort();
    const userFile = serverBlock(userPort, 'user');
    await writeFile(path.join(confDir, 'user-site.conf'), userFile);
    await writeFile(path.join(confDir, 'ingress-sidecar-stale.conf'), '# left by an earlier run\n');
    await writeFile(path.join(confDir, 'notes.txt'), 'not nginx config\n');

    const { applier: a } = applier();
    const result = await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'a')]]));
    assert.equal(result.reloaded, true);
    assert.deepEqual(await readConfDir(confDir), {
      'ingress-sidecar-a.conf': serverBlock(port, 'a'),
      'notes.txt': 'not nginx config\n',
      'user-site.conf': userFile,
    });
    assert.equal((await httpGet(userPort, 'app.example', '/')).body, 'user\n');
    assert.equal((await httpGet(port, 'app.example', '/')).body, 'a\n');

    // Dropping every file of ours is a change too.
    assert.deepEqual(await a.apply(new Map()), {
      changed: true,
      reloaded: true,
      masterPid: await nginx!.masterPid(),
      files: ['ingress-sidecar-a.conf'],
    });
    assert.deepEqual(Object.keys(await readConfDir(confDir)), ['notes.txt', 'user-site.conf']);
  });

  it('finds a restarted nginx master through the pid file', async function () {
    const { applier: a } = applier();
    const oldMaster = await nginx!.masterPid();
    assert.equal(
      (await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'before')]]))).masterPid,
      oldMaster,
    );

    await nginx!.stop();
    nginx = await startNginx({ confDir, pidFile });
    const newMaster = await nginx.masterPid();
    assert.notEqual(newMaster, oldMaster);

    const result = await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'after')]]));
    assert.deepEqual(result, {
      changed: true,
      reloaded: true,
      masterPid: newMaster,
      files: ['ingress-sidecar-a.conf'],
    });
    assert.equal(await bodyEventually(port, 'after\n'), 'after\n');
  });

  it('writes the files and reports no reload when no nginx master runs', async function () {
    await nginx!.stop();
    const { applier: a, entries } = applier();
    const files = new Map([['ingress-sidecar-a.conf', serverBlock(port, 'later')]]);
    assert.deepEqual(await a.apply(files), { changed: true, reloaded: false, files: ['ingress-sidecar-a.conf'] });
    assert.deepEqual(await readConfDir(confDir), { 'ingress-sidecar-a.conf': serverBlock(port, 'later') });
    assert.ok(entries.some((e) => e.level === 'warn' && /no nginx master/.test(String(e.message))));

    // nginx reads them when it starts. Nothing vouches that it read them whole (it may have
    // parsed conf.d mid-swap), so the next identical apply reloads it once, and then no more.
    nginx = await startNginx({ confDir, pidFile });
    assert.equal((await httpGet(port, 'app.example', '/')).body, 'later\n');
    const master = await nginx.masterPid();
    assert.deepEqual(await a.masterChanged(), { previous: null, current: master });
    assert.deepEqual(await a.apply(files), { changed: false, reloaded: true, masterPid: master, files: [] });
    assert.equal(await a.masterChanged(), null);
    assert.deepEqual(await a.apply(files), { changed: false, reloaded: false });
  });

  it('reloads a restarted nginx master once, files unchanged, when it may run an older set', async function () {
    const { applier: a } = applier();
    const files = new Map([['ingress-sidecar-a.conf', serverBlock(port, 'current')]]);
    assert.equal(await a.masterChanged(), null, 'nothing applied yet');
    await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'older')]]));
    await a.apply(files);
    const oldMaster = await nginx!.masterPid();
    assert.equal(await a.masterChanged(), null, 'the master that loaded them');

    // A new master that parsed conf.d before our last swap landed: it serves the older set.
    await nginx!.stop();
    await writeFile(path.join(confDir, 'ingress-sidecar-a.conf'), serverBlock(port, 'older'));
    nginx = await startNginx({ confDir, pidFile });
    await writeFile(path.join(confDir, 'ingress-sidecar-a.conf'), serverBlock(port, 'current'));
    assert.equal((await httpGet(port, 'app.example', '/')).body, 'older\n');

    const master = await nginx.masterPid();
    assert.deepEqual(await a.masterChanged(), { previous: oldMaster, current: master });
    assert.deepEqual(await a.apply(new Map(files)), { changed: false, reloaded: true, masterPid: master, files: [] });
    assert.equal(await bodyEventually(port, 'current\n'), 'current\n');
    assert.equal(await a.masterChanged(), null);
    const workers = await workerPids(master);
    assert.deepEqual(await a.apply(new Map(files)), { changed: false, reloaded: false });
    assert.deepEqual(await workerPids(master), workers);
    // Recorded against this master: a restarted sidecar agrees without a reload.
    assert.deepEqual(await applier().applier.apply(new Map(files)), { changed: false, reloaded: false });
  });

  it('names a master by PID and start time, so a reused PID is a new master', async function () {
    const master = await nginx!.masterPid();
    const id = await masterIdentity(master);
    assert.match(id, new RegExp(`^${master}@[0-9]+$`));
    assert.equal(await masterIdentity(master), id);
    assert.equal(await masterIdentity(2 ** 31 - 2), String(2 ** 31 - 2), 'no such process: the PID alone');
  });

  it('puts the previous files back when nginx does not take the new ones', async function () {
    const { applier: a } = applier({ reloadTimeoutMs: 1000 });
    await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'old')]]));
    const disk = await readConfDir(confDir);

    // nginx -t does not bind, so a port held by someone else passes the check and fails the reload.
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    try {
      const taken = (squatter.address() as net.AddressInfo).port;
      const err = await a
        .apply(
          new Map([
            ['ingress-sidecar-a.conf', serverBlock(port, 'new')],
            ['ingress-sidecar-b.conf', serverBlock(taken, 'b')],
          ]),
        )
        .catch((e: unknown) => e);
      assert.ok(err instanceof ReloadError, String(err));
      assert.match(err.reason, /did not replace its workers within 1000 ms of SIGHUP; nginx most likely rejected/);
      assert.deepEqual(await readConfDir(confDir), disk);
      assert.equal((await httpGet(port, 'app.example', '/')).body, 'old\n');
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('leaves the last good files in place when confDir cannot be written', async function () {
    const { applier: a } = applier();
    await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'good')]]));
    const disk = await readConfDir(confDir);
    const master = await nginx!.masterPid();
    const workers = await workerPids(master);

    // A directory where the temp file has to go: writing it fails like a full or read-only disk.
    await mkdir(path.join(confDir, '.ingress-sidecar-b.conf.tmp'));
    const err = await a
      .apply(
        new Map([
          ['ingress-sidecar-a.conf', serverBlock(port, 'changed')],
          ['ingress-sidecar-b.conf', '# b\n'],
        ]),
      )
      .catch((e: unknown) => e);
    assert.ok(err instanceof Error);
    assert.match(err.message, /could not write .*EISDIR.*previous files are still in place/);
    await rm(path.join(confDir, '.ingress-sidecar-b.conf.tmp'), { recursive: true });
    assert.deepEqual(await readConfDir(confDir), disk);
    assert.deepEqual(await workerPids(master), workers);
  });

  it('refuses file names it does not own', async function () {
    const { applier: a } = applier();
    for (const name of [
      'default.conf',
      'ingress-sidecar-a.txt',
      'ingress-sidecar/../x.conf',
      '.ingress-sidecar-a.conf',
    ]) {
      await assert.rejects(a.apply(new Map([[name, '']])), /refusing to manage/, name);
    }
    assert.deepEqual(await readdir(confDir), []);
  });

  it('skips nginx -t, with one warning, when there is no nginx binary', async function () {
    const { applier: a, entries } = applier({ nginxBinary: null });
    await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'x')]]));
    await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'y')]]));
    assert.equal(entries.filter((e) => /nginx binary not found; skipping nginx -t/.test(String(e.message))).length, 1);
    assert.equal(await bodyEventually(port, 'y\n'), 'y\n');
  });

  describe('without a pid file (scanning /proc)', function () {
    it('refuses to guess when several nginx masters run', async function () {
      const otherConf = path.join(work, 'other.d');
      await mkdir(otherConf);
      extra.push(await startNginx({ confDir: otherConf }));

      await assert.rejects(findMaster({}), /found \d+ nginx master processes .*--nginx-pid-file/);
      const { applier: a } = applier({ pidFile: undefined });
      const err = await a.apply(new Map([['ingress-sidecar-a.conf', serverBlock(port, 'x')]])).catch((e: unknown) => e);
      assert.ok(err instanceof ReloadError, String(err));
      assert.match(err.reason, /--nginx-pid-file/);
      assert.deepEqual(await readdir(confDir), [], 'the written file was taken back');
    });

    it('finds the master when it is the only one (and refuses when it is not)', async function () {
      const ours = await nginx!.masterPid();
      const { applier: a } = applier({ pidFile: undefined });
      // Other test runs on this machine may have their own nginx: whichever case holds, assert it,
      // but only when the count is the same before and after the call.
      for (let attempt = 0; attempt < 20; attempt++) {
        const files = new Map([['ingress-sidecar-a.conf', serverBlock(port, `try ${attempt}`)]]);
        const before = await allMasters();
        let outcome: ApplyResult | Error;
        try {
          outcome = await a.apply(files);
        } catch (e) {
          outcome = e as Error;
        }
        const after = await allMasters();
        if (before.length !== after.length) continue;
        if (before.length === 1) {
          assert.deepEqual(before, [ours]);
          assert.deepEqual(outcome, {
            changed: true,
            reloaded: true,
            masterPid: ours,
            files: ['ingress-sidecar-a.conf'],
          });
          assert.equal(await findMaster({}), ours);
        } else {
          assert.ok(outcome instanceof ReloadError, String(outcome));
          assert.match(outcome.reason, /--nginx-pid-file/);
        }
        return;
      }
      assert.fail('the number of nginx masters on this machine kept changing');
    });
  });
});

describe('findMaster and workerPids on a fake /proc', function () {
  let proc: string;

  async function fakeProcess(pid: number, ppid: number, title: string, comm = 'nginx'): Promise<void> {
    await mkdir(path.join(proc, String(pid)));
    await writeFile(path.join(proc, String(pid), 'cmdline'), title.split(' ').join('\0') + '\0');
    await writeFile(path.join(proc, String(pid), 'stat'), `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194560\n`);
  }

  beforeEach(async function () {
    proc = await mkdtemp(path.join(os.tmpdir(), 'fake-proc-'));
    await mkdir(path.join(proc, 'self'));
    await fakeProcess(1, 0, '/sbin/init');
  });

  afterEach(async function () {
    await rm(proc, { recursive: true, force: true });
  });

  it('returns null when no master runs, the one master, or an error naming the flag for several', async function () {
    assert.equal(await findMaster({ procDir: proc }), null);
    await fakeProcess(40, 1, 'nginx: master process nginx -g daemon off;');
    await fakeProcess(41, 40, 'nginx: worker process');
    assert.equal(await findMaster({ procDir: proc }), 40);
    await fakeProcess(50, 1, 'nginx: master process /usr/sbin/nginx');
    await assert.rejects(
      findMaster({ procDir: proc }),
      /found 2 nginx master processes \(PIDs 40, 50\).*--nginx-pid-file/,
    );
  });

  it('trusts a pid file only while it names a live nginx master', async function () {
    const pidFile = path.join(proc, 'nginx.pid');
    assert.equal(await findMaster({ pidFile, procDir: proc }), null, 'missing');
    await fakeProcess(40, 1, 'nginx: master process nginx');
    await fakeProcess(60, 1, 'node server.js');
    await writeFile(pidFile, '40\n');
    assert.equal(await findMaster({ pidFile, procDir: proc }), 40);
    await writeFile(pidFile, '60\n');
    assert.equal(await findMaster({ pidFile, procDir: proc }), null, 'not nginx');
    await writeFile(pidFile, '70\n');
    assert.equal(await findMaster({ pidFile, procDir: proc }), null, 'gone');
    await writeFile(pidFile, 'garbage\n');
    assert.equal(await findMaster({ pidFile, procDir: proc }), null, 'unparseable');
  });

  it('counts live workers of that master only', async function () {
    await fakeProcess(40, 1, 'nginx: master process nginx');
    await fakeProcess(41, 40, 'nginx: worker process');
    await fakeProcess(42, 40, 'nginx: worker process is shutting down');
    await fakeProcess(43, 40, 'nginx: cache manager process');
    await fakeProcess(44, 40, 'nginx: worker process', 'odd) (name');
    await fakeProcess(50, 1, 'nginx: master process nginx');
    await fakeProcess(51, 50, 'nginx: worker process');
    assert.deepEqual(await workerPids(40, proc), new Set([41, 44]));
  });

  it("reads the children from the kernel's list when there is one", async function () {
    await fakeProcess(40, 1, 'nginx: master process nginx');
    await fakeProcess(41, 40, 'nginx: worker process');
    await fakeProcess(42, 40, 'nginx: worker process is shutting down');
    await fakeProcess(43, 40, 'nginx: cache manager process');
    await fakeProcess(45, 40, 'nginx: worker process'); // not in the kernel's list: not asked
    await mkdir(path.join(proc, '40', 'task', '40'), { recursive: true });
    await writeFile(path.join(proc, '40', 'task', '40', 'children'), '41 42 43 99 ');
    assert.deepEqual(await workerPids(40, proc), new Set([41]));
  });

  it('the real /proc: the children list and a full scan agree on a live nginx', async function () {
    const work = await mkdtemp(path.join(os.tmpdir(), 'proc-spec-'));
    await mkdir(path.join(work, 'conf.d'));
    const running = await startNginx({ confDir: path.join(work, 'conf.d'), workerProcesses: 2 });
    try {
      const master = await running.masterPid();
      const scan = async () => {
        const found = new Set<number>();
        for (const name of await readdir('/proc')) {
          if (!/^\d+$/.test(name)) continue;
          const stat = await readFile(`/proc/${name}/stat`, 'latin1').catch(() => '');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          const cmd = await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '');
          if (ppid === master && cmd.startsWith('nginx: worker process') && !cmd.includes('shutting down'))
            found.add(Number(name));
        }
        return found;
      };
      // nginx forks its two workers one after the other: wait until both run.
      let workers = new Set<number>();
      for (let i = 0; i < 100 && workers.size < 2; i++) {
        workers = await workerPids(master);
        if (workers.size < 2) await sleep(20);
      }
      assert.equal(workers.size, 2);
      assert.deepEqual(workers, await scan());
    } finally {
      await running.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it('the real /proc: our own process is not an nginx master', async function () {
    const pidFile = path.join(proc, 'self.pid');
    await writeFile(pidFile, `${process.pid}\n`);
    assert.equal(await findMaster({ pidFile }), null);
  });
});
