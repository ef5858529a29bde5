// The operator's endpoint against a live sidecar: health, readiness, metrics, routes.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Sidecar } from '../../src/sync/sidecar.ts';
import { DirectorySource } from '../../src/sources/directory.ts';
import { startStatusServer, type Route } from '../../src/ops/http.ts';
import { httpGet } from '../helpers/nginx.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

describe('status endpoint', function () {
  this.timeout(60_000);

  it('is neither healthy nor ready before the sources run, and both after the first sync', async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'status-spec-'));
    const { logger } = createMemoryLogger();
    const sidecar = new Sidecar({
      source: new DirectorySource({ dir: work, logger }),
      translate: { ingressClass: 'nginx', httpPort: 8080, ipv6: false },
      confDir: work,
      nginxBinary: null,
      nginxPidFile: path.join(work, 'no-nginx.pid'),
      reloadTimeoutMs: 1000,
      debounceMs: 1,
      maxDelayMs: 10,
      logger,
    });
    const server = await startStatusServer('127.0.0.1:0', sidecar, sidecar.metrics);
    try {
      assert.equal((await httpGet(server.port, 'x', '/healthz')).status, 503);
      assert.equal((await httpGet(server.port, 'x', '/readyz')).status, 503);
      assert.equal((await httpGet(server.port, 'x', '/routes')).status, 503);
      await sidecar.start();
      assert.equal((await httpGet(server.port, 'x', '/healthz')).status, 200);
      assert.equal((await httpGet(server.port, 'x', '/readyz')).status, 200);
      await sidecar.stop();
      assert.equal((await httpGet(server.port, 'x', '/healthz')).status, 503);
      assert.equal((await httpGet(server.port, 'x', '/nope')).status, 404);
    } finally {
      await server.close();
      await rm(work, { recursive: true, force: true });
    }
  });

  describe('with nginx and routes', () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({
        backends: ['web'],
        status: true,
        files: {
          'app.yaml': ingressYaml('app', [
            {
              host: 'app.test',
              paths: [
                ['/api', 'Prefix', 'web'],
                ['/gone', 'Exact', 'missing'],
              ],
            },
          ]),
          'bad.yaml': ingressYaml('bad', [{ host: 'Bad.Host', paths: [['/', 'Prefix', 'web']] }]),
        },
      });
    });
    after(() => stack?.stop());

    it('exposes reloads, config hash, durations and Ingress counts as Prometheus metrics', async () => {
      const res = await stack.status('/metrics');
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /text\/plain/);
      const metric = (name: string) => {
        const line = res.body.split('\n').find((l) => l.startsWith(name + ' '));
        assert.ok(line, `${name} in /metrics`);
        return Number(line.split(' ')[1]);
      };
      assert.ok(metric('ingress_sidecar_reloads_total{result="success"}') >= 1);
      assert.equal(metric('ingress_sidecar_reloads_total{result="failure"}'), 0);
      assert.equal(metric('ingress_sidecar_last_reload_success'), 1);
      assert.ok(metric('ingress_sidecar_config_hash') > 0);
      assert.ok(metric('ingress_sidecar_last_reload_timestamp_seconds') > Date.now() / 1000 - 60);
      assert.equal(metric('ingress_sidecar_ingresses{state="served"}'), 1);
      assert.equal(metric('ingress_sidecar_ingresses{state="rejected"}'), 1);
      assert.ok(metric('ingress_sidecar_sync_duration_seconds_count') >= 1);
      assert.ok(metric('ingress_sidecar_render_duration_seconds_count') >= 1);
    });

    it('shows the live routing table: host, location, path type, backend and its ready endpoints', async () => {
      const res = await stack.status('/routes');
      assert.equal(res.status, 200);
      const routes = JSON.parse(res.body) as Route[];
      const port = stack.backends.get('web')!.port;
      const api = routes.find((r) => r.host === 'app.test' && r.location === '/api/');
      assert.deepEqual(api, {
        host: 'app.test',
        location: '/api/',
        pathType: 'Prefix',
        path: '/api',
        ingress: 'default/app',
        service: 'default/web:http',
        upstream: 'default_web_80',
        endpoints: [`127.0.0.1:${port}`],
        action: 'proxy',
        tls: false,
      });
      const gone = routes.find((r) => r.host === 'app.test' && r.location === '= /gone');
      assert.equal(gone?.action, 503);
      assert.equal(gone?.reason, 'Service default/missing not found');
      const fallback = routes.find((r) => r.host === '*' && r.location === '/');
      assert.equal(fallback?.action, 404);
      assert.ok(!routes.some((r) => r.ingress === 'default/bad'));
    });
  });
});

describe('JSON access log', function () {
  this.timeout(60_000);
  let stack: Stack;
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'access-log-spec-'));
  });
  after(async () => {
    await stack?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('writes one JSON object per request naming namespace, Ingress, Service and upstream', async () => {
    const log = path.join(work, 'access.log');
    stack = await startStack({
      backends: ['web'],
      accessLog: log,
      files: { 'a.yaml': ingressYaml('shop', [{ host: 'shop.test', paths: [['/', 'Prefix', 'web']] }]) },
    });
    assert.equal(await stack.eventually('shop.test', '/', 'web'), 'web');
    await stack.get('shop.test', '/cart?id=7', { 'User-Agent': 'spec "quoted" agent' });
    await stack.get('nowhere.test', '/');
    let lines: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 50; i++) {
      lines = (await readFile(log, 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      if (lines.some((l) => l.host === 'nowhere.test')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const cart = lines.find((l) => l.uri === '/cart?id=7');
    assert.ok(cart, 'the request is logged');
    assert.equal(cart.namespace, 'default');
    assert.equal(cart.ingress, 'shop');
    assert.equal(cart.service, 'web');
    assert.equal(cart.status, 200);
    assert.equal(cart.upstream_addr, `127.0.0.1:${stack.backends.get('web')!.port}`);
    assert.equal(cart.user_agent, 'spec "quoted" agent');
    assert.equal(typeof cart.request_time, 'number');
    const miss = lines.find((l) => l.host === 'nowhere.test');
    assert.equal(miss?.status, 404);
    assert.equal(miss?.ingress, '');
  });
});
