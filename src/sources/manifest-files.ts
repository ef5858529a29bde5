// Reading manifest files safely, for DirectorySource and readManifests: which paths are manifests,
// the walk of a directory tree, and a read that refuses what is not a regular file, resolves
// outside the root, or is over MANIFEST_LIMITS.maxFileBytes. Also how paths and errors are
// printed, so that a file name cannot forge lines in logs or in `render`'s output.
import { open, readdir, readFile, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { Stats } from 'node:fs';
import { MANIFEST_LIMITS } from './manifest-limits.ts';
import { describe } from '../errors.ts';

export const MANIFEST_EXT = /\.(ya?ml|json)$/i;

/**
 * Dotfiles and dot-directories (relative to the root, whose own name may start with a dot), and
 * files that are not manifests. Directories are never ignored for their extension (chokidar may
 * ask before it knows whether a path is a file).
 */
export function isIgnored(root: string, p: string, isFile: boolean): boolean {
  const rel = path.relative(root, p);
  if (rel === '') return false;
  if (rel.split(path.sep).some((seg) => seg.startsWith('.'))) return true;
  return isFile && !MANIFEST_EXT.test(p);
}

/** A file's problem: `message` says what, and where in the file when known. */
export interface ManifestProblem {
  file: string;
  message: string;
}

/**
 * The manifest files under `root`, sorted, following symbolic links (as the watcher does) once,
 * and only to directories inside `rootReal` (others go to `errors`; files are checked when read).
 */
export async function manifestFiles(root: string, rootReal: string, errors: ManifestProblem[]): Promise<string[]> {
  const out: string[] = [];
  const visited = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    const real = await realpath(dir);
    if (!isInside(rootReal, real)) {
      errors.push({ file: dir, message: `not read: it resolves to ${showPath(real)}, outside ${showPath(rootReal)}` });
      return;
    }
    if (visited.has(real)) return; // a symlink loop, or a directory reached twice
    visited.add(real);
    for (const name of (await readdir(dir)).sort(compare)) {
      const p = path.join(dir, name);
      let st: Stats;
      try {
        st = await stat(p);
      } catch {
        continue; // a dangling symlink, or gone since readdir
      }
      if (isIgnored(root, p, st.isFile())) continue;
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  await walk(root);
  return out.sort(compare);
}

/** A file not read at all, and why: outside the watched directory, too large, not a regular file. */
export class RefusedFile extends Error {}

/**
 * Reads a manifest file whole, within MANIFEST_LIMITS.maxFileBytes. With `root` (a real path: the
 * watched directory, or the one `render -f` was given), refuses what is not a regular file, and a
 * file that resolves outside it through symbolic links: a link inside the watched
 * directory must not serve, or leak in error messages, a file from elsewhere (`/etc/shadow`),
 * while kubelet's ConfigMap layout (`file.yaml -> ..data/file.yaml`, `..data -> ..2026_...`)
 * stays inside and works. The check is made on the file as opened (on Linux, the path of the open
 * descriptor), so a link swapped between the check and the read cannot slip past it. Throws fs
 * errors as readFile does (ENOENT, EISDIR), or RefusedFile.
 */
export async function readManifestText(file: string, root: string | undefined): Promise<string> {
  const max = MANIFEST_LIMITS.maxFileBytes;
  if (root === undefined) {
    // A file named on the command line (`render -f`) may be a pipe: `-f <(kubectl get ...)`.
    const text = await readFile(file, 'utf8');
    if (text.length > max) throw new RefusedFile(`it is over the limit of ${max} bytes`);
    return text;
  }
  // O_NONBLOCK: opening a FIFO named *.yaml must not hang a thread waiting for a writer.
  const handle: FileHandle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error(`${file} is a directory`), { code: 'EISDIR' });
    if (!st.isFile()) throw new RefusedFile('it is not a regular file');
    const real =
      process.platform === 'linux'
        ? await readlink(`/proc/self/fd/${handle.fd}`).catch(() => realpath(file))
        : await realpath(file);
    if (!isInside(root, real)) throw new RefusedFile(`it resolves to ${showPath(real)}, outside ${showPath(root)}`);
    if (st.size > max) throw new RefusedFile(`it is ${st.size} bytes, over the limit of ${max}`);
    const text = await handle.readFile('utf8');
    // It may have grown since the stat; a character is at least one byte.
    if (text.length > max) throw new RefusedFile(`it is over the limit of ${max} bytes`);
    return text;
  } finally {
    await handle.close();
  }
}

/** Whether real path `p` is `root` or under it. */
export function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * A path as printed in messages: as it is, or JSON-quoted with every control, line-separator and
 * bidi character escaped when it has any (or a quote or backslash), so that a file name cannot
 * forge lines or fields in logs and in `render`'s output.
 */
export function showPath(p: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069"\\]/.test(p)) return p;
  return JSON.stringify(p).replace(
    /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** An error's message on one line: fs errors quote the path, which may hold a newline. */
export function errorMessage(err: unknown): string {
  const m = describe(err);
  return m.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
