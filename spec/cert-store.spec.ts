// src/cert-store.ts: certificate files on disk, and the self-signed default certificate.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CertStore, SELF_SIGNED_FILE, certDirFor, generateSelfSignedCertificate, loadOrCreateSelfSignedCertificate } from '../src/cert-store.ts';
import type { CertificateFile } from '../src/model.ts';
import { nginxVersion } from '../src/nginx-version.ts';
import { findExecutable } from '../src/nginx-process.ts';
import { certificateFromPem, withPem } from '../src/tls.ts';

const cert = (file: string, pem: string): CertificateFile => withPem({ file }, pem);
const A = cert('a'.repeat(32) + '.pem', 'pem A\n');
const B = cert('b'.repeat(32) + '.pem', 'pem B\n');
const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('certificate store', function () {
  this.timeout(30_000);
  let work: string;
  let dir: string;
  beforeEach(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'cert-store-spec-'));
    dir = certDirFor(work);
  });
  afterEach(() => rm(work, { recursive: true, force: true }));

  it('lives in <conf dir>/ingress-sidecar-certs, which nginx\'s *.conf include never matches', () => {
    assert.equal(certDirFor('/etc/nginx/conf.d'), '/etc/nginx/conf.d/ingress-sidecar-certs');
  });

  it('writes each file once, mode 0600 in a 0700 directory, and fixes a mode someone changed', async () => {
    const store = new CertStore({ dir });
    assert.deepEqual(await store.write([A, B]), [A.file, B.file]);
    assert.equal(await mode(dir), 0o700);
    assert.equal(await readFile(path.join(dir, A.file), 'utf8'), 'pem A\n');
    assert.equal(await mode(path.join(dir, A.file)), 0o600);
    assert.deepEqual(await store.write([A, B]), []);
    await chmod(path.join(dir, B.file), 0o644);
    await chmod(dir, 0o755);
    assert.deepEqual(await new CertStore({ dir }).write([A, B]), []);
    assert.equal(await mode(path.join(dir, B.file)), 0o600);
    assert.equal(await mode(dir), 0o700);
    // A file with the right name and other content (say, truncated by hand) is replaced.
    await writeFile(path.join(dir, A.file), 'pem');
    assert.deepEqual(await new CertStore({ dir }).write([A]), [A.file]);
    assert.equal(await readFile(path.join(dir, A.file), 'utf8'), 'pem A\n');
    // Nothing but the files: no temp file is left behind.
    assert.deepEqual((await readdir(dir)).sort(), [A.file, B.file]);
  });

  it('writes a file that disappeared, even when it wrote it before', async () => {
    const store = new CertStore({ dir });
    await store.write([A]);
    await rm(path.join(dir, A.file));
    assert.deepEqual(await store.write([A]), [A.file]);
  });

  it('refuses a file name that is not a content digest', async () => {
    const store = new CertStore({ dir });
    for (const file of ['../x.pem', 'x.pem', `${'a'.repeat(32)}.conf`, `${'A'.repeat(32)}.pem`]) {
      await assert.rejects(store.write([cert(file, 'x')]), /not a derived name/, file);
    }
  });

  it('removes the certificate files not listed and stale temp files, and nothing else', async () => {
    const store = new CertStore({ dir });
    await store.write([A, B]);
    await writeFile(path.join(dir, `.tmp-0123456789abcdef-${A.file}`), 'half');
    await writeFile(path.join(dir, SELF_SIGNED_FILE), 'kept');
    await writeFile(path.join(dir, 'notes.txt'), 'kept');
    assert.deepEqual(await store.prune([B]), [A.file]);
    assert.deepEqual((await readdir(dir)).sort(), [B.file, 'notes.txt', SELF_SIGNED_FILE].sort());
    assert.deepEqual(await new CertStore({ dir: path.join(work, 'missing') }).prune([]), []);
  });

  it('generates a self-signed default certificate that the certificate checks accept', async () => {
    const { pem } = await generateSelfSignedCertificate();
    const x = new X509Certificate(pem);
    assert.equal(x.ca, false);
    assert.match(x.subject, /CN=ingress-sidecar default certificate/);
    assert.ok(x.validToDate.getTime() - Date.now() > 9 * 365 * 86400_000);
    const chain = pem.slice(0, pem.indexOf('-----BEGIN PRIVATE KEY-----'));
    const key = pem.slice(pem.indexOf('-----BEGIN PRIVATE KEY-----'));
    assert.ok(certificateFromPem(chain, key).ok);
  });

  it('keeps the self-signed default across restarts, and replaces it near its end', async () => {
    const first = await loadOrCreateSelfSignedCertificate(dir);
    assert.equal(await mode(path.join(dir, SELF_SIGNED_FILE)), 0o600);
    assert.equal(await mode(dir), 0o700);
    assert.equal((await loadOrCreateSelfSignedCertificate(dir)).pem, first.pem);
    const late = new Date(new X509Certificate(first.pem).validToDate.getTime() - 10 * 86400_000);
    const renewed = await loadOrCreateSelfSignedCertificate(dir, { now: late });
    assert.notEqual(renewed.pem, first.pem);
    await writeFile(path.join(dir, SELF_SIGNED_FILE), 'garbage');
    assert.notEqual((await loadOrCreateSelfSignedCertificate(dir)).pem, renewed.pem);
  });

  it('says when openssl is missing', async () => {
    await mkdir(path.join(work, 'bin'));
    await assert.rejects(generateSelfSignedCertificate({ openssl: path.join(work, 'bin', 'openssl') }), /openssl could not make the self-signed default certificate/);
  });
});

describe('nginx version', () => {
  it('reads major.minor.patch from nginx -v, and null without an nginx', async () => {
    const nginx = findExecutable('nginx');
    if (nginx) assert.match((await nginxVersion(nginx)) ?? '', /^\d+\.\d+\.\d+$/);
    assert.equal(await nginxVersion('/nonexistent/nginx'), null);
  });
});
