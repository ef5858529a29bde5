// `nginx -t` on a rendered file set, with each nginx version we support, and a check that every
// internal name a rendered file uses ($isc_* variables, zones, upstreams) is defined somewhere.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { CertificateFile } from '../../src/model.ts';
import type { TranslateOptions } from '../../src/translate/index.ts';
import { versionInBanner } from '../../src/nginx/version.ts';
import { nginxUnderTest } from './nginx-under-test.ts';

/** Where render puts private files in these tests; replaced by a temp directory for nginx -t. */
export const TEST_CERT_DIR = '/etc/nginx/conf.d/ingress-sidecar-certs';

const DEFAULT_CERT = readFileSync(path.resolve(import.meta.dirname, '..', 'golden', 'default-certificate.pem'), 'utf8');

/** Translate options with TLS (certificates in TEST_CERT_DIR), for nginx `build`'s syntax when given. */
export function optionsFor(build: NginxBuild | null): TranslateOptions {
  return {
    ingressClass: 'nginx',
    httpPort: 80,
    ipv6: true,
    // A file nginx -t can open (execa's stdout is /dev/null here).
    accessLog: '/dev/stdout',
    now: new Date('2027-01-01T00:00:00Z'),
    tls: { httpsPort: 443, certDir: TEST_CERT_DIR, defaultCertificate: { pem: DEFAULT_CERT } },
    ...(build ? { nginxVersion: build.version } : {}),
  };
}

export interface NginxBuild {
  binary: string;
  /** As translate's nginxVersion option takes it. */
  version: string;
}

/**
 * Debian's nginx (1.22) and the 1.30 build users run (in `missing`, with why, when it cannot be
 * built); in a run about one nginx (INGRESS_SIDECAR_TEST_NGINX, as npm test runs the integration
 * tier once per version) that one alone: the other runs check the others.
 */
export function nginxBuilds(): { builds: NginxBuild[]; missing: string[] } {
  // Once per process: a build that fails would otherwise be retried (a minute each) by every caller.
  found ??= findBuilds();
  return { builds: [...found.builds], missing: [...found.missing] };
}
let found: { builds: NginxBuild[]; missing: string[] } | undefined;

function findBuilds(): { builds: NginxBuild[]; missing: string[] } {
  const builds: NginxBuild[] = [];
  const missing: string[] = [];
  const only = nginxUnderTest();
  if (only !== null) return { builds: [{ binary: only, version: versionOf(only) }], missing };
  if (existsSync('/usr/sbin/nginx')) builds.push({ binary: '/usr/sbin/nginx', version: versionOf('/usr/sbin/nginx') });
  else missing.push('/usr/sbin/nginx (Debian nginx 1.22) is not installed');
  // ../shared beside the repository (as CI lays it out); .ci/run builds it first, so this is instant.
  const script = path.resolve(import.meta.dirname, '../../../shared/nginx/build.sh');
  try {
    const binary = execFileSync('bash', [script], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 600_000,
    })
      .trim()
      .split('\n')
      .pop()!;
    builds.push({ binary, version: versionOf(binary) });
  } catch (err) {
    missing.push(`nginx 1.30.4 could not be built with ${script}: ${(err as Error).message.slice(0, 300)}`);
  }
  return { builds, missing };
}

function versionOf(binary: string): string {
  // nginx -v prints on stderr.
  const r = spawnSync(binary, ['-v'], { encoding: 'utf8' });
  const version = versionInBanner(`${r.stderr}${r.stdout}`);
  if (!version) throw new Error(`cannot read the version of ${binary}: ${r.stderr}`);
  return version;
}

/** `nginx -t` of `files` included inside http {} as the stock nginx.conf does; exit code and output. */
export async function nginxTest(
  binary: string,
  files: Map<string, string>,
  certificates: CertificateFile[] = [],
): Promise<{ ok: boolean; output: string }> {
  const tmp = path.resolve(await mkdtemp(path.join(os.tmpdir(), 'grammar-nginx-t-')));
  try {
    const certDir = path.join(tmp, 'certs');
    const confDir = path.join(tmp, 'conf.d');
    await mkdir(certDir);
    await mkdir(confDir);
    await mkdir(path.join(tmp, 'logs'));
    for (const c of certificates) await writeFile(path.join(certDir, c.file), c.pem, { mode: 0o600 });
    for (const [name, text] of files)
      await writeFile(path.join(confDir, name), text.replaceAll(`${TEST_CERT_DIR}/`, `${certDir}/`));
    const harness = path.join(tmp, 'harness.conf');
    await writeFile(
      harness,
      [`pid "${tmp}/nginx.pid";`, 'error_log stderr;', 'events {}', `http { include "${confDir}/*.conf"; }`, ''].join(
        '\n',
      ),
    );
    const r = await execa(binary, ['-t', '-p', `${tmp}/`, '-e', 'stderr', '-c', harness], {
      reject: false,
      all: true,
      stdout: 'ignore',
      timeout: 60_000,
    });
    return { ok: r.exitCode === 0, output: r.all ?? r.shortMessage };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The internal references of a rendered file set that nothing defines: `$isc_*` and
 * `$ingress_sidecar_*` variables (defined by map, split_clients, set or a named capture),
 * limit_req/limit_conn zones (by *_zone), upstreams named by proxy_pass/grpc_pass and canary maps
 * (by upstream blocks), and error_page's named locations. Each is reported as "kind name".
 */
export function undefinedReferences(files: Map<string, string>): string[] {
  const all = [...files.values()].join('\n');
  const definedVars = new Set<string>();
  for (const m of all.matchAll(/^\s*(?:map\s+\S+|split_clients\s+\S+)\s+\$([A-Za-z0-9_]+)\s*\{/gm))
    definedVars.add(m[1]!);
  for (const m of all.matchAll(/^\s*set\s+\$([A-Za-z0-9_]+)\s/gm)) definedVars.add(m[1]!);
  // A regex's named capture sets a variable of its name.
  for (const m of all.matchAll(/\(\?P?<([A-Za-z0-9_]+)>/g)) definedVars.add(m[1]!);
  const usedVars = new Set<string>();
  for (const m of all.matchAll(/\$\{?((?:isc|ingress_sidecar)_[A-Za-z0-9_]+)/g)) usedVars.add(m[1]!);
  const definedZones = new Set(
    [...all.matchAll(/^\s*limit_(?:req|conn)_zone\s+\S+\s+"?zone=([A-Za-z0-9_]+):/gm)].map((m) => m[1]!),
  );
  const usedZones = new Set([
    ...[...all.matchAll(/^\s*limit_req\s+"?zone=([A-Za-z0-9_]+)/gm)].map((m) => m[1]!),
    ...[...all.matchAll(/^\s*limit_conn\s+([A-Za-z0-9_]+)\s/gm)].map((m) => m[1]!),
  ]);
  const definedUpstreams = new Set([...all.matchAll(/^\s*upstream\s+([^\s{]+)\s*\{/gm)].map((m) => m[1]!));
  const usedUpstreams = new Set<string>();
  for (const m of all.matchAll(/^\s*(?:proxy_pass|grpc_pass)\s+"?[a-z]+:\/\/([^\s;/"$]+)/gm)) usedUpstreams.add(m[1]!);
  // Canary maps and splits name upstreams as their values.
  for (const m of all.matchAll(/^\s*(?:always|never|default|\S+%|\*|"?~\^[^\s]*)\s+([0-9a-f]{8}_[A-Za-z0-9_.-]+);/gm))
    usedUpstreams.add(m[1]!);
  const definedLocations = new Set([...all.matchAll(/^\s*location\s+@([A-Za-z0-9_]+)\s*\{/gm)].map((m) => m[1]!));
  const usedLocations = new Set([...all.matchAll(/^\s*error_page\s+[^;]*@([A-Za-z0-9_]+);/gm)].map((m) => m[1]!));
  const missing: string[] = [];
  for (const l of usedLocations) if (!definedLocations.has(l)) missing.push(`location @${l}`);
  for (const v of usedVars) if (!definedVars.has(v)) missing.push(`variable $${v}`);
  for (const z of usedZones) if (!definedZones.has(z)) missing.push(`zone ${z}`);
  for (const u of usedUpstreams) if (!definedUpstreams.has(u)) missing.push(`upstream ${u}`);
  return missing.sort();
}

export function assertReferencesDefined(files: Map<string, string>, what = 'the rendered files'): void {
  assert.deepEqual(undefinedReferences(files), [], `${what} use internal names nothing defines`);
}
