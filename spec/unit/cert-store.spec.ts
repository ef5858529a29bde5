// src/nginx/cert-store.ts: certificate files on disk (no process: the self-signed default,
// made with openssl, is in spec/integration/cert-store.spec.ts).
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CertStore, SELF_SIGNED_FILE, certDirFor, privateFileMode } from '../../src/nginx/cert-store.ts';
import type { CertificateFile } from '../../src/model.ts';
import { withPem } from '../../src/translate/certificates.ts';

const cert = (file: string, pem: string): CertificateFile => withPem({ file }, pem);
// Certificate files hold a key: any PEM block makes a file the owner's only.
const A = cert('a'.repeat(32) + '.pem', '-----BEGIN PRIVATE KEY-----\nA\n-----END PRIVATE KEY-----\n');
const B = cert('b'.repeat(32) + '.pem', '-----BEGIN PRIVATE KEY-----\nB\n-----END PRIVATE KEY-----\n');
// An htpasswd file (auth-type basic), as translate names it.
const H = cert('c'.repeat(32) + '.pem', 'alice:$apr1$Jx1Qm7xl$8nAgxeb9ytYR0yc0qzYKv.\n');
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

  it("lives in <conf dir>/ingress-sidecar-certs, which nginx's *.conf include never matches", () => {
    assert.equal(certDirFor('/etc/nginx/conf.d'), '/etc/nginx/conf.d/ingress-sidecar-certs');
  });

  it('writes each file once, mode 0600 in a 0710 directory, and fixes a mode someone changed', async () => {
    const store = new CertStore({ dir });
    assert.deepEqual(await store.write([A, B]), [A.file, B.file]);
    assert.equal(await mode(dir), 0o710);
    assert.equal(await readFile(path.join(dir, A.file), 'utf8'), A.pem);
    assert.equal(await mode(path.join(dir, A.file)), 0o600);
    assert.deepEqual(await store.write([A, B]), []);
    await chmod(path.join(dir, B.file), 0o644);
    await chmod(dir, 0o755);
    assert.deepEqual(await new CertStore({ dir }).write([A, B]), []);
    assert.equal(await mode(path.join(dir, B.file)), 0o600);
    assert.equal(await mode(dir), 0o710);
    // A file with the right name and other content (say, truncated by hand) is replaced.
    await writeFile(path.join(dir, A.file), 'pem');
    assert.deepEqual(await new CertStore({ dir }).write([A]), [A.file]);
    assert.equal(await readFile(path.join(dir, A.file), 'utf8'), A.pem);
    // Nothing but the files: no temp file is left behind.
    assert.deepEqual((await readdir(dir)).sort(), [A.file, B.file]);
  });

  it('writes htpasswd files 0640 (nginx workers read them, maybe as another user through the group), keys stay 0600', async () => {
    assert.deepEqual([privateFileMode(A.pem), privateFileMode(H.pem)], [0o600, 0o640]);
    const store = new CertStore({ dir });
    assert.deepEqual(await store.write([A, H]), [A.file, H.file]);
    assert.deepEqual(
      [await mode(path.join(dir, A.file)), await mode(path.join(dir, H.file)), await mode(dir)],
      [0o600, 0o640, 0o710],
    );
    // What an earlier version wrote (0600) is widened to 0640 without a rewrite, and narrowed back if someone opened it up.
    await chmod(path.join(dir, H.file), 0o600);
    assert.deepEqual(await new CertStore({ dir }).write([A, H]), []);
    assert.equal(await mode(path.join(dir, H.file)), 0o640);
    await chmod(path.join(dir, H.file), 0o644);
    await new CertStore({ dir }).write([H]);
    assert.equal(await mode(path.join(dir, H.file)), 0o640);
    // A umask does not narrow them: nginx workers must still be able to read.
    const old = process.umask(0o077);
    try {
      const other = certDirFor(path.join(work, 'umask'));
      await new CertStore({ dir: other }).write([H]);
      assert.deepEqual([await mode(path.join(other, H.file)), await mode(other)], [0o640, 0o710]);
    } finally {
      process.umask(old);
    }
  });

  it("in a setgid directory of the pod's fsGroup (an emptyDir with fsGroup), files get that group and the setgid bit survives", async function () {
    if (process.getuid?.() !== 0) this.skip(); // chgrp to a group we are not in needs root
    const GROUP = 65534; // any group other than ours; the kubelet uses fsGroup
    const confDir = path.join(work, 'conf.d');
    await mkdir(confDir);
    await chown(confDir, 0, GROUP);
    await chmod(confDir, 0o2777); // what the kubelet makes of an emptyDir with fsGroup
    const certs = certDirFor(confDir);
    await new CertStore({ dir: certs }).write([A, H]);
    const d = await stat(certs);
    assert.deepEqual(
      [d.gid, d.mode & 0o7777],
      [GROUP, 0o2710],
      'inherited group, setgid kept through the chmod to 0710',
    );
    for (const f of [A, H]) assert.equal((await stat(path.join(certs, f.file))).gid, GROUP, f.file);
    // An existing directory with other bits is fixed, setgid kept.
    await chmod(certs, 0o2755);
    await new CertStore({ dir: certs }).write([A, H]);
    assert.equal((await stat(certs)).mode & 0o7777, 0o2710);
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
});
