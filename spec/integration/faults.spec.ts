// Faults, as a client or an operator sees them: nginx killed and restarted, a conf dir that cannot
// be written (read-only, full), a manifest corrupted mid-run, the sidecar killed with SIGKILL.
// Real nginx, real backends; the sidecar in-process (the directory source) or as the real CLI.
//
// The conf-dir faults need root (a read-only bind mount, a full tmpfs): chmod does not stop root.
// Every mount is undone in the test's own cleanup, and on process exit if a test died mid-way.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { workerPids } from '../../src/nginx/process.ts';
import { freePort, httpGet, startNginx, type RunningNginx } from '../helpers/nginx.ts';
import { backendYaml, ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const run = promisify(execFile);
const BIN = path.resolve(import.meta.dirname, '../../bin/ingress-sidecar');
const isRoot = process.getuid?.() === 0;

const ing = (name: string, host: string, service: string) =>
  ingressYaml(name, [{ host, paths: [['/', 'Prefix', service]] }]);

/** Mount points still to undo if the process exits mid-test. */
const mounts = new Set<string>();
process.on('exit', () => {
  for (const dir of mounts) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

async function mount(args: string[], dir: string): Promise<void> {
  await run('mount', [...args, dir], { timeout: 10_000 });
  mounts.add(dir);
}

/** Undoes every mount stacked on `dir` (a bind mount and its read-only remount count once). */
async function unmount(dir: string): Promise<void> {
  if (!mounts.has(dir)) return;
  try {
    await run('umount', [dir], { timeout: 10_000 });
  } catch {
    await run('umount', ['-l', dir], { timeout: 10_000 });
  }
  mounts.delete(dir);
}

/** SIGKILL to the master and every worker, as when nginx's container is OOM-killed. */
async function killNginx(master: number): Promise<void> {
  const pids = [master, ...(await workerPids(master))];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const pid of pids) {
    for (let i = 0; i < 300; i++) {
      const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => null);
      if (stat === null || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) break;
      await sleep(10);
    }
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** `who` sampled every 100 ms for `ms`: every answer seen. */
async function sampleWho(stack: Stack, host: string, ms: number): Promise<Set<string>> {
  const seen = new Set<string>();
  const deadline = Date.now() + ms;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    seen.add(await stack.who(host, '/'));
    await sleep(100);
  }
  return seen;
}

async function metric(stack: Stack, line: string): Promise<number> {
  const text = (await stack.status('/metrics')).body;
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  assert.ok(found, `metric ${line} in\n${text}`);
  return Number(found.slice(line.length + 1));
}

/** The sidecar's files in a conf dir, by name. */
async function ownedFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const f of (await readdir(dir)).filter((n) => /^ingress-sidecar.*\.conf$/.test(n)).sort())
    files.set(f, await readFile(path.join(dir, f), 'utf8'));
  return files;
}

/** Makes the sidecar's files in `dir` exactly `files`. */
async function putFiles(dir: string, files: Map<string, string>): Promise<void> {
  for (const f of (await ownedFiles(dir)).keys()) if (!files.has(f)) await rm(path.join(dir, f));
  for (const [f, content] of files) await writeFile(path.join(dir, f), content);
}

describe('faults: nginx master killed and restarted', function () {
  this.timeout(60_000);
  let stack: Stack;
  const restarted: RunningNginx[] = [];
  afterEach(async () => {
    await Promise.allSettled(restarted.map((n) => n.stop()));
    restarted.length = 0;
    await stack?.stop();
  });

  it('finds the new master by itself, makes it run the current config, and later changes reach it', async () => {
    stack = await startStack({ backends: ['alpha', 'beta'], files: { 'a.yaml': ing('a', 'a.test', 'alpha') } });
    assert.equal(await stack.eventually('a.test', '/', 'alpha'), 'alpha');
    const older = await ownedFiles(stack.confDir);
    const changes = () => stack.logs.filter((l) => l.message === 'nginx master changed');

    // 1. Killed, and a new nginx started on the same conf dir and pid file.
    const first = await stack.nginx.masterPid();
    await killNginx(first);
    assert.equal(await stack.who('a.test', '/'), '0', 'nothing listens while nginx is down');
    const reloads = stack.sidecar.stats.reloads;
    const second = await startNginx({ confDir: stack.confDir, pidFile: stack.nginx.pidFile });
    restarted.push(second);
    const secondPid = await second.masterPid();
    assert.equal(await stack.who('a.test', '/'), 'alpha', 'the new master read the conf dir');
    // Noticed without any change: one log line, one reload.
    const noticedMs = await until('"nginx master changed"', () => changes().some((l) => l.current === secondPid));
    await until('the reload of the new master', () => stack.sidecar.stats.reloads === reloads + 1);
    const change = changes().at(-1)!;
    assert.deepEqual([change.level, change.previous, change.current], ['info', first, secondPid]);
    // A later change reaches the new master.
    await stack.write('a.yaml', ing('a', 'a.test', 'beta'));
    assert.equal(await stack.eventually('a.test', '/', 'beta'), 'beta');
    assert.equal(stack.sidecar.stats.reloads, reloads + 2);

    // 2. A new master that runs an older config: it parsed conf.d before the sidecar's last swap
    // landed (nginx writes its pid file after parsing, so the sidecar cannot signal it earlier).
    // Staged here: the older file is in place while nginx starts, the current one is back before
    // the pid file names the new master.
    await killNginx(secondPid);
    const current = await ownedFiles(stack.confDir);
    await putFiles(stack.confDir, older);
    const third = await startNginx({
      confDir: stack.confDir,
      pidFile: path.join(path.dirname(stack.confDir), 'staged.pid'),
    });
    restarted.push(third);
    await putFiles(stack.confDir, current);
    assert.equal(await stack.who('a.test', '/'), 'alpha', 'the new master runs the older config');
    const thirdPid = await third.masterPid();
    const noticed = Date.now();
    await writeFile(stack.nginx.pidFile, `${thirdPid}\n`);
    assert.equal(await stack.eventually('a.test', '/', 'beta'), 'beta');
    const staleMs = Date.now() - noticed;
    assert.ok(staleMs < 4000, `the current config is served ${staleMs} ms after the new master appeared`);
    assert.equal(changes().filter((l) => l.current === thirdPid).length, 1);
    assert.equal(stack.sidecar.stats.reloads, reloads + 3);

    // No reload loop: two more checks of the same master change nothing.
    const workers = await workerPids(thirdPid);
    await sleep(4500);
    assert.equal(stack.sidecar.stats.reloads, reloads + 3);
    assert.deepEqual(await workerPids(thirdPid), workers);
    assert.equal(changes().length, 2);
    assert.equal(await stack.who('a.test', '/'), 'beta');
    process.stdout.write(
      `      (new master noticed after ${noticedMs} ms; a stale master served the current config after ${staleMs} ms)\n`,
    );
  });
});

describe('faults: the conf dir cannot be written', function () {
  this.timeout(60_000);
  let stack: Stack | undefined;
  before(function () {
    if (!isRoot) this.skip(); // mount needs root; chmod does not stop root, who runs these tests
  });
  afterEach(async () => {
    if (stack) await unmount(stack.confDir);
    await stack?.stop();
    stack = undefined;
  });

  /**
   * Breaks the conf dir, changes a route, and checks: the last good config keeps serving, the
   * error is logged and counted, and once `repair` runs the change lands with no further change.
   */
  async function survives(s: Stack, error: RegExp, repair: () => Promise<void>): Promise<{ recoveredMs: number }> {
    const ours = async () => {
      const out: Record<string, string> = {};
      for (const f of (await readdir(s.confDir)).filter(
        (n) => n.startsWith('ingress-sidecar') || n.startsWith('.ingress-sidecar'),
      )) {
        out[f] = await readFile(path.join(s.confDir, f), 'utf8');
      }
      return out;
    };
    const before = await ours();
    const failures = await metric(s, 'ingress_sidecar_reloads_total{result="failure"}');
    await s.write('a.yaml', ing('a', 'a.test', 'beta'));
    const failed = () => s.logs.find((l) => l.message === 'sync failed; will retry' && error.test(String(l.error)));
    await until('the failed sync to be logged', () => failed() !== undefined);
    assert.match(String(failed()!.error), /the previous files are still in place/);
    assert.deepEqual(await sampleWho(s, 'a.test', 1200), new Set(['alpha']), 'the last good config keeps serving');
    assert.ok((await metric(s, 'ingress_sidecar_reloads_total{result="failure"}')) > failures);
    assert.equal(await metric(s, 'ingress_sidecar_last_reload_success'), 0);
    assert.equal((await s.status('/readyz')).status, 200, 'nginx still runs a good config');
    assert.deepEqual(await ours(), before, 'the live files are untouched, no temp file left');

    await repair();
    const repaired = Date.now();
    assert.equal(await s.eventually('a.test', '/', 'beta', 15_000), 'beta');
    const recoveredMs = Date.now() - repaired;
    assert.equal(await metric(s, 'ingress_sidecar_last_reload_success'), 1);
    return { recoveredMs };
  }

  it('read-only: keeps serving the last good config, reports it, and recovers once writable', async () => {
    stack = await startStack({
      backends: ['alpha', 'beta'],
      status: true,
      files: { 'a.yaml': ing('a', 'a.test', 'alpha') },
    });
    assert.equal(await stack.eventually('a.test', '/', 'alpha'), 'alpha');
    await mount(['--bind', stack.confDir], stack.confDir);
    await run('mount', ['-o', 'remount,bind,ro', stack.confDir]);
    const s = stack;
    const { recoveredMs } = await survives(s, /EROFS/, () => unmount(s.confDir));
    process.stdout.write(`      (served the change ${recoveredMs} ms after the conf dir became writable)\n`);
  });

  it('full: keeps serving the last good config, reports it, and recovers once there is room', async () => {
    stack = await startStack({
      backends: ['alpha', 'beta'],
      status: true,
      files: { 'a.yaml': ing('a', 'a.test', 'alpha') },
    });
    assert.equal(await stack.eventually('a.test', '/', 'alpha'), 'alpha');
    // A small tmpfs over the conf dir, with what the sidecar and nginx put there, then filled up.
    const saved = new Map<string, string>();
    for (const f of await readdir(stack.confDir)) saved.set(f, await readFile(path.join(stack.confDir, f), 'utf8'));
    await mount(['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'tmpfs'], stack.confDir);
    for (const [f, content] of saved) await writeFile(path.join(stack.confDir, f), content);
    const filler = path.join(stack.confDir, '.filler');
    await run('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k']).catch(() => undefined); // ENOSPC ends it
    await assert.rejects(writeFile(path.join(stack.confDir, '.probe'), 'x'), /ENOSPC/);
    await rm(path.join(stack.confDir, '.probe'), { force: true });
    const { recoveredMs } = await survives(stack, /ENOSPC/, () => rm(filler));
    process.stdout.write(`      (served the change ${recoveredMs} ms after room was made)\n`);
  });
});

describe('faults: a manifest corrupted mid-run', function () {
  this.timeout(60_000);
  let stack: Stack;
  afterEach(() => stack?.stop());

  it('reports the file, keeps serving its last good objects, and applies changes to the others', async () => {
    stack = await startStack({
      backends: ['alpha', 'beta'],
      files: { 'a.yaml': ing('a', 'a.test', 'alpha'), 'b.yaml': ing('b', 'b.test', 'beta') },
    });
    assert.equal(await stack.eventually('a.test', '/', 'alpha'), 'alpha');
    assert.equal(await stack.eventually('b.test', '/', 'beta'), 'beta');

    // Garbage in place of a file that parsed: not YAML, not UTF-8.
    await writeFile(
      path.join(stack.watchDir, 'a.yaml'),
      Buffer.concat([
        Buffer.from('apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a\n'),
        Buffer.from([0, 0xff, 0xfe, 0x80]),
      ]),
    );
    await until('the parse error to be logged', () =>
      stack.logs.some(
        (l) =>
          l.level === 'error' && /cannot parse .*a\.yaml.*keeping its last good objects \(1\)/.test(String(l.message)),
      ),
    );
    // A change elsewhere reloads nginx: the config it loads still has a.test.
    const reloads = stack.sidecar.stats.reloads;
    await stack.write('b.yaml', ing('b', 'b.test', 'alpha'));
    assert.equal(await stack.eventually('b.test', '/', 'alpha'), 'alpha');
    assert.ok(stack.sidecar.stats.reloads > reloads);
    assert.equal(await stack.who('a.test', '/'), 'alpha', "the corrupt file's last good objects keep serving");
    assert.ok(stack.sidecar.model()?.servers.some((s) => s.host === 'a.test'));

    // Fixed with a change: it is applied, and the recovery is logged.
    await stack.write('a.yaml', ing('a', 'a.test', 'beta'));
    assert.equal(await stack.eventually('a.test', '/', 'beta'), 'beta');
    assert.ok(stack.logs.some((l) => /a\.yaml parses again/.test(String(l.message))));
  });
});

describe('faults: the sidecar (bin/ingress-sidecar) killed with SIGKILL', function () {
  this.timeout(60_000);
  let work: string;
  let nginx: RunningNginx | undefined;
  let echo: EchoServer | undefined;
  let child: ResultPromise | undefined;
  let output = '';

  afterEach(async () => {
    child?.kill('SIGKILL');
    await child;
    await nginx?.stop();
    await echo?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('restarted with nothing changed, it does not reload nginx; a change made while it was down is applied once', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'faults-cli-'));
    const watchDir = path.join(work, 'manifests');
    const confDir = path.join(work, 'conf.d');
    await mkdir(watchDir);
    await mkdir(confDir);
    echo = await startEcho('web');
    const [port, httpsPort, statusPort] = [await freePort(), await freePort(), await freePort()];
    const manifests = (host: string) => backendYaml('web', echo!.port) + '---\n' + ing('app', host, 'web');
    await writeFile(path.join(watchDir, 'app.yaml'), manifests('one.test'));
    nginx = await startNginx({ confDir });
    const n = nginx;

    const start = () => {
      output = '';
      const c = execa(
        BIN,
        [
          'run',
          '--watch-dir',
          watchDir,
          '--conf-dir',
          confDir,
          '--nginx-pid-file',
          n.pidFile,
          '--http-port',
          String(port),
          '--https-port',
          String(httpsPort),
          '--no-ipv6',
          '--listen',
          `127.0.0.1:${statusPort}`,
          '--debounce-ms',
          '20',
          '--access-log',
          'off',
        ],
        { reject: false, all: true, buffer: false },
      );
      c.all?.on('data', (d: Buffer) => (output += d.toString()));
      child = c;
    };
    const kill = async () => {
      child!.kill('SIGKILL');
      const r = await child!;
      assert.equal(r.signal, 'SIGKILL');
      child = undefined;
    };
    const ready = () =>
      until(
        '/readyz',
        async () => (await httpGet(statusPort, '127.0.0.1', '/readyz').catch(() => ({ status: 0 }))).status === 200,
        15_000,
      );
    const logged = (message: string) => output.split('\n').filter((l) => l.includes(`"message":"${message}"`)).length;
    const served = async (host: string) => (await httpGet(port, host, '/').catch(() => ({ status: 0 }))).status;

    start();
    await ready();
    assert.equal(await served('one.test'), 200);
    assert.equal(logged('nginx reloaded'), 1);
    const master = await n.masterPid();
    const workers = await workerPids(master);

    await kill();
    start();
    await ready();
    // Past one check of the nginx master (every 2 s) too.
    await sleep(2500);
    assert.equal(logged('nginx reloaded'), 0, output.slice(-2000));
    assert.equal(logged('nginx master changed'), 0, output.slice(-2000));
    assert.deepEqual(await workerPids(master), workers, 'the same nginx workers: no reload');
    assert.equal(await served('one.test'), 200);

    // Killed again; the manifests change meanwhile: the restarted sidecar applies it, once.
    await kill();
    await writeFile(path.join(watchDir, 'app.yaml'), manifests('two.test'));
    start();
    await ready();
    await until('two.test to be served', async () => (await served('two.test')) === 200);
    await sleep(2500);
    assert.equal(logged('nginx reloaded'), 1, output.slice(-2000));
    assert.equal(await served('one.test'), 404);
  });
});
