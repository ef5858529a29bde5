// Private files on disk: the model's certificates and htpasswd files written into certDir before
// the configuration that names them is applied, and files that no configuration names any more
// removed after a successful apply. Names are the model's: a digest of the content, so a rotated
// Secret is a new file, a new path in nginx.conf, a reload.
//
// Modes. Who reads what: certificates and keys are read by nginx's master when it loads the
// configuration; htpasswd files (auth_basic_user_file) by its workers, on every request. In the
// default pod (manifests/deployment.yaml, manifests/components/sidecar with nginx-unprivileged) master,
// workers and sidecar are all UID 101: the owner's bits would do. With the official nginx image
// (manifests/components/root-nginx) the master and the sidecar run as root, the workers as nginx (UID 101,
// GID 101), so the workers can read an htpasswd file only through its group or its "other" bits.
// The least that works in both: keys 0600 (only ever read by the master, which is the owner or
// root); htpasswd files 0640, readable through their group, in a directory 0710 the group may
// traverse but not list. That group is the pod's fsGroup (101, set by manifests/components/root-nginx):
// the kubelet makes an emptyDir setgid with group fsGroup, so the directory and the files created
// in it inherit that group (chmod keeps the directory's setgid bit, below). Nobody else in the
// pod or on the node can read a password hash or traverse the directory.
//
// Also here: the self-signed default certificate (made with the openssl CLI, kept in certDir so
// that a restarted sidecar renders the same files and does not reload nginx for nothing).

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../ops/log.ts';
import type { CertificateFile } from '../model.ts';
import { InvalidValue } from '../grammar.ts';
import { certificateFromPem, pemBlocks, type Certificate } from '../translate/certificates.ts';

/** The subdirectory of the conf dir that holds certificate and htpasswd files (not matched by `*.conf`). */
export const CERT_DIR_NAME = 'ingress-sidecar-certs';
/** Only files named like this are the store's to remove. */
const CERT_FILE = /^[0-9a-f]{32}\.pem$/;
const TEMP_FILE = /^\.tmp-[0-9a-f]{16}-/;
/** Keys (and their certificates): the owner only. */
export const KEY_FILE_MODE = 0o600;
/** htpasswd files: the owner, and the group, for nginx workers running as another user. */
export const SHARED_FILE_MODE = 0o640;
/** The directory: the group may traverse it to open a file it knows the name of, not list it. */
export const DIR_MODE = 0o710;

/**
 * The mode a private file gets: anything holding a PEM block (a certificate file always holds
 * its key) is the owner's only; the rest are htpasswd files, whose lines cannot hold the space
 * of `-----BEGIN `. Decided by content so that a file never gets looser bits by mistake.
 */
export function privateFileMode(content: string): number {
  return content.includes('-----BEGIN ') ? KEY_FILE_MODE : SHARED_FILE_MODE;
}
/** The generated default certificate and key, reused across restarts. */
export const SELF_SIGNED_FILE = 'self-signed-default.pem';
const SELF_SIGNED_DAYS = 3650;
/** A stored self-signed certificate this close to its end is replaced. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const OPENSSL_TIMEOUT_MS = 30_000;

export function certDirFor(confDir: string): string {
  return path.resolve(confDir, CERT_DIR_NAME);
}

export class CertStore {
  readonly dir: string;
  readonly #logger: Logger | undefined;
  /** Files this store wrote or checked byte for byte: a stat is enough for them next time. */
  readonly #verified = new Set<string>();

  constructor(opts: { dir: string; logger?: Logger }) {
    this.dir = path.resolve(opts.dir);
    this.#logger = opts.logger;
  }

  /**
   * Makes every file exist with its content and its mode (privateFileMode()); each new one
   * appears by rename, so nginx never reads half a file. Returns the names written.
   */
  async write(certs: readonly CertificateFile[]): Promise<string[]> {
    await ensurePrivateDir(this.dir);
    const written: string[] = [];
    for (const cert of certs) {
      if (!CERT_FILE.test(cert.file))
        throw new Error(`refusing to write certificate file ${JSON.stringify(cert.file)}: not a derived name`);
      const target = path.join(this.dir, cert.file);
      const want = privateFileMode(cert.pem);
      const mode = await stat(target).then(
        (st) => (st.isFile() ? st.mode & 0o7777 : null),
        () => null,
      );
      if (
        mode !== null &&
        (this.#verified.has(cert.file) || (await readFile(target, 'utf8').catch(() => null)) === cert.pem)
      ) {
        // Also upgrades what an earlier version wrote (htpasswd files were 0600).
        if (mode !== want) await chmod(target, want);
        this.#verified.add(cert.file);
        continue;
      }
      await writeAtomically(target, cert.pem, want);
      this.#verified.add(cert.file);
      written.push(cert.file);
    }
    return written;
  }

  /**
   * Removes the certificate files that `keep` does not name (and temp files a crash left
   * behind). Call it only once nginx runs a configuration that names no other file.
   */
  async prune(keep: readonly CertificateFile[]): Promise<string[]> {
    const wanted = new Set(keep.map((c) => c.file));
    const entries = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    const removed: string[] = [];
    for (const name of entries.sort()) {
      if ((CERT_FILE.test(name) && !wanted.has(name)) || TEMP_FILE.test(name)) {
        await rm(path.join(this.dir, name), { force: true });
        this.#verified.delete(name);
        if (CERT_FILE.test(name)) removed.push(name);
      }
    }
    if (removed.length > 0) this.#logger?.debug('certificate files removed', { files: removed });
    return removed;
  }
}

async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  // mkdir's mode applies to a new directory only (and through the umask). chmod(2) clears a
  // setgid bit it is not given: keep the one a directory inherits from an fsGroup volume, or
  // files would stop inheriting the group the workers read them through.
  const mode = (await stat(dir)).mode;
  if ((mode & 0o777) !== DIR_MODE) await chmod(dir, DIR_MODE | (mode & 0o2000));
}

async function writeAtomically(target: string, content: string, mode: number = KEY_FILE_MODE): Promise<void> {
  const temp = path.join(path.dirname(target), `.tmp-${randomBytes(8).toString('hex')}-${path.basename(target)}`);
  try {
    // "wx": never through a file (or link) someone else put there; no wider than `mode` from the
    // first byte (the umask can only narrow it, hence the chmod).
    await writeFile(temp, content, { mode, flag: 'wx' });
    await chmod(temp, mode);
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * A self-signed certificate and key (PEM, certificate first) for names nobody configured: what
 * clients get for an unknown SNI name and for hosts whose Secret cannot be used. Made with the
 * `openssl` CLI (node:crypto makes keys but not certificates).
 */
export async function generateSelfSignedCertificate(
  opts: { openssl?: string; days?: number } = {},
): Promise<{ pem: string }> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-selfsigned-'));
  try {
    await chmod(tmp, 0o700);
    const key = path.join(tmp, 'key.pem');
    const crt = path.join(tmp, 'crt.pem');
    const result = await execa(
      opts.openssl ?? 'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        crt,
        '-days',
        String(opts.days ?? SELF_SIGNED_DAYS),
        '-subj',
        '/O=ingress-sidecar/CN=ingress-sidecar default certificate',
        '-addext',
        'basicConstraints=critical,CA:FALSE',
        '-addext',
        'keyUsage=critical,digitalSignature',
        '-addext',
        'extendedKeyUsage=serverAuth',
      ],
      { reject: false, stdin: 'ignore', timeout: OPENSSL_TIMEOUT_MS },
    );
    if (result.exitCode !== 0) {
      throw new Error(
        `openssl could not make the self-signed default certificate (${result.shortMessage}): ${String(result.stderr).trim().slice(0, 500)}`,
      );
    }
    const pem = `${(await readFile(crt, 'utf8')).trim()}\n${(await readFile(key, 'utf8')).trim()}\n`;
    return { pem };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The self-signed default kept in `dir` (mode 0600), made when missing, unreadable, or within 30
 * days of its end. The same certificate across restarts means the same rendered files, so a
 * restarted sidecar does not reload nginx for nothing.
 */
export async function loadOrCreateSelfSignedCertificate(
  dir: string,
  opts: { now?: Date; openssl?: string; logger?: Logger } = {},
): Promise<{ pem: string }> {
  const file = path.join(path.resolve(dir), SELF_SIGNED_FILE);
  const now = opts.now ?? new Date();
  const stored = await readFile(file, 'utf8').catch(() => null);
  if (stored !== null) {
    const chain = stored.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    const key = stored.match(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g) ?? [];
    const cert = storedCertificate(stored, chain.join('\n'), key.join('\n'));
    if (cert && cert.notBefore <= now && cert.notAfter.getTime() - now.getTime() > RENEW_BEFORE_MS)
      return { pem: stored };
    opts.logger?.info('replacing the stored self-signed default certificate', { file });
  }
  const made = await generateSelfSignedCertificate(opts.openssl ? { openssl: opts.openssl } : {});
  await ensurePrivateDir(path.dirname(file));
  await writeAtomically(file, made.pem);
  return made;
}

/** The stored self-signed certificate, or null when the file is not one we can use (it is then replaced). */
function storedCertificate(stored: string, chain: string, key: string): Certificate | null {
  try {
    pemBlocks(stored, SELF_SIGNED_FILE);
    return certificateFromPem(chain, key);
  } catch (err) {
    if (err instanceof InvalidValue) return null;
    throw err;
  }
}
