// What nginx pays for the generated configuration at scale, and which parts of it cost what.
//
//   node_modules/.bin/node bench/nginx-config-cost.ts [--size 10000] [--samples 3]
//     [--variants generated,bare,...] [--json FILE]
//
// The objects of bench/scale.ts (bench/scale-objects.ts) are translated and rendered once, as a
// pass does (default JSON access log, TLS on, 10% of the hosts with TLS). Then, for each variant
// of the rendered files, one at a time: a fresh nginx (bench/nginx-kit.ts main config, 1 worker)
// starts on them, its memory is read once it runs (master + worker, RSS and PSS from
// /proc/<pid>/smaps_rollup), and `nginx -t` of its configuration is timed `--samples` times.
//
// Variants (the rendered files, changed by the bench only):
//   generated                  as rendered
//   bare                       a hand-written equivalent built from the same model: per host
//                              `listen` (+ `ssl` and the same certificate), server_name, the same
//                              locations with `proxy_pass http://<upstream>`; the same upstreams;
//                              a default server. No header, variable, map, log or redirect.
//   upstream-names-hash-first  upstream names prefixed with 8 hex digits of their SHA-1
//   proxy-pass-address         `proxy_pass http://127.0.0.1:8080` instead of the upstream name
//   no-tls                     servers without their TLS listener, certificate and redirect
//   no-proxy-set-header        without the nine proxy_set_header lines of each server
//   no-set                     without the `set $ingress_sidecar_*` lines of the locations
//   no-access-log              without the access_log line of each server
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CertStore, certDirFor, generateSelfSignedCertificate } from '../src/nginx/cert-store.ts';
import { nginxBinary } from '../src/dev/local-nginx.ts';
import type { RoutingModel } from '../src/model.ts';
import { nginxVersion } from '../src/nginx/process.ts';
import { renderModel } from '../src/nginx/render.ts';
import { translate } from '../src/translate/index.ts';
import { machine, median, parseIntFlag, round, table } from './lib.ts';
import {
  freePort,
  nginxMemory,
  selfSignedCert,
  startOwnNginx,
  stopAllNginx,
  timeNginxTest,
  waitDrained,
  type OwnNginx,
} from './nginx-kit.ts';
import { snapshotOf } from './scale-objects.ts';

const VARIANTS = [
  'generated',
  'bare',
  'upstream-names-hash-first',
  'proxy-pass-address',
  'no-tls',
  'no-proxy-set-header',
  'no-set',
  'no-access-log',
] as const;
type Variant = (typeof VARIANTS)[number];

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string' },
    samples: { type: 'string' },
    variants: { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const SIZE = parseIntFlag(flags.size, '--size', 10000, 1);
const SAMPLES = parseIntFlag(flags.samples, '--samples', 3, 1);
const CHOSEN = (flags.variants?.split(',') ?? [...VARIANTS]).map((v) => {
  if (!(VARIANTS as readonly string[]).includes(v))
    throw new Error(`unknown variant ${v}; known: ${VARIANTS.join(', ')}`);
  return v as Variant;
});

const isServerFile = (name: string) => name.startsWith('ingress-sidecar-server-');
const hashFirst = (name: string) => `${createHash('sha1').update(name).digest('hex').slice(0, 8)}_${name}`;

function variantFiles(variant: Variant, files: Map<string, string>, model: RoutingModel): Map<string, string> {
  if (variant === 'bare') return bareFiles(model, files);
  const out = new Map<string, string>();
  for (const [name, content] of files) {
    let c = content;
    switch (variant) {
      case 'upstream-names-hash-first':
        c = c.replace(
          /(^upstream |proxy_pass http:\/\/)([a-z0-9_.-]+)/gm,
          (_m, a: string, b: string) => `${a}${hashFirst(b)}`,
        );
        break;
      case 'proxy-pass-address':
        c = c.replace(/proxy_pass http:\/\/\S+;/g, 'proxy_pass http://127.0.0.1:8080;');
        break;
      case 'no-tls':
        if (isServerFile(name)) {
          c = c
            .replace(/^ {4}listen \d+ ssl.*\n/gm, '')
            .replace(/^ {4}ssl_\w+ .*\n/gm, '')
            .replace(/^ {8}if \(\$scheme = http\) \{\n.*\n {8}\}\n/gm, '');
        }
        break;
      case 'no-proxy-set-header':
        c = c.replace(/^ {4}proxy_set_header .*\n/gm, '');
        break;
      case 'no-set':
        c = c.replace(/^ {8}set \$ingress_sidecar_\w+ .*\n/gm, '');
        break;
      case 'no-access-log':
        c = c.replace(/^ {4}access_log .*\n/gm, '');
        break;
      case 'generated':
        break;
    }
    out.set(name, c);
  }
  return out;
}

/** The same routes, written the way a person would: no headers, variables, maps, logs or redirects. */
function bareFiles(model: RoutingModel, files: Map<string, string>): Map<string, string> {
  const https = model.https;
  const out = new Map<string, string>();
  const def = model.defaultServer.tls;
  out.set(
    'bare-00-default.conf',
    `server_names_hash_max_size ${model.serverNamesHash.maxSize};\nserver_names_hash_bucket_size ${model.serverNamesHash.bucketSize};\n` +
      `server {\n    listen ${model.httpPort} default_server;\n` +
      (https && def
        ? `    listen ${https.port} ssl default_server;\n    ssl_certificate ${def.certPath};\n    ssl_certificate_key ${def.certPath};\n`
        : '') +
      '    return 404;\n}\n',
  );
  // The upstreams exactly as rendered.
  for (const [name, content] of files) if (name.includes('upstreams')) out.set(name, content);
  for (const s of model.servers) {
    const locations = s.locations
      .map(
        (l) =>
          `    location ${l.match === 'exact' ? '= ' : ''}${l.path} {\n        ${l.action.kind === 'proxy' ? `proxy_pass http://${l.action.upstream}` : 'return 503'};\n    }\n`,
      )
      .join('');
    out.set(
      s.file,
      `server {\n    listen ${model.httpPort};\n` +
        (s.tls && https
          ? `    listen ${https.port} ssl;\n    ssl_certificate ${s.tls.certPath};\n    ssl_certificate_key ${s.tls.certPath};\n`
          : '') +
        `    server_name ${s.serverName};\n${locations}}\n`,
    );
  }
  return out;
}

const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-config-cost-'));
const onSignal = (signal: NodeJS.Signals) => {
  console.error(`\n${signal}: stopping nginx`);
  void stopAllNginx().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
try {
  const m = machine();
  const cert = await selfSignedCert(['*.scale.test']);
  const certDir = certDirFor(path.join(work, 'certs-owner'));
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const version = await nginxVersion(nginxBinary());
  const model = translate(snapshotOf(SIZE, cert), {
    ingressClass: 'nginx',
    httpPort,
    ipv6: false,
    accessLog: '/dev/stdout',
    ...(version ? { nginxVersion: version } : {}),
    now: new Date(),
    tls: {
      httpsPort,
      httpsRedirectPort: httpsPort,
      certDir,
      defaultCertificate: await generateSelfSignedCertificate(),
    },
  });
  if (model.servers.length !== SIZE || model.rejections.length > 0)
    throw new Error(
      `unexpected model: ${model.servers.length} servers, ${JSON.stringify(model.rejections.slice(0, 3))}`,
    );
  await new CertStore({ dir: certDir }).write(model.certificates);
  const rendered = renderModel(model);

  const rows: Array<Array<string | number>> = [];
  const results: Record<string, unknown> = {};
  for (const variant of CHOSEN) {
    const dir = path.join(work, variant);
    await mkdir(dir);
    const files = variantFiles(variant, rendered, model);
    let bytes = 0;
    for (const [name, content] of files) {
      bytes += Buffer.byteLength(content);
      await writeFile(path.join(dir, name), content);
    }
    let nginx: OwnNginx | null = null;
    try {
      const t0 = performance.now();
      nginx = await startOwnNginx({ confDir: dir });
      const startMs = performance.now() - t0;
      await waitDrained(nginx.master, 60_000);
      const mem = await nginxMemory(nginx.master);
      const tests: number[] = [];
      for (let i = 0; i < SAMPLES; i++) tests.push(await timeNginxTest(nginx));
      results[variant] = { bytes, startMs, memory: mem, nginxTest: tests };
      rows.push([
        variant,
        round(bytes / 1048576, 2),
        round(median(tests), 0),
        round(startMs, 0),
        round(mem.masterRssKb / 1024, 1),
        round(mem.rssKb / 1024, 1),
        round(mem.pssKb / 1024, 1),
      ]);
      console.error(
        `${variant}: nginx -t ${round(median(tests), 0)} ms, master RSS ${round(mem.masterRssKb / 1024, 1)} MB`,
      );
    } finally {
      await nginx?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }
  console.log(
    `## nginx's cost of the configuration for ${SIZE.toLocaleString('en')} Ingresses (nginx -t: median of ${SAMPLES})\n`,
  );
  console.log(
    `machine: ${m.nproc} CPUs (${m.cpu}), load at start ${m.load}, nginx ${m.nginx}, git ${m.git || '-'}, ${m.date}\n`,
  );
  console.log(
    table(
      [
        'variant',
        'config MB',
        'nginx -t ms',
        'start (nginx until its worker runs) ms',
        'master RSS MB',
        'RSS sum MB (master + 1 worker)',
        'PSS sum MB',
      ],
      rows,
    ),
  );
  if (flags.json)
    await writeFile(
      flags.json,
      JSON.stringify({ benchmark: 'nginx-config-cost', machine: m, size: SIZE, samples: SAMPLES, results }, null, 2) +
        '\n',
    );
} finally {
  await stopAllNginx();
  await rm(work, { recursive: true, force: true });
}
