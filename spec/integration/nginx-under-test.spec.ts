// The test helpers that decide which nginx a run is about: spec/helpers/nginx-under-test.ts
// (INGRESS_SIDECAR_TEST_NGINX, as npm test sets it per integration run) and nginxAtLeast, the
// guard of tests that need a newer nginx. Each case runs in a fresh node, as mocha would start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { nginxVersion } from '../../src/nginx/process.ts';
import { nginxAtLeast, nginxBinary } from '../helpers/nginx.ts';

const HELPERS = path.resolve(import.meta.dirname, '../helpers');
const SRC = path.resolve(import.meta.dirname, '../../src');

/** Runs `script` (an ES module) in a new node with INGRESS_SIDECAR_TEST_NGINX=`nginx`. */
function nodeWith(nginx: string, script: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, INGRESS_SIDECAR_TEST_NGINX: nginx },
  });
}

describe('the nginx under test (INGRESS_SIDECAR_TEST_NGINX)', function () {
  this.timeout(60_000);
  let dir = '';
  before(async () => void (dir = await mkdtemp(path.join(os.tmpdir(), 'nginx-under-test-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  it('is what every lookup finds, a spawned process included, and the only build the specs check', async () => {
    // A directory that is on no PATH: only the variable can make it win.
    const binary = path.join(dir, 'nginx');
    await symlink(nginxBinary(), binary);
    const r = nodeWith(
      binary,
      `import ${JSON.stringify(`${HELPERS}/nginx-under-test.ts`)};
import { execFileSync } from 'node:child_process';
const { nginxBinary } = await import(${JSON.stringify(`${SRC}/dev/local-nginx.ts`)});
const { findExecutable } = await import(${JSON.stringify(`${SRC}/nginx/process.ts`)});
const { nginxBuilds } = await import(${JSON.stringify(`${HELPERS}/nginx-check.ts`)});
console.log(JSON.stringify({
  local: nginxBinary(),
  found: findExecutable('nginx', process.env.PATH),
  child: execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim(),
  builds: nginxBuilds(),
}));`,
    );
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(got, {
      local: binary,
      found: binary,
      child: binary,
      builds: { builds: [{ binary, version: await nginxVersion(binary) }], missing: [] },
    });
  });

  it('refuses, before any test runs, a binary that is not there or not named nginx', async () => {
    const missing = nodeWith(
      path.join(dir, 'none', 'nginx'),
      `import ${JSON.stringify(`${HELPERS}/nginx-under-test.ts`)};`,
    );
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /INGRESS_SIDECAR_TEST_NGINX=.*\/none\/nginx is not an executable file/);
    const named = path.join(dir, 'nginx-1.30');
    await writeFile(named, '', { mode: 0o755 });
    const other = nodeWith(named, `import ${JSON.stringify(`${HELPERS}/nginx-under-test.ts`)};`);
    assert.notEqual(other.status, 0);
    assert.match(other.stderr, /the binary must be named nginx/);
  });
});

describe('nginxAtLeast: tests that need a newer nginx skip themselves, saying why', () => {
  const guard = async (min: string) => {
    const printed: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => void printed.push(args.join(' '));
    let skipped = false;
    try {
      const got = await nginxAtLeast(
        {
          skip: () => {
            skipped = true;
            throw new Error('skipped');
          },
        },
        min,
        'the test',
      ).catch((err: Error) => err);
      return { got, skipped, printed };
    } finally {
      console.log = log;
    }
  };

  it('gives the nginx under test when it is new enough', async () => {
    const { got, skipped, printed } = await guard('1.0.0');
    assert.equal(skipped, false);
    assert.deepEqual(got, { binary: nginxBinary(), version: await nginxVersion(nginxBinary()) });
    assert.deepEqual(printed, []);
  });

  it('skips on an older one, printing the version needed and the one there', async () => {
    const { skipped, printed } = await guard('99.0.0');
    assert.equal(skipped, true);
    assert.equal(printed.length, 1);
    assert.match(printed[0]!, /skipped: the test needs nginx >= 99\.0\.0; this run's is \d+\.\d+\.\d+, \//);
  });
});
