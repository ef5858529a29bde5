// src/nginx/cert-store.ts: the self-signed default certificate, made with openssl (the files on
// disk, with no process, are in spec/unit/cert-store.spec.ts).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  SELF_SIGNED_FILE,
  certDirFor,
  generateSelfSignedCertificate,
  loadOrCreateSelfSignedCertificate,
} from '../../src/nginx/cert-store.ts';
import { findExecutable, nginxVersion } from '../../src/nginx/process.ts';
import { certificateFromPem } from '../../src/translate/certificates.ts';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('certificate store', function () {
  this.timeout(30_000);
  // openssl runs in each test; each gets a fresh conf dir whose cert dir it may create.
  let work = '';
  const dir = () => certDirFor(work);
  beforeEach(async () => void (work = await mkdtemp(path.join(os.tmpdir(), 'cert-store-openssl-'))));
  afterEach(() => rm(work, { recursive: true, force: true }));

  it('generates a self-signed default certificate that the certificate checks accept', async () => {
    const { pem } = await generateSelfSignedCertificate();
    const x = new X509Certificate(pem);
    assert.equal(x.ca, false);
    assert.match(x.subject, /CN=ingress-sidecar default certificate/);
    assert.ok(x.validToDate.getTime() - Date.now() > 9 * 365 * 86400_000);
    const chain = pem.slice(0, pem.indexOf('-----BEGIN PRIVATE KEY-----'));
    const key = pem.slice(pem.indexOf('-----BEGIN PRIVATE KEY-----'));
    assert.doesNotThrow(() => certificateFromPem(chain, key));
  });

  it('keeps the self-signed default across restarts, and replaces it near its end', async () => {
    const first = await loadOrCreateSelfSignedCertificate(dir());
    assert.equal(await mode(path.join(dir(), SELF_SIGNED_FILE)), 0o600);
    assert.equal(await mode(dir()), 0o710);
    assert.equal((await loadOrCreateSelfSignedCertificate(dir())).pem, first.pem);
    const late = new Date(new X509Certificate(first.pem).validToDate.getTime() - 10 * 86400_000);
    const renewed = await loadOrCreateSelfSignedCertificate(dir(), { now: late });
    assert.notEqual(renewed.pem, first.pem);
    await writeFile(path.join(dir(), SELF_SIGNED_FILE), 'garbage');
    assert.notEqual((await loadOrCreateSelfSignedCertificate(dir())).pem, renewed.pem);
  });

  it('says when openssl is missing', async () => {
    await mkdir(path.join(work, 'bin'));
    await assert.rejects(
      generateSelfSignedCertificate({ openssl: path.join(work, 'bin', 'openssl') }),
      /openssl could not make the self-signed default certificate/,
    );
  });
});

describe('nginx version', () => {
  it('reads major.minor.patch from nginx -v, and null without an nginx', async () => {
    const nginx = findExecutable('nginx', process.env.PATH ?? '');
    if (nginx) assert.match((await nginxVersion(nginx)) ?? '', /^\d+\.\d+\.\d+$/);
    assert.equal(await nginxVersion('/nonexistent/nginx'), null);
  });
});
