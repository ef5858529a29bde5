import { startNginx } from './src/dev/local-nginx.ts';
import { startEcho } from './src/dev/echo.ts';
import { EndpointAnswers } from './src/dns/answers.ts';
import { DnsServer } from './src/dns/server.ts';
import { serviceHost } from './src/dns/names.ts';
import { createLogger } from './src/ops/log.ts';
import { Metrics } from './src/ops/metrics.ts';
import { freePort, httpGet } from './spec/helpers/nginx.ts';
import { setTimeout as sleep } from 'node:timers/promises';

const bin = '/var/cache/ingress-sidecar/nginx-1.30.4/sbin/nginx';
const echos = await Promise.all([1, 2, 3, 4, 5].map((i) => startEcho(`e${i}`, { host: `127.0.0.${10 + i}` })));
const unavailable = await freePort();
const answers = new EndpointAnswers({ unavailablePort: unavailable });
const host = serviceHost('ns', 'svc', 80);
const metrics = new Metrics();
const dns = new DnsServer({ host: '127.0.0.1', port: 0, answers, logger: createLogger({ format: 'text', level: 'debug' }), metrics });
await dns.start();
answers.replace(new Map([[host, echos.slice(0, 2).map((e) => ({ ip: e.host, port: e.port }))]]));
const front = await freePort();
const nginx = await startNginx({ binary: bin, http: `
resolver 127.0.0.1:${dns.port};
upstream ns_svc_80 {
    zone isc_endpoints 4m;
    server ${host} service=http resolve;
    keepalive 32;
}
server { listen 127.0.0.1:${unavailable}; http2 on; return 503; }
server {
    listen 127.0.0.1:${front};
    location / { proxy_pass http://ns_svc_80; proxy_http_version 1.1; proxy_set_header Connection ""; }
}
`, errorLevel: 'info' });
const who = async () => { const r = await httpGet(front, 'x', '/'); return r.status === 200 ? (JSON.parse(r.body).service as string) : String(r.status); };
const t0 = Date.now();
for (let i = 0; i < 30; i++) { console.log(((Date.now() - t0) / 1000).toFixed(1), await who()); await sleep(100); }
answers.replace(new Map([[host, echos.map((e) => ({ ip: e.host, port: e.port }))]]));
const t1 = Date.now();
const seen = new Set<string>();
while (seen.size < 5 && Date.now() - t1 < 10000) { seen.add(await who()); await sleep(20); }
console.log('all 5 after', Date.now() - t1, [...seen]);
answers.replace(new Map([[host, []]]));
const t2 = Date.now();
while ((await who()) !== '503' && Date.now() - t2 < 10000) await sleep(20);
console.log('503 after', Date.now() - t2);
console.log((await metrics.registry.getSingleMetricAsString('ingress_sidecar_dns_queries_total')));
console.log(await nginx.errorLog());
await nginx.stop(); await dns.stop(); for (const e of echos) await e.close();
