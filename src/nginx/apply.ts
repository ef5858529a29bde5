// Puts rendered files in front of nginx: check them with `nginx -t` next to the user's own
// files, swap them in with renames, SIGHUP the master, and confirm a new worker generation.
// When any step after the swap fails, the previous files go back so that what is on disk is
// what nginx is running.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe } from '../errors.ts';
import type { Logger } from '../ops/log.ts';
import { findMaster, masterIdentity, reloadAndVerify } from './process.ts';
import { runSteps, runStepsSync } from '../steps.ts';

export interface ApplyResult {
  changed: boolean;
  reloaded: boolean;
  masterPid?: number;
  /** Our files that were added, rewritten or removed, sorted. */
  files?: string[];
}

export interface ApplierOptions {
  confDir: string;
  /** null when no nginx binary is available to the sidecar: the check is skipped. */
  nginxBinary: string | null;
  pidFile?: string;
  reloadTimeoutMs: number;
  logger: Logger;
  /** Where staging directories go; os.tmpdir() when absent. */
  stateDir?: string;
}

/** `nginx -t` rejected the desired files; nothing in confDir was touched. */
export class NginxConfigError extends Error {
  /** Basename of our file that nginx blamed, when the error is in one of ours. */
  file?: string;
  line?: number;
  nginxOutput: string;
  /** nginx's complaint alone (`unknown "x" variable in FILE:LINE`), paths as users know them. */
  summary: string;

  constructor(message: string, nginxOutput: string, file?: string, line?: number, summary?: string) {
    super(message);
    this.name = 'NginxConfigError';
    this.nginxOutput = nginxOutput;
    this.summary = summary ?? nginxOutput.trim();
    if (file !== undefined) this.file = file;
    if (line !== undefined) this.line = line;
  }
}

/**
 * nginx did not take the files after SIGHUP. New files: the previous ones were put back. With
 * `unchanged`, nothing was written (a reload so that a new master runs the files in place).
 */
export class ReloadError extends Error {
  reason: string;
  unchanged: boolean;

  constructor(reason: string, restoreProblem?: string, opts: { unchanged?: boolean } = {}) {
    super(
      opts.unchanged
        ? `nginx reload failed: ${reason}; the files in place were not changed`
        : restoreProblem === undefined
          ? `nginx reload failed: ${reason}; the previous files were restored`
          : `nginx reload failed: ${reason}; restoring the previous files also failed: ${restoreProblem}`,
    );
    this.name = 'ReloadError';
    this.reason = reason;
    this.unchanged = opts.unchanged ?? false;
  }
}

const OWNED = /^ingress-sidecar[^/\0]*\.conf$/;
const NGINX_TEST_TIMEOUT_MS = 30_000;
/** File operations in flight at once when many files change (a first apply of 1,000 servers). */
const IO_CONCURRENCY = 16;

type Files = ReadonlyMap<string, string>;

export class Applier {
  readonly #opts: ApplierOptions;
  /** What we believe our files in confDir hold; null until read once, or after a failed restore. */
  #current: Map<string, string> | null = null;
  /**
   * The nginx master (masterIdentity()) known to run the files in #current: the one a verified
   * reload or the marker vouches for. null when none is known to (written while no master ran).
   */
  #loadedBy: string | null = null;
  #warnedNoBinary = false;
  #loadedHash: string | null = null;
  /** Applies run one at a time: two interleaved swaps could not restore each other's files. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: ApplierOptions) {
    this.#opts = opts;
  }

  /**
   * hashFiles() of the files of the last verified reload, computed once for the marker and the
   * metrics (~30–50 ms at 10,000 files); null before the first.
   */
  get loadedHash(): string | null {
    return this.#loadedHash;
  }

  apply(files: Map<string, string>): Promise<ApplyResult> {
    return this.#serial(() => this.#apply(new Map(files)));
  }

  /**
   * `nginx -t` of `files` as apply() would run it (next to the foreign files in confDir), without
   * writing anything in confDir: throws NginxConfigError when nginx refuses them. For finding
   * which Ingress nginx refuses, by trying subsets.
   */
  check(files: Map<string, string>): Promise<void> {
    return this.#serial(async () => {
      // Not remembered: apply() tells a first apply (restart marker) by #current being unset.
      await this.#check(this.#current ?? (await this.#readOwned()), files);
    });
  }

  /**
   * Whether a live nginx master is not known to run our current files: nginx was restarted (a new
   * master may have parsed conf.d before our last swap landed, so it could run an older set), or
   * started after files were written without one. The next apply() reloads it, files unchanged or
   * not. null before the first apply, when no master runs, or when it is the one that loaded them.
   * Costs a pid file read and a /proc read (a /proc scan without a pid file).
   */
  masterChanged(): Promise<{ previous: number | null; current: number } | null> {
    return this.#serial(async () => {
      if (this.#current === null) return null;
      const pid = await this.#findMaster();
      if (pid === null) return null;
      if ((await masterIdentity(pid)) === this.#loadedBy) return null;
      return { previous: this.#loadedBy === null ? null : Number.parseInt(this.#loadedBy, 10), current: pid };
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #findMaster(): Promise<number | null> {
    return findMaster(this.#opts.pidFile === undefined ? {} : { pidFile: this.#opts.pidFile });
  }

  async #apply(desired: Map<string, string>): Promise<ApplyResult> {
    for (const name of desired.keys()) {
      if (!OWNED.test(name)) throw new Error(`refusing to manage ${JSON.stringify(name)}: not an ingress-sidecar*.conf basename`);
    }
    const firstApply = this.#current === null;
    const previous = this.#current ?? (await this.#readOwned());
    this.#current = previous;
    if (sameFiles(previous, desired)) return this.#ensureLoaded(desired, firstApply);

    await this.#check(previous, desired);
    await this.#swap(previous, desired);
    this.#current = desired;

    let failure: string;
    try {
      const masterPid = await this.#findMaster();
      if (masterPid === null) {
        this.#loadedBy = null;
        this.#opts.logger.warn('no nginx master found; the new configuration was written and nginx will read it when it starts', {
          confDir: this.#opts.confDir,
        });
        return { changed: true, reloaded: false, files: changedNames(previous, desired) };
      }
      const identity = await masterIdentity(masterPid);
      const outcome = await reloadAndVerify(masterPid, this.#opts.reloadTimeoutMs);
      if (outcome.ok) {
        this.#loadedBy = identity;
        const hash = await hashFilesAsync(desired);
        await this.#writeMarker(hash, identity);
        this.#opts.logger.debug('nginx reloaded', { masterPid, newWorkers: outcome.newWorkers });
        this.#loadedHash = hash;
        return { changed: true, reloaded: true, masterPid, files: changedNames(previous, desired) };
      }
      failure = outcome.reason;
    } catch (err) {
      failure = describe(err);
    }

    // nginx still runs the old configuration; put the old files back so that a restart of nginx
    // (or the next reload of a different change) does not pick up files it has refused.
    const problems = await this.#restore(previous, changedNames(previous, desired));
    this.#current = problems.length === 0 ? previous : null;
    throw new ReloadError(failure, problems.length === 0 ? undefined : problems.join('; '));
  }

  /**
   * The files on disk are the desired ones; make sure the running master runs them, without
   * rewriting anything. Nothing to do when it is the master that loaded them. Otherwise:
   * - a restarted sidecar finds its files already on disk. nginx runs them only if the earlier
   *   run's reload succeeded against this same master (recorded in a marker after each verified
   *   reload, as Thanos' reloader records its hash); a crash between the swap and the signal
   *   leaves them unloaded;
   * - a restarted nginx (a new master) may have parsed conf.d before our last swap landed, and one
   *   started while no master ran may have read them half-written;
   * so reload once.
   */
  async #ensureLoaded(desired: Files, firstApply: boolean): Promise<ApplyResult> {
    const masterPid = await this.#findMaster();
    // No master: nginx reads these files when it starts (and the next apply reloads it once).
    if (masterPid === null) return { changed: false, reloaded: false };
    const identity = await masterIdentity(masterPid);
    if (identity === this.#loadedBy) return { changed: false, reloaded: false };
    if (firstApply) {
      const marker = await readFile(this.#markerPath(), 'utf8').catch(() => '');
      if (marker === markerFor(await hashFilesAsync(desired), identity)) {
        this.#loadedBy = identity;
        return { changed: false, reloaded: false };
      }
    }
    const outcome = await reloadAndVerify(masterPid, this.#opts.reloadTimeoutMs);
    if (!outcome.ok) throw new ReloadError(outcome.reason, undefined, { unchanged: true });
    this.#loadedBy = identity;
    const hash = await hashFilesAsync(desired);
    await this.#writeMarker(hash, identity);
    this.#loadedHash = hash;
    return { changed: false, reloaded: true, masterPid, files: [] };
  }

  #markerPath(): string {
    // A dotfile not ending in .conf: nginx's include never reads it.
    return path.join(this.#opts.confDir, '.ingress-sidecar-applied');
  }

  async #writeMarker(hash: string, master: string): Promise<void> {
    try {
      await writeFile(this.#markerPath(), markerFor(hash, master));
    } catch (err) {
      // Only costs one extra reload after a restart of the sidecar.
      this.#opts.logger.warn('could not record the applied configuration', { error: describe(err) });
    }
  }

  async #readOwned(): Promise<Map<string, string>> {
    const names = (await readdir(this.#opts.confDir, { withFileTypes: true }))
      .filter((entry) => entry.isFile() && OWNED.test(entry.name))
      .map((entry) => entry.name);
    const contents = new Map<string, string>();
    await eachLimit(names, IO_CONCURRENCY, async (name) => {
      contents.set(name, await readFile(path.join(this.#opts.confDir, name), 'utf8'));
    });
    // In directory order, as before the reads ran concurrently.
    return new Map(names.map((name) => [name, contents.get(name)!]));
  }

  /**
   * Runs `nginx -t` on the complete desired set plus the user's own files, in a throwaway prefix.
   * Only the files that differ from `previous` (what confDir holds) are staged; the others are
   * included from confDir itself, where they are byte-identical. So a pass that changes one file
   * of 1,000 writes one file, not 1,000 (and deletes one).
   */
  async #check(previous: Files, desired: Files): Promise<void> {
    const { nginxBinary, confDir, stateDir, logger } = this.#opts;
    if (nginxBinary === null) {
      if (!this.#warnedNoBinary) logger.warn('nginx binary not found; skipping nginx -t');
      this.#warnedNoBinary = true;
      return;
    }
    // Absolute, because nginx resolves relative include paths against the harness's directory.
    const live = path.resolve(confDir);
    const tmp = path.resolve(await mkdtemp(path.join(stateDir ?? os.tmpdir(), 'ingress-sidecar-stage-')));
    try {
      const staging = path.join(tmp, 'staging');
      const changed = [...desired].filter(([name, content]) => previous.get(name) !== content);
      await writeFiles(staging, changed);
      // Files that nginx's `include conf.d/*.conf` would load next to ours: a clash (a duplicate
      // default_server, a port taken by two listen options) only shows when they are tested
      // together. They come first, so that nginx blames such a clash on our file, which the
      // sidecar can set aside, rather than on the user's.
      const foreign = (await readdir(confDir, { withFileTypes: true }))
        .filter((e) => e.name.endsWith('.conf') && !e.name.startsWith('.') && !OWNED.test(e.name))
        .map((e) => path.join(live, e.name))
        .sort(byteOrder);
      // Ours one by one, in the order nginx's glob gives them (byte order: nginx never sets a
      // locale), because order matters (a log_format must precede its use): changed ones from
      // staging, unchanged ones from confDir; removed ones are left out.
      const ours = [...desired.keys()]
        .sort(byteOrder)
        .map((name) => path.join(previous.get(name) === desired.get(name) ? live : staging, name));
      const harness = path.join(tmp, 'harness.conf');
      await writeFile(
        harness,
        [
          `pid ${quote(path.join(tmp, 'nginx.pid'))};`,
          'error_log stderr;',
          'events {}',
          'http {',
          // Not the compiled-in default log path, which a non-root sidecar cannot open.
          '    access_log off;',
          ...foreign.map((f) => `    include ${quote(f)};`),
          ...ours.map((f) => `    include ${quote(f)};`),
          '}',
          '',
        ].join('\n'),
      );

      const result = await execa(nginxBinary, ['-t', '-p', tmp + '/', '-e', 'stderr', '-c', harness], {
        reject: false,
        all: true,
        // nginx -t opens every log file; /dev/stdout must then be a file it can open, and
        // execa's default stdout is a socket, which cannot be opened by path (ENXIO).
        stdout: 'ignore',
        timeout: NGINX_TEST_TIMEOUT_MS,
      });
      const output = result.all ?? '';
      if (result.exitCode === undefined) {
        throw new Error(`could not run ${nginxBinary} -t: ${result.shortMessage}`);
      }
      if (result.exitCode !== 0) throw configError(output, staging, confDir, desired);
      if (output.includes('[warn]')) logger.warn('nginx -t warnings', { output: readable(output, staging, confDir) });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Every temp file is written before any rename, so a full or read-only disk fails while the live
   * files are all still the old ones. The renames themselves replace each file atomically.
   */
  async #swap(previous: Files, desired: Files): Promise<void> {
    const { confDir } = this.#opts;
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
      throw new Error(`could not write ${confDir}: ${describe(err)}; the previous files are still in place`, { cause: err });
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
      const problems = await this.#restore(previous, touched);
      if (problems.length > 0) this.#current = null;
      throw new Error(
        `could not update ${confDir}: ${describe(err)}; ` +
          (problems.length === 0 ? 'the previous files were restored' : `restoring the previous files also failed: ${problems.join('; ')}`),
        { cause: err },
      );
    }
  }

  /** Puts back the previous content of `names`, removing those that did not exist; returns what failed. */
  async #restore(previous: Files, names: string[]): Promise<string[]> {
    const { confDir } = this.#opts;
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
}

/** A digest of a complete file set, names included: equal digests, equal configs. */
export function hashFiles(files: Files): string {
  return runStepsSync(hashSteps(files));
}

/** hashFiles() that gives the event loop a turn between files when it takes long (10,000 files at 10,000 Ingresses). */
function hashFilesAsync(files: Files): Promise<string> {
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

/** `master` is masterIdentity(): a restarted nginx that got the same PID is still a new master. */
function markerFor(hash: string, master: string): string {
  return `${hash} ${master}\n`;
}

function sameFiles(a: Files, b: Files): boolean {
  if (a.size !== b.size) return false;
  for (const [name, content] of a) if (b.get(name) !== content) return false;
  return true;
}

/** Hidden and not ending in .conf, so nginx's `*.conf` include never reads a half-written file. */
function tempPath(confDir: string, name: string): string {
  return path.join(confDir, `.${name}.tmp`);
}

async function writeFiles(dir: string, files: ReadonlyArray<readonly [string, string]>): Promise<void> {
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
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Names whose content differs between the two sets, including names in only one of them. */
function changedNames(a: Files, b: Files): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].filter((name) => a.get(name) !== b.get(name)).sort();
}

function quote(p: string): string {
  return `"${p.replace(/[\\"]/g, '\\$&')}"`;
}

/** nginx names the staged copy; users know the file by its confDir path. */
function readable(output: string, staging: string, confDir: string): string {
  return output.split(staging + path.sep).join(path.resolve(confDir) + path.sep);
}

/**
 * nginx's complaint, attributed to our file when the line it names is in one: a staged copy, or an
 * unchanged file of ours included from confDir (never a foreign file there).
 */
function configError(output: string, staging: string, confDir: string, desired: Files): NginxConfigError {
  const emerg = output.split('\n').find((l) => l.includes('[emerg]')) ?? output.split('\n')[0] ?? '';
  const summary = emerg.replace(/^.*?\[emerg\]\s+(\d+#\d+:\s+)?/, '');
  const where = / in (\/.*?):(\d+)\s*$/.exec(emerg);
  let file: string | undefined;
  let line: number | undefined;
  if (where?.[1] !== undefined) {
    const dir = path.dirname(where[1]);
    const name = path.basename(where[1]);
    if (dir === staging || (dir === path.resolve(confDir) && OWNED.test(name) && desired.has(name))) {
      file = name;
      line = Number(where[2]);
    }
  }
  const text = readable(summary, staging, confDir).trim();
  return new NginxConfigError(`nginx -t rejected the configuration: ${text}`, output, file, line, text);
}

