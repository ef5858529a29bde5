// Our files in conf.d: which names are ours, reading them, writing them next to nginx's include
// and swapping them in atomically, putting the previous ones back, and the digest of a set.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe } from '../errors.ts';
import { runSteps, runStepsSync } from '../steps.ts';

/** The basenames the sidecar owns in confDir; every other file there is the user's. */
export const OWNED = /^ingress-sidecar[^/\0]*\.conf$/;
/** File operations in flight at once when many files change (a first apply of 1,000 servers). */
const IO_CONCURRENCY = 16;

export type Files = ReadonlyMap<string, string>;

/** The swap failed; `restored`: confDir holds the previous files again (or never lost them). */
export class SwapError extends Error {
  readonly restored: boolean;
  constructor(restored: boolean, message: string, options: ErrorOptions) {
    super(message, options);
    this.restored = restored;
  }
}

/** Our files in confDir (OWNED names), in directory order. */
export async function readOwned(confDir: string): Promise<Map<string, string>> {
  const names = (await readdir(confDir, { withFileTypes: true }))
    .filter((entry) => entry.isFile() && OWNED.test(entry.name))
    .map((entry) => entry.name);
  const contents = new Map<string, string>();
  await eachLimit(names, IO_CONCURRENCY, async (name) => {
    contents.set(name, await readFile(path.join(confDir, name), 'utf8'));
  });
  // In directory order, as before the reads ran concurrently.
  return new Map(names.map((name) => [name, contents.get(name)!]));
}

/**
 * Every temp file is written before any rename, so a full or read-only disk fails while the live
 * files are all still the old ones. The renames themselves replace each file atomically.
 */
export async function swapFiles(confDir: string, previous: Files, desired: Files): Promise<void> {
  const toWrite = [...desired].filter(([name, content]) => previous.get(name) !== content);
  const toRemove = [...previous.keys()].filter((name) => !desired.has(name));

  const staged: string[] = [];
  try {
    await eachLimit(toWrite, IO_CONCURRENCY, async ([name, content]) => {
      staged.push(name);
      await writeFile(tempPath(confDir, name), content);
    });
  } catch (err) {
    await Promise.all(staged.map((name) => rm(tempPath(confDir, name), { force: true }).catch(() => undefined)));
    throw new SwapError(true, `could not write ${confDir}: ${describe(err)}; the previous files are still in place`, {
      cause: err,
    });
  }

  // Renames (and then removals) run concurrently too; after a failure the ones in flight settle
  // before the restore, which puts back exactly those that happened.
  const touched: string[] = [];
  try {
    await eachLimit(toWrite, IO_CONCURRENCY, async ([name]) => {
      await rename(tempPath(confDir, name), path.join(confDir, name));
      touched.push(name);
    });
    await eachLimit(toRemove, IO_CONCURRENCY, async (name) => {
      await unlink(path.join(confDir, name));
      touched.push(name);
    });
  } catch (err) {
    await Promise.all(toWrite.map(([name]) => rm(tempPath(confDir, name), { force: true }).catch(() => undefined)));
    const problems = await restoreFiles(confDir, previous, touched);
    throw new SwapError(
      problems.length === 0,
      `could not update ${confDir}: ${describe(err)}; ` +
        (problems.length === 0
          ? 'the previous files were restored'
          : `restoring the previous files also failed: ${problems.join('; ')}`),
      { cause: err },
    );
  }
}

/** Puts back the previous content of `names`, removing those that did not exist; returns what failed. */
export async function restoreFiles(confDir: string, previous: Files, names: string[]): Promise<string[]> {
  const problems: string[] = [];
  // Every name is attempted, whatever fails: eachLimit stops at the first throw, so none here.
  await eachLimit(names, IO_CONCURRENCY, async (name) => {
    const old = previous.get(name);
    try {
      if (old === undefined) {
        await rm(path.join(confDir, name), { force: true });
      } else {
        await writeFile(tempPath(confDir, name), old);
        await rename(tempPath(confDir, name), path.join(confDir, name));
      }
    } catch (err) {
      problems.push(`${name}: ${describe(err)}`);
    }
  });
  return problems.sort();
}

/** A digest of a complete file set, names included: equal digests, equal configs. */
export function hashFiles(files: Files): string {
  return runStepsSync(hashSteps(files));
}

/** hashFiles() that gives the event loop a turn between files when it takes long (10,000 files at 10,000 Ingresses). */
export function hashFilesAsync(files: Files): Promise<string> {
  return runSteps(hashSteps(files));
}

function* hashSteps(files: Files): Generator<void, string, void> {
  const hash = createHash('sha256');
  // Piece by piece: the same digest as of `${name}\0${content}\0`, without copying every file.
  for (const name of [...files.keys()].sort()) {
    yield;
    hash.update(name).update('\0').update(files.get(name)!).update('\0');
  }
  return hash.digest('hex');
}

export function sameFiles(a: Files, b: Files): boolean {
  if (a.size !== b.size) return false;
  for (const [name, content] of a) if (b.get(name) !== content) return false;
  return true;
}

/** Hidden and not ending in .conf, so nginx's `*.conf` include never reads a half-written file. */
function tempPath(confDir: string, name: string): string {
  return path.join(confDir, `.${name}.tmp`);
}

export async function writeFiles(dir: string, files: ReadonlyArray<readonly [string, string]>): Promise<void> {
  await mkdir(dir);
  await eachLimit(files, IO_CONCURRENCY, ([name, content]) => writeFile(path.join(dir, name), content));
}

/**
 * Calls `fn` for every item, at most `limit` at a time. After the first failure no new call
 * starts; it rejects with that failure once the calls in flight have settled, so the caller can
 * clean up knowing that nothing is still writing.
 */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

/** Byte order of the UTF-8 names, as glob(3) sorts them in the C locale. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Names whose content differs between the two sets, including names in only one of them. */
export function changedNames(a: Files, b: Files): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].filter((name) => a.get(name) !== b.get(name)).sort();
}
