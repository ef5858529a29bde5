// Golden tests: manifests in, nginx files out, byte for byte, and every expected file set accepted
// by a real `nginx -t`.
//
// Each directory spec/golden/<case>/ holds
//   input.yaml        the manifests (multi-document YAML), read with the directory source's own code
//   expected/*.conf   exactly what renderModel(translate(...)) yields for them, one file per file
//   rejections.json   exactly the rejections translate reports (`[]` when none)
//   options.json      (optional) translate options that differ from the defaults below
//                     (`"tls": null`: TLS off, as the `basic` case renders it)
// translated with { ingressClass: 'nginx', httpPort: 80, ipv6: true, accessLog: '/dev/stdout' },
// TLS on port 443 with spec/golden/default-certificate.pem as the generated default certificate,
// certificate files in /etc/nginx/conf.d/ingress-sidecar-certs, and the time fixed at NOW.
//
// Test certificates (the default one, and those inside the TLS cases' Secrets) are self-signed
// EC P-256, made once with
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
//     -subj /CN=NAME -addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:NAME
// (old.example.com's with -days 1, so that it has expired at NOW).
//
// The expected files are only ever regenerated on purpose:
//
//   UPDATE_GOLDEN=1 npm test          (or: UPDATE_GOLDEN=1 mocha ... spec/golden.spec.ts)
//
// rewrites every case's expected/ (stale files removed) and rejections.json from the current code,
// says so on the console, and still runs `nginx -t` on the result. nginx -t reads the rendered
// files with the certificate directory pointed at a temp directory holding the model's
// certificate files; a case for a newer nginx than the local one skips it. Review the change with
// `git diff spec/golden` before committing it: that diff is what users' nginx.conf will see.
// To add a case, create spec/golden/<case>/input.yaml and run the update once.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { CertificateFile, Rejection } from '../../src/model.ts';
import { findExecutable } from '../../src/nginx/process.ts';
import { renderModel } from '../../src/nginx/render.ts';
import { readManifests } from '../../src/sources/read-manifests.ts';
import { translate, type TranslateOptions } from '../../src/translate/index.ts';
import { parseNginxVersion, versionAtLeast } from '../../src/nginx/version.ts';
import { nginxBuilds } from '../helpers/nginx-check.ts';

const GOLDEN = import.meta.dirname;
const CERT_DIR = '/etc/nginx/conf.d/ingress-sidecar-certs';
const NOW = new Date('2027-01-01T00:00:00Z');
const OPTIONS: TranslateOptions = {
  ingressClass: 'nginx',
  httpPort: 80,
  ipv6: true,
  accessLog: '/dev/stdout',
  now: NOW,
  tls: { httpsPort: 443, certDir: CERT_DIR, defaultCertificate: { pem: readFileSync(path.join(GOLDEN, 'default-certificate.pem'), 'utf8') } },
};
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const NGINX_TEST_TIMEOUT_MS = 15_000;

const CASES = readdirSync(GOLDEN, { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(path.join(GOLDEN, e.name, 'input.yaml')))
  .map((e) => e.name)
  .sort();

describe(`golden files (spec/golden)${UPDATE ? ': UPDATE_GOLDEN=1, rewriting expected output' : ''}`, () => {
  it('has cases', () => {
    assert.ok(CASES.length > 0, `no case directories in ${GOLDEN}`);
  });

  for (const name of CASES) {
    describe(name, () => {
      const dir = path.join(GOLDEN, name);
      const expectedDir = path.join(dir, 'expected');
      const rejectionsFile = path.join(dir, 'rejections.json');
      let rendered: Map<string, string>;
      let rejections: Rejection[];
      let certificates: CertificateFile[];
      let options: TranslateOptions;

      before(async () => {
        const read = await readManifests(path.join(dir, 'input.yaml'));
        assert.deepEqual(read.errors, [], `${name}/input.yaml must parse`);
        assert.deepEqual(read.warnings, [], `${name}/input.yaml must read without warnings`);
        options = await caseOptions(dir);
        const model = translate(read.snapshot, options);
        rendered = renderModel(model);
        rejections = model.rejections;
        certificates = model.certificates;
        assert.deepEqual(model.warnings, [], `${name}: translate warned`);
        if (UPDATE) {
          await rm(expectedDir, { recursive: true, force: true });
          await mkdir(expectedDir, { recursive: true });
          for (const [file, text] of rendered) await writeFile(path.join(expectedDir, file), text);
          await writeFile(rejectionsFile, rejectionsJson(rejections));
          console.log(`      UPDATE_GOLDEN=1: rewrote spec/golden/${name}/expected (${rendered.size} files) and rejections.json`);
        }
      });

      it('renders exactly the files in expected/', async () => {
        const expected = await readExpected(expectedDir);
        const hint = `\n(if this change is intended: UPDATE_GOLDEN=1 npm test, then review git diff spec/golden/${name})`;
        const missing = [...expected.keys()].filter((f) => !rendered.has(f));
        const extra = [...rendered.keys()].filter((f) => !expected.has(f));
        if (missing.length > 0 || extra.length > 0) {
          assert.fail(
            `${name}: rendered file set differs from expected/` +
              (missing.length ? `\n  expected but not rendered: ${missing.join(', ')}` : '') +
              (extra.length ? `\n  rendered but not expected: ${extra.join(', ')}` : '') +
              hint,
          );
        }
        const differing = [...expected].filter(([file, text]) => rendered.get(file) !== text);
        if (differing.length > 0) {
          assert.fail(
            differing.map(([file, text]) => `${name}/expected/${file} differs:\n${lineDiff(text, rendered.get(file) ?? '')}`).join('\n\n') + hint,
          );
        }
      });

      it('reports exactly the rejections in rejections.json', async () => {
        const want = await readFile(rejectionsFile, 'utf8');
        const got = rejectionsJson(rejections);
        if (got !== want) assert.fail(`${name}/rejections.json differs:\n${lineDiff(want, got)}`);
      });

      it('expected/ passes a real nginx -t', async function () {
        const wanted = options.nginxVersion ? parseNginxVersion(options.nginxVersion) : null;
        const nginx = await nginxFor(wanted);
        if (!nginx) {
          console.log(`      (nginx -t skipped: ${name} is rendered for nginx ${options.nginxVersion}; no nginx that new here: ${nginxBuilds().missing.join('; ')})`);
          this.skip();
        }
        await nginxTest(nginx, expectedDir, certificates);
      });
    });
  }
});

/** OPTIONS, with the case's options.json on top (its `tls` merged into OPTIONS.tls; `"tls": null` turns TLS off). */
async function caseOptions(dir: string): Promise<TranslateOptions> {
  const file = path.join(dir, 'options.json');
  if (!existsSync(file)) return OPTIONS;
  const own = JSON.parse(await readFile(file, 'utf8')) as Omit<Partial<TranslateOptions>, 'tls'> & { tls?: Partial<TranslateOptions['tls']> | null };
  const { tls, ...rest } = own;
  const merged: TranslateOptions = { ...OPTIONS, ...rest };
  if (tls === null) delete merged.tls;
  else if (tls) merged.tls = { ...OPTIONS.tls!, ...tls };
  return merged;
}

/**
 * The nginx that checks a case: Debian's (on PATH) unless the case is rendered for a newer nginx,
 * then the oldest build that is at least that version (nginx 1.30.4 from ../shared, as CI builds it).
 */
async function nginxFor(wanted: [number, number, number] | null): Promise<string | null> {
  const local = findExecutable('nginx', process.env.PATH ?? '');
  assert.ok(local, 'nginx not found on PATH or in /usr/sbin: install it (Debian: apt-get install nginx-light)');
  const localVersion = await versionOf(local);
  if (!wanted || (localVersion && versionAtLeast(localVersion, wanted))) return local;
  const builds = nginxBuilds()
    .builds.map((b) => ({ binary: b.binary, version: parseNginxVersion(b.version) }))
    .filter((b): b is { binary: string; version: [number, number, number] } => b.version !== null && versionAtLeast(b.version, wanted))
    .sort((a, b) => (versionAtLeast(a.version, b.version) ? 1 : -1));
  return builds[0]?.binary ?? null;
}

async function versionOf(nginx: string): Promise<[number, number, number] | null> {
  const r = await execa(nginx, ['-v'], { reject: false, all: true });
  return parseNginxVersion(/nginx\/(\S+)/.exec(r.all ?? '')?.[1] ?? '');
}

function rejectionsJson(rejections: Rejection[]): string {
  return JSON.stringify(rejections, null, 2) + '\n';
}

async function readExpected(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new Error(`${dir} cannot be read (run with UPDATE_GOLDEN=1 to create it): ${String(err)}`, { cause: err });
  }
  for (const f of names.sort()) files.set(f, await readFile(path.join(dir, f), 'utf8'));
  return files;
}

/**
 * `nginx -t` on every *.conf in `dir`, included inside http {} as the stock nginx.conf does. The
 * files name certificates in CERT_DIR, which need not exist here: they are read from a copy
 * whose only change is that directory, pointed at a temp one holding the certificates.
 */
async function nginxTest(nginx: string, dir: string, certificates: CertificateFile[]): Promise<void> {
  const tmp = path.resolve(await mkdtemp(path.join(os.tmpdir(), 'golden-nginx-t-')));
  try {
    const certDir = path.join(tmp, 'certs');
    const confDir = path.join(tmp, 'conf.d');
    await mkdir(certDir);
    await mkdir(confDir);
    for (const c of certificates) await writeFile(path.join(certDir, c.file), c.pem, { mode: 0o600 });
    for (const f of await readdir(dir)) {
      if (f.endsWith('.conf')) await writeFile(path.join(confDir, f), (await readFile(path.join(dir, f), 'utf8')).replaceAll(`${CERT_DIR}/`, `${certDir}/`));
    }
    const harness = path.join(tmp, 'harness.conf');
    await writeFile(
      harness,
      [`pid ${quote(path.join(tmp, 'nginx.pid'))};`, 'error_log stderr;', 'events {}', `http { include ${quote(path.join(confDir, '*.conf'))}; }`, ''].join('\n'),
    );
    const result = await execa(nginx, ['-t', '-p', tmp + '/', '-e', 'stderr', '-c', harness], {
        reject: false,
      all: true,
      // nginx -t opens every log file; /dev/stdout must then be a file it can open, and
      // execa's default stdout is a socket, which cannot be opened by path (ENXIO).
      stdout: 'ignore',
      timeout: NGINX_TEST_TIMEOUT_MS,
    });
    assert.equal(result.exitCode, 0, `nginx -t failed for ${dir}:\n${result.all ?? result.shortMessage}`);
    // A warning (say, a server name conflict) would mean the golden output is not clean either.
    assert.doesNotMatch(result.all ?? '', /\[warn\]/, `nginx -t warned for ${dir}:\n${result.all}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** One nginx token for a path: double-quoted, with `\` and `"` escaped. */
function quote(p: string): string {
  return `"${p.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * A unified-style line diff (`-` expected, `+` actual) with 3 lines of context around each change
 * and line numbers of the expected file; enough to see at a glance what moved.
 */
function lineDiff(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  // Longest common subsequence table, from the end; the files are small.
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: Array<{ op: ' ' | '-' | '+'; line: string; at: number }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ op: ' ', line: a[i]!, at: i++ });
      j++;
    } else if (i < a.length && (j >= b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ op: '-', line: a[i]!, at: i++ });
    } else {
      ops.push({ op: '+', line: b[j++]!, at: i });
    }
  }
  const CONTEXT = 3;
  const keep = ops.map((_, k) => ops.slice(Math.max(0, k - CONTEXT), k + CONTEXT + 1).some((o) => o.op !== ' '));
  const out: string[] = ['  (- expected, + rendered)'];
  ops.forEach((o, k) => {
    if (!keep[k]) return;
    if (k === 0 || !keep[k - 1]) out.push(`  @@ expected line ${o.at + 1}`);
    out.push(`  ${o.op} ${o.line}`);
  });
  return out.join('\n');
}
