// The real command line, as a user runs it: flags and environment, JSON logs, SIGTERM.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { freePort, httpGet, startNginx, type RunningNginx } from '../helpers/nginx.ts';
import { backendYaml, ingressYaml } from '../helpers/sidecar.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/ingress-sidecar');

describe('bin/ingress-sidecar run', function () {
  this.timeout(60_000);
  let work: string;
  let nginx: RunningNginx | undefined;
  let echo: EchoServer | undefined;
  let child: ResultPromise | undefined;

  /** A temp directory with the watched manifests and conf.d, an echo backend "web", and nginx's port. */
  async function setUp(): Promise<{ watchDir: string; confDir: string; port: number; web: EchoServer }> {
    work = await mkdtemp(path.join(os.tmpdir(), 'cli-spec-'));
    const watchDir = path.join(work, 'manifests');
    const confDir = path.join(work, 'conf.d');
    await mkdir(watchDir);
    await mkdir(confDir);
    const web = await startEcho('web');
    echo = web;
    return { watchDir, confDir, port: await freePort(), web };
  }

  afterEach(async () => {
    child?.kill('SIGKILL');
    await nginx?.stop();
    await echo?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('serves the watched manifests, takes flags and environment, and exits 0 on SIGTERM leaving nginx serving', async () => {
    const { watchDir, confDir, port, web } = await setUp();
    // The class comes from the environment, everything else from flags.
    await writeFile(
      path.join(watchDir, 'app.yaml'),
      backendYaml('web', web.port) +
        '---\n' +
        ingressYaml('app', [{ host: 'cli.test', paths: [['/', 'Prefix', 'web']] }], { className: 'edge' }),
    );
    nginx = await startNginx({ confDir });
    child = execa(
      BIN,
      [
        'run',
        '--watch-dir',
        watchDir,
        '--conf-dir',
        confDir,
        '--nginx-pid-file',
        nginx.pidFile,
        '--http-port',
        String(port),
        '--no-ipv6',
        '--listen',
        '127.0.0.1:0',
      ],
      {
        env: { INGRESS_SIDECAR_INGRESS_CLASS: 'edge' },
        reject: false,
        all: true,
      },
    );

    let status = 0;
    for (let i = 0; i < 250 && status !== 200; i++) {
      status = (await httpGet(port, 'cli.test', '/').catch(() => ({ status: 0 }))).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, 200);

    child.kill('SIGTERM');
    const result = await child;
    assert.equal(result.exitCode, 0, String(result.all));
    const lines = String(result.all)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const reload = lines.find((l) => l.message === 'nginx reloaded');
    assert.ok(reload, 'a JSON log line reports the reload');
    assert.ok(Array.isArray(reload.files) && reload.files.includes('ingress-sidecar-server-cli.test.conf'));
    assert.ok(lines.some((l) => l.message === 'stopping' && l.signal === 'SIGTERM'));
    // The sidecar is gone; nginx keeps serving the last good config.
    assert.equal((await httpGet(port, 'cli.test', '/')).status, 200);
  });

  it('--once renders, applies and exits 0 (and 1 when nginx refuses the config)', async () => {
    const { watchDir, confDir, port, web } = await setUp();
    await writeFile(
      path.join(watchDir, 'app.yaml'),
      backendYaml('web', web.port) +
        '---\n' +
        ingressYaml('app', [{ host: 'once.test', paths: [['/', 'Prefix', 'web']] }]),
    );
    nginx = await startNginx({ confDir });
    const args = [
      'run',
      '--once',
      '--watch-dir',
      watchDir,
      '--conf-dir',
      confDir,
      '--nginx-pid-file',
      nginx.pidFile,
      '--http-port',
      String(port),
      '--no-ipv6',
    ];
    const ok = await execa(BIN, args, { reject: false, timeout: 20_000 });
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.equal((await httpGet(port, 'once.test', '/')).status, 200);

    await writeFile(path.join(confDir, 'zz-user.conf'), 'server_names_hash_bucket_size 128;\n');
    await writeFile(
      path.join(watchDir, 'app.yaml'),
      backendYaml('web', web.port) +
        '---\n' +
        ingressYaml('app', [{ host: 'other.test', paths: [['/', 'Prefix', 'web']] }]),
    );
    const refused = await execa(BIN, args, { reject: false, timeout: 20_000 });
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /nginx rejected the rendered configuration/);
    assert.equal((await httpGet(port, 'once.test', '/')).status, 200, 'the last good config keeps serving');
  });

  it('--once with an Ingress nginx refuses (no line named) applies the others and exits 1 naming it', async () => {
    const { watchDir, confDir, port, web } = await setUp();
    const snippet = {
      'nginx.ingress.kubernetes.io/configuration-snippet':
        'proxy_set_header l5d-dst-override $svc_name.$svc_namespace.svc.cluster.local:80;',
    };
    await writeFile(
      path.join(watchDir, 'app.yaml'),
      [
        backendYaml('web', web.port),
        ingressYaml('app', [{ host: 'once.test', paths: [['/', 'Prefix', 'web']] }]),
        ingressYaml('shop', [{ host: 'shop.test', paths: [['/', 'Prefix', 'web']] }]),
        ingressYaml('linkerd', [{ host: 'linkerd.test', paths: [['/', 'Prefix', 'web']] }], { annotations: snippet }),
      ].join('---\n'),
    );
    nginx = await startNginx({ confDir });
    const args = [
      'run',
      '--once',
      '--allow-snippet-annotations',
      '--watch-dir',
      watchDir,
      '--conf-dir',
      confDir,
      '--nginx-pid-file',
      nginx.pidFile,
      '--http-port',
      String(port),
      '--no-ipv6',
      '--log-format',
      'text',
    ];
    const result = await execa(BIN, args, { reject: false, timeout: 20_000 });
    assert.equal(result.exitCode, 1, result.stderr);
    assert.match(result.stderr, /applied the configuration without an Ingress that nginx refused: default\/linkerd/);
    assert.match(result.stderr, /unknown \\"svc_name\\" variable/);
    assert.equal((await httpGet(port, 'once.test', '/')).status, 200);
    assert.equal((await httpGet(port, 'shop.test', '/')).status, 200);
    assert.equal((await httpGet(port, 'linkerd.test', '/')).status, 503);
  });

  it('explains a bad flag and exits 2', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'cli-spec-'));
    const result = await execa(BIN, ['run', '--watch-dir', work, '--http-port', '99999'], { reject: false });
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /--http-port/);
    assert.match(result.stderr, /99999/);
  });
});
