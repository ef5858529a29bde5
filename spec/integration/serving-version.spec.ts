// src/nginx/serving-version.ts servingNginxVersion: the version of a running nginx master, read
// from its binary through /proc without running it; real nginx processes of each build (in a run
// about one nginx, that one: spec/helpers/nginx-under-test.ts), as root and as another user.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, signalIfAlive } from '../../src/dev/local-nginx.ts';
import { findMaster, nginxVersion } from '../../src/nginx/process.ts';
import { servingNginxVersion } from '../../src/nginx/serving-version.ts';
import { nginxBuilds } from '../helpers/nginx-check.ts';
import { freePort, startNginx, type RunningNginx } from '../helpers/nginx.ts';

const MODULE = path.resolve(import.meta.dirname, '../../src/nginx/serving-version.ts');
const NODE = process.execPath;
/** nobody: another user than the tests' (root), for what a sidecar of another UID sees. */
const OTHER_UID = 65534;
const { builds, missing } = nginxBuilds();

/** servingNginxVersion(pid) as seen by a process of `uid`. */
function versionAs(uid: number, pid: number): string | null {
  const script = `import { servingNginxVersion } from ${JSON.stringify(MODULE)};
console.log(JSON.stringify(await servingNginxVersion(${pid})));`;
  const r = spawnSync(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', NODE, '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(r.status, 0, `node as uid ${uid} failed: ${r.stderr}${r.error ? String(r.error) : ''}`);
  return JSON.parse(r.stdout.trim()) as string | null;
}

describe('servingNginxVersion: the version of the nginx that serves, from its binary', function () {
  this.timeout(60_000);
  before(function () {
    for (const why of missing) console.log(`      (${why}: that nginx is not read)`);
    assert.ok(builds.length > 0, 'no nginx build to run');
  });

  for (const build of builds) {
    describe(`nginx ${build.version} (${build.binary})`, () => {
      let nginx: RunningNginx | null = null;
      afterEach(async () => {
        await nginx?.stop();
        nginx = null;
      });

      it("reads the running master's version, the same as nginx -v", async () => {
        nginx = await startNginx({ binary: build.binary, http: `server { listen 127.0.0.1:${await freePort()}; }` });
        assert.equal(await servingNginxVersion(nginx.master), build.version);
        assert.equal(await nginxVersion(build.binary), build.version);
      });

      it('reads the binary the master runs, even once it is replaced on disk (as by an image upgrade)', async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'serving-version-bin-'));
        try {
          const copy = path.join(dir, 'nginx');
          await copyFile(build.binary, copy);
          await chmod(copy, 0o755);
          nginx = await startNginx({ binary: copy, http: `server { listen 127.0.0.1:${await freePort()}; }` });
          await rm(copy);
          await writeFile(copy, 'nginx version: nginx/9.9.9\n', { mode: 0o755 });
          assert.equal(await servingNginxVersion(nginx.master), build.version);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    });
  }

  describe('as a sidecar of another UID sees it', () => {
    let work = '';
    let master: number | null = null;
    before(async function () {
      if (spawnSync('setpriv', ['--version']).status !== 0) {
        console.log('      (setpriv (util-linux) is not installed: cannot run as another user)');
        this.skip();
      }
      // An nginx of its own user, as in a pod where both containers run as 101.
      work = await mkdtemp(path.join(os.tmpdir(), 'serving-version-uid-'));
      await mkdir(path.join(work, 'logs'));
      await chown(work, OTHER_UID, OTHER_UID);
      await chown(path.join(work, 'logs'), OTHER_UID, OTHER_UID);
      const conf = path.join(work, 'nginx.conf');
      await writeFile(
        conf,
        `pid ${work}/nginx.pid;\nerror_log ${work}/logs/error.log;\nevents {}\n` +
          `http { access_log off; server { listen 127.0.0.1:${await freePort()}; } }\n`,
      );
      const start = spawnSync(
        'setpriv',
        [
          `--reuid=${OTHER_UID}`,
          `--regid=${OTHER_UID}`,
          '--clear-groups',
          builds[0]!.binary,
          '-p',
          `${work}/`,
          '-c',
          conf,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      assert.equal(start.status, 0, `nginx as uid ${OTHER_UID} did not start: ${start.stderr}`);
      for (let i = 0; i < 500 && master === null; i++) {
        master = await findMaster({ pidFile: path.join(work, 'nginx.pid') });
        if (master === null) await sleep(10);
      }
      assert.ok(
        master !== null,
        `no master in ${work}/nginx.pid: ${await readFile(path.join(work, 'logs/error.log'), 'utf8').catch(() => '')}`,
      );
    });
    after(async () => {
      if (master !== null && signalIfAlive(master, 'SIGTERM')) await exited(master, 5000);
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('reads it from a master of its own UID', () => {
      assert.equal(versionAs(OTHER_UID, master!), builds[0]!.version);
    });

    it('is null for a master of another UID (EACCES: then --nginx-version says it)', async () => {
      const other = await startNginx({
        binary: builds[0]!.binary,
        http: `server { listen 127.0.0.1:${await freePort()}; }`,
      });
      try {
        assert.equal(versionAs(OTHER_UID, other.master), null);
      } finally {
        await other.stop();
      }
    });
  });

  describe('what is not an nginx master', () => {
    let child: ChildProcess | null = null;
    afterEach(() => {
      child?.kill('SIGKILL');
      child = null;
    });

    it('is null for a process that is not nginx (sleep; node, scanned no further than the limit)', async () => {
      child = spawn('sleep', ['30'], { stdio: 'ignore' });
      await new Promise((resolve) => child!.once('spawn', resolve));
      assert.equal(await servingNginxVersion(child.pid!), null);
      assert.equal(await servingNginxVersion(process.pid), null);
    });

    it('is null for a process that is gone, and for no process at all', async () => {
      const gone = spawn('true', { stdio: 'ignore' });
      await new Promise((resolve) => gone.once('exit', resolve));
      assert.equal(await servingNginxVersion(gone.pid!), null);
      for (const pid of [0, -1, 1.5, 2 ** 40]) assert.equal(await servingNginxVersion(pid), null);
    });
  });

  describe('the scan (a proc directory of files)', () => {
    let proc = '';
    before(async () => void (proc = await mkdtemp(path.join(os.tmpdir(), 'serving-version-proc-'))));
    after(() => rm(proc, { recursive: true, force: true }));
    const exe = async (pid: number, bytes: Buffer) => {
      await mkdir(path.join(proc, String(pid)));
      await writeFile(path.join(proc, String(pid), 'exe'), bytes);
    };
    const banner = Buffer.from('nginx version: nginx/1.27.3\n\0', 'latin1');

    it('finds a banner split between two reads, and one cut short by the end of the file', async () => {
      // Reads are 1 MiB: the banner's prefix straddles the first boundary, then its version does.
      const mib = 1 << 20;
      for (const [pid, at] of [
        [10, mib - 7],
        [11, mib - 20],
      ] as const) {
        const bytes = Buffer.alloc(2 * mib, 0x41);
        banner.copy(bytes, at);
        await exe(pid, bytes);
        assert.equal(await servingNginxVersion(pid, proc), '1.27.3', `banner at ${at}`);
      }
      await exe(12, Buffer.concat([Buffer.alloc(100, 0x41), Buffer.from('nginx version: nginx/1.26.1')]));
      assert.equal(await servingNginxVersion(12, proc), '1.26.1');
    });

    it('is null for a file without a banner, a dangling link, and a missing one', async () => {
      await exe(20, Buffer.alloc(3 << 20, 0x41));
      assert.equal(await servingNginxVersion(20, proc), null);
      await mkdir(path.join(proc, '21'));
      await symlink('/nonexistent/nginx', path.join(proc, '21', 'exe'));
      assert.equal(await servingNginxVersion(21, proc), null);
      assert.equal(await servingNginxVersion(22, proc), null);
    });
  });
});
