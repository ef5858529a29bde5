// nginx (>= 1.27.3: the 1.30.4 build users run) asking the sidecar's DNS server for its upstream
// peers, with the configuration the renderer writes: `resolver` at the server, one shared zone,
// `server <service host> service=http|https resolve`. What a client sees: requests reach the
// endpoints the answers name, an endpoint added or removed takes or loses traffic within seconds
// with no reload, no endpoints answer 503 from the unavailable listener, a Service too large for
// UDP goes over TCP, and nginx keeps serving its last peers while the DNS server is dead.
//
// The DNS server runs in a child process, so that it can be killed with SIGKILL as a crashed
// sidecar is.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import type { EndpointTarget } from '../../src/dns/answers.ts';
import { serviceHost, srvService } from '../../src/dns/names.ts';
import { workerPids } from '../../src/nginx/process.ts';
import { makeCert } from '../helpers/certs.ts';
import { nginxBuilds } from '../helpers/nginx-check.ts';
import { freePort, httpGet, startNginx, type RunningNginx } from '../helpers/nginx.ts';

const plainHost = serviceHost('ns', 'svc', 80);
const tlsHost = serviceHost('ns', 'secure', 443);

const build = nginxBuilds().builds.find((b) => {
  const [major, minor, patch] = b.version.split('.').map(Number) as [number, number, number];
  return major > 1 || minor > 27 || (minor === 27 && patch >= 3);
});

interface ChildStats {
  port: number;
  /** "TYPE RCODE TRANSPORT" -> queries answered. */
  queries: Record<string, number>;
}

/** The DNS server in a child process, driven by JSON lines on its stdin. */
class DnsChild {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<(line: string) => void> = [];
  private readonly exited: Promise<void>;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
    createInterface({ input: child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(port: number, unavailablePort: number): Promise<{ dns: DnsChild; port: number }> {
    const src = (file: string) => pathToFileURL(path.resolve(import.meta.dirname, '../../src', file)).href;
    const code = `
      import { createInterface } from 'node:readline';
      const { EndpointAnswers } = await import(${JSON.stringify(src('dns/answers.ts'))});
      const { DnsServer } = await import(${JSON.stringify(src('dns/server.ts'))});
      const { createLogger } = await import(${JSON.stringify(src('ops/log.ts'))});
      const { Metrics } = await import(${JSON.stringify(src('ops/metrics.ts'))});
      const answers = new EndpointAnswers({ unavailablePort: ${unavailablePort} });
      const metrics = new Metrics();
      const server = new DnsServer({ host: '127.0.0.1', port: ${port}, answers, metrics, logger: createLogger({ silent: true }) });
      await server.start();
      const stats = async () => {
        const m = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'ingress_sidecar_dns_queries_total');
        const queries = {};
        for (const v of m.values) queries[v.labels.type + ' ' + v.labels.rcode + ' ' + v.labels.transport] = v.value;
        return JSON.stringify({ port: server.port, queries });
      };
      console.log(await stats());
      for await (const line of createInterface({ input: process.stdin })) {
        const msg = JSON.parse(line);
        if (msg.replace) answers.replace(new Map(Object.entries(msg.replace)));
        console.log(await stats());
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const dns = new DnsChild(child);
    const first = await Promise.race([
      dns.next(),
      dns.exited.then(() => {
        throw new Error(`the DNS child exited: ${stderr}`);
      }),
    ]);
    return { dns, port: first.port };
  }

  private next(): Promise<ChildStats> {
    return new Promise((resolve) => this.waiting.push((line) => resolve(JSON.parse(line) as ChildStats)));
  }

  replace(map: Record<string, EndpointTarget[]>): Promise<ChildStats> {
    const reply = this.next();
    this.child.stdin.write(JSON.stringify({ replace: map }) + '\n');
    return reply;
  }

  stats(): Promise<ChildStats> {
    const reply = this.next();
    this.child.stdin.write('{}\n');
    return reply;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

const sum = (stats: ChildStats, match: (key: string) => boolean) =>
  Object.entries(stats.queries)
    .filter(([k]) => match(k))
    .reduce((n, [, v]) => n + v, 0);

interface Backend {
  name: string;
  target: EndpointTarget;
  close(): Promise<void>;
}

async function echoBackend(name: string, host: string): Promise<Backend> {
  const echo: EchoServer = await startEcho(name, { host });
  return { name, target: { ip: host, port: echo.port }, close: () => echo.close() };
}

async function tlsBackend(name: string, host: string, cert: { crt: string; key: string }): Promise<Backend> {
  const server = https.createServer({ cert: cert.crt, key: cert.key }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ service: name }) + '\n');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    name,
    target: { ip: host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('nginx resolves its upstream peers from the DNS server (nginx >= 1.27.3)', function () {
  this.timeout(60_000);
  let nginx: RunningNginx;
  let dns: DnsChild;
  let dnsPort: number;
  let unavailable: number;
  let front: number;
  let workers: Set<number>;
  let tmp: string;
  const backends: Backend[] = [];
  const by = (name: string) => backends.find((b) => b.name === name)!.target;
  const plain = (...names: string[]) => names.map(by);
  let answers: Record<string, EndpointTarget[]> = {};

  /** Which backend answers `urlPath` (its name), else the status (0: no answer). */
  async function who(urlPath = '/'): Promise<string> {
    const r = await httpGet(front, 'dns.test', urlPath).catch(() => ({ status: 0, body: '' }));
    if (r.status !== 200) return String(r.status);
    return (JSON.parse(r.body) as { service: string }).service;
  }

  /** Asks until `done` holds for what answered (bounded); returns the answers and the time taken. */
  async function until(
    urlPath: string,
    done: (seen: string[]) => boolean,
    what: string,
    deadlineMs = 15_000,
  ): Promise<{ seen: string[]; ms: number }> {
    const start = Date.now();
    const seen: string[] = [];
    while (Date.now() - start < deadlineMs) {
      seen.push(await who(urlPath));
      if (done(seen)) return { seen, ms: Date.now() - start };
      await sleep(20);
    }
    assert.fail(`${what}: not within ${deadlineMs} ms; last answers ${seen.slice(-20).join(' ')}`);
  }

  const allOf = (names: string[]) => (seen: string[]) => names.every((n) => seen.includes(n));
  /** The last `n` answers all among `names`. */
  const onlyOf =
    (names: string[], n = 30) =>
    (seen: string[]) =>
      seen.length >= n && seen.slice(-n).every((s) => names.includes(s));

  async function replace(next: Record<string, EndpointTarget[]>): Promise<void> {
    answers = next;
    await dns.replace(next);
  }

  before(async function () {
    if (!build) {
      console.log('    skipped: no nginx >= 1.27.3 (nginx 1.30.4 could not be built by ../shared/nginx/build.sh)');
      this.skip();
    }
    const cert = makeCert({ dns: ['backend.test'] });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'dns-nginx-'));
    writeFileSync(path.join(tmp, 'unavailable.crt'), cert.crt);
    writeFileSync(path.join(tmp, 'unavailable.key'), cert.key);
    for (let i = 1; i <= 3; i++) backends.push(await echoBackend(`e${i}`, `127.0.0.${10 + i}`));
    backends.push(await echoBackend('v6', '::1'));
    for (let i = 1; i <= 2; i++) backends.push(await tlsBackend(`t${i}`, `127.0.0.${20 + i}`, cert));
    for (let i = 0; i < 40; i++) backends.push(await echoBackend(`b${i}`, `127.0.1.${i + 1}`));

    // The unavailable listener's port and the next one are free; nginx takes them below.
    do unavailable = await freePort();
    while (unavailable >= 65535);
    ({ dns, port: dnsPort } = await DnsChild.start(0, unavailable));
    await replace({ [plainHost]: plain('e1', 'e2', 'v6'), [tlsHost]: [by('t1')] });
    front = await freePort();
    nginx = await startNginx({
      binary: build!.binary,
      http: `
resolver 127.0.0.1:${dnsPort};
upstream ns_svc_80 {
    zone isc_endpoints 4m;
    server ${plainHost} service=${srvService(false)} resolve;
    keepalive 32;
}
upstream ns_secure_443 {
    zone isc_endpoints 4m;
    server ${tlsHost} service=${srvService(true)} resolve;
    keepalive 32;
}
server { listen 127.0.0.1:${unavailable}; http2 on; return 503; }
server {
    listen 127.0.0.1:${unavailable + 1} ssl;
    http2 on;
    ssl_certificate ${tmp}/unavailable.crt;
    ssl_certificate_key ${tmp}/unavailable.key;
    return 503;
}
server {
    listen 127.0.0.1:${front};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location / { proxy_pass http://ns_svc_80; }
    location /tls/ { proxy_pass https://ns_secure_443; }
}
`,
    });
    workers = await workerPids(nginx.master);
  });

  afterEach(async function () {
    // Reload-free: the workers that started are the ones serving.
    if (nginx && this.currentTest?.state === 'passed') assert.deepEqual(await workerPids(nginx.master), workers);
  });

  after(async () => {
    await nginx?.stop();
    await dns?.kill();
    await Promise.all(backends.map((b) => b.close()));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('sends requests to the endpoints the answers name: IPv4 and IPv6, plain and TLS', async () => {
    const { seen } = await until('/', allOf(['e1', 'e2', 'v6']), 'e1, e2 and v6 answer');
    // Until a new nginx's first answer arrives, its upstream has no peers (502); then only those named.
    const first = seen.findIndex((s) => s !== '502');
    if (first > 0) console.log(`      (${first} requests got 502 before nginx's first answer)`);
    assert.deepEqual(
      seen.slice(first).filter((s) => !['e1', 'e2', 'v6'].includes(s)),
      [],
    );
    const { seen: tls } = await until('/tls/', allOf(['t1']), 't1 answers');
    assert.deepEqual(
      tls.filter((s) => s !== 't1'),
      [],
    );
    for (let i = 0; i < 20; i++) assert.ok(['e1', 'e2', 'v6'].includes(await who('/')));
    for (let i = 0; i < 5; i++) assert.equal(await who('/tls/'), 't1');
  });

  it('sends traffic to an endpoint added to the answers within seconds', async () => {
    await replace({ ...answers, [plainHost]: plain('e1', 'e2', 'v6', 'e3') });
    const { ms } = await until('/', allOf(['e3']), 'e3 answers');
    console.log(`      (e3 answered ${ms} ms after replace())`);
  });

  it('stops sending traffic to an endpoint removed from the answers', async () => {
    await replace({ ...answers, [plainHost]: plain('e1', 'v6') });
    const { ms } = await until('/', onlyOf(['e1', 'v6']), 'only e1 and v6 answer');
    console.log(`      (e2 and e3 gone ${ms} ms after replace(), counting the 30 requests that show it)`);
    for (let i = 0; i < 30; i++) assert.ok(['e1', 'v6'].includes(await who('/')));
  });

  it('answers 503 from the unavailable listener when no endpoint is ready, plain and TLS', async () => {
    await replace({ [plainHost]: [], [tlsHost]: [] });
    await until('/', onlyOf(['503'], 5), 'plain: 503');
    await until('/tls/', onlyOf(['503'], 5), 'TLS: 503');
    await replace({ [plainHost]: plain('e1', 'e2'), [tlsHost]: [by('t1'), by('t2')] });
    await until('/', allOf(['e1', 'e2']), 'served again');
    await until('/tls/', allOf(['t1', 't2']), 'TLS served again');
    await until('/', onlyOf(['e1', 'e2']), 'only e1 and e2');
  });

  it('sends traffic to all 40 endpoints of a Service too large for UDP (nginx asks again over TCP)', async () => {
    const before = await dns.stats();
    const names = Array.from({ length: 40 }, (_, i) => `b${i}`);
    await replace({ ...answers, [plainHost]: plain(...names) });
    await until('/', allOf(names), 'all 40 answer', 30_000);
    const after = await dns.stats();
    const tcp = (s: ChildStats) => sum(s, (k) => k === 'SRV NOERROR tcp');
    assert.ok(tcp(after) > tcp(before), `SRV over TCP: ${JSON.stringify(after.queries)}`);
    await replace({ ...answers, [plainHost]: plain('e1', 'e2') });
    await until('/', onlyOf(['e1', 'e2']), 'back to e1 and e2');
  });

  it('keeps serving the last endpoints for 60 s while the DNS server is dead, and uses a new one', async function () {
    this.timeout(300_000);
    await replace({ ...answers, [plainHost]: plain('e1', 'e2') });
    await until('/', onlyOf(['e1', 'e2']), 'e1 and e2');
    await dns.kill();
    const start = Date.now();
    const seen = new Map<string, number>();
    // Bounded: about 240 requests over 60 s.
    for (let i = 0; i < 1000 && Date.now() - start < 60_000; i++) {
      const w = await who('/');
      seen.set(w, (seen.get(w) ?? 0) + 1);
      assert.ok(['e1', 'e2'].includes(w), `${w} after ${Date.now() - start} ms without DNS`);
      await sleep(250);
    }
    assert.ok(Date.now() - start >= 60_000);
    assert.deepEqual([...seen.keys()].sort(), ['e1', 'e2']);

    // The sidecar restarts on the same port and has not read the cluster yet: SERVFAIL, and nginx
    // keeps its peers (it would drop them on NXDOMAIN).
    ({ dns } = await DnsChild.start(dnsPort, unavailable));
    const restarted = Date.now();
    const asked = async (rcode: string) => {
      for (let i = 0; i < 600; i++) {
        if (sum(await dns.stats(), (k) => k.startsWith(`SRV ${rcode} `)) > 0) return Date.now() - restarted;
        await sleep(200);
      }
      assert.fail(`nginx did not ask the restarted DNS server (${rcode}) within 120 s`);
    };
    console.log(
      `      (nginx asked the restarted DNS server ${await asked('SERVFAIL')} ms after it started: SERVFAIL)`,
    );
    for (let i = 0; i < 20; i++) assert.ok(['e1', 'e2'].includes(await who('/')));

    // Told the endpoints again, it is asked again: an upstream that got SERVFAIL waits
    // max(resolver_timeout, 1 s) before asking again, 30 s by default.
    await dns.replace(answers);
    console.log(`      (and ${await asked('NOERROR')} ms after it started: answered)`);
    await replace({ ...answers, [plainHost]: plain('e2') });
    const { ms } = await until('/', onlyOf(['e2']), 'only e2, as the new server says', 45_000);
    console.log(`      (then e1 was gone ${ms} ms after replace())`);
  });
});
