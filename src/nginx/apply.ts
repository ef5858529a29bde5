// Puts rendered files in front of nginx: check them with `nginx -t` next to the user's own
// files, swap them in with renames, SIGHUP the master, and confirm a new worker generation.
// When any step after the swap fails, the previous files go back so that what is on disk is
// what nginx is running. The file work is conf-files.ts's, `nginx -t` config-test.ts's, the
// signal and the check for new workers process.ts's; this module orders them.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe } from '../errors.ts';
import type { Logger } from '../ops/log.ts';
import {
  OWNED,
  SwapError,
  changedNames,
  hashFilesAsync,
  readOwned,
  restoreFiles,
  sameFiles,
  swapFiles,
  type Files,
} from './conf-files.ts';
import { testConfig } from './config-test.ts';
import { findMaster, masterIdentity, reloadAndVerify } from './process.ts';

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
      await this.#check(this.#current ?? (await readOwned(this.#opts.confDir)), files);
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
      if (!OWNED.test(name))
        throw new Error(`refusing to manage ${JSON.stringify(name)}: not an ingress-sidecar*.conf basename`);
    }
    const firstApply = this.#current === null;
    const previous = this.#current ?? (await readOwned(this.#opts.confDir));
    this.#current = previous;
    if (sameFiles(previous, desired)) return this.#ensureLoaded(desired, firstApply);

    await this.#check(previous, desired);
    try {
      await swapFiles(this.#opts.confDir, previous, desired);
    } catch (err) {
      // What confDir holds is unknown now: read it again before the next apply.
      if (err instanceof SwapError && !err.restored) this.#current = null;
      throw err;
    }
    this.#current = desired;

    let failure: string;
    try {
      const masterPid = await this.#findMaster();
      if (masterPid === null) {
        this.#loadedBy = null;
        this.#opts.logger.warn(
          'no nginx master found; the new configuration was written and nginx will read it when it starts',
          {
            confDir: this.#opts.confDir,
          },
        );
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
    const problems = await restoreFiles(this.#opts.confDir, previous, changedNames(previous, desired));
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

  /** `nginx -t` of `desired` next to the user's files (config-test.ts); skipped without a binary. */
  async #check(previous: Files, desired: Files): Promise<void> {
    const { nginxBinary, confDir, stateDir, logger } = this.#opts;
    if (nginxBinary === null) {
      if (!this.#warnedNoBinary) logger.warn('nginx binary not found; skipping nginx -t');
      this.#warnedNoBinary = true;
      return;
    }
    await testConfig(
      { nginxBinary, confDir, logger, ...(stateDir === undefined ? {} : { stateDir }) },
      previous,
      desired,
    );
  }
}

/** `master` is masterIdentity(): a restarted nginx that got the same PID is still a new master. */
function markerFor(hash: string, master: string): string {
  return `${hash} ${master}\n`;
}
