// A Source that reads Kubernetes manifests from a directory tree and watches it for changes.
// Used for local runs, demos and tests; downstream code cannot tell it from the Kubernetes source.
//
// Each file is read whole and parsed whole: a file either replaces its cached objects or, when it
// does not parse, is reported and keeps its last good objects (an editor's half-written save must
// not wipe routes). Events only say "look at this file again": the file's state is whatever a
// fresh read finds, so event order and editors' atomic saves (unlink + add, rename) do not matter.
//
// A file is read as soon as chokidar reports it and, after a 'change', read again once chokidar's
// throttle windows have passed (see TRAILING_READS_MS): chokidar drops events inside those windows
// with no trailing event, so without the re-read a quick second save could be lost for good.
//
// Reading files safely is manifest-files.ts, parsing them manifest-parse.ts; readManifests()
// (read-manifests.ts) reads a file or a tree once through the same code.
import { realpath, stat } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { Stats } from 'node:fs';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../ops/log.ts';
import { emptySnapshot, snapshotCounts, type Snapshot, type Source } from './snapshot.ts';
import {
  errorMessage,
  isIgnored,
  isInside,
  MANIFEST_EXT,
  readManifestText,
  RefusedFile,
  showPath,
} from './manifest-files.ts';
import { duplicateMessage, FileError, mergeFiles, parseManifestFile, type Entry } from './manifest-parse.ts';

/**
 * When to read a file again after each 'change' event for it, in ms. chokidar 5 drops, per path
 * and with no trailing event: a 'change' within 50 ms of the last one it emitted
 * (`_throttle('change', path, 50)` in `_emit`, index.js), a raw fs.watch event within 5 ms of the
 * last (`_throttle('watch', file, 5)` in `_handleFile`'s listener, handler.js, before it stats),
 * and a removal within 100 ms of the last (`_throttle('remove', path, 100)` in `_remove`: delete,
 * re-create, delete; with `atomic` the re-creation is reported as a 'change' and the second
 * removal not at all). Each window opens at or before the 'change' that reaches us, and
 * chokidar's timers that close them were set before ours, so a read after 60 ms sees every write
 * whose event was dropped, and one after 110 ms every removal. The first also comes before the
 * reconciler's default 100 ms debounce expires, so a save that was read half-written is
 * corrected before a pass uses it. An unchanged file costs a read and a string comparison.
 *
 * 'add' and 'unlink' need no re-read: a new file's watcher is attached before chokidar reports
 * it, so the first write after that (never throttled on a fresh watcher) is reported, and earlier
 * writes are in the read that the 'add' starts; and a re-creation after a reported removal is
 * reported as an 'add'. So a burst of new files costs no extra reads.
 */
const TRAILING_READS_MS = [60, 110] as const;
/** How soon a file that read empty mid-save is read again (see refresh()). */
const EMPTY_RECHECK_MS = 5;

interface FileState {
  /** The text last read, to skip re-parsing an untouched file; undefined if the read was refused. */
  text: string | undefined;
  /** The objects of the last successful parse; undefined if the file never parsed. */
  entries: Entry[] | undefined;
  /** JSON of `entries`: compares parsed content, so comment or whitespace edits change nothing. */
  fingerprint: string;
  /** The last read did not parse. */
  broken: boolean;
}

export class DirectorySource implements Source {
  private readonly dir: string;
  private readonly logger: Logger;
  /** Counts errors for the source_errors_total metric. */
  private readonly onError: () => void;
  private readonly files = new Map<string, FileState>();
  /** Files with an event not yet handled, and the one read in progress per file. */
  private readonly dirty = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  /** Per file, the pending re-reads after its last event (TRAILING_READS_MS). */
  private readonly trailing = new Map<string, NodeJS.Timeout[]>();
  private watcher: FSWatcher | undefined;
  private onChange: ((field?: keyof Snapshot) => void) | undefined;
  /** False until the first full read is in the cache: no onChange() before that. */
  private synced = false;
  private stopped = false;
  /** The watched directory with its symbolic links resolved: files must resolve inside it. */
  private rootReal = '';
  /** Directories left unwatched because they resolve outside rootReal, each reported once. */
  private readonly outsideDirs = new Set<string>();
  private current: Snapshot = emptySnapshot();
  /** A file's objects changed since `current` was built: snapshot() rebuilds it first. */
  private stale = false;
  /** Duplicates already warned about (key + both files), so each is reported once. */
  private warnedDuplicates = new Set<string>();

  constructor(opts: { dir: string; logger: Logger; onError?: () => void }) {
    this.dir = path.resolve(opts.dir);
    this.logger = opts.logger;
    this.onError = opts.onError ?? (() => {});
  }

  async start(onChange: (field?: keyof Snapshot) => void): Promise<void> {
    if (this.watcher) throw new Error('DirectorySource.start() called twice');
    let st: Stats;
    try {
      st = await stat(this.dir);
    } catch (err) {
      throw new Error(`watch directory ${showPath(this.dir)} cannot be read: ${errorMessage(err)}`, { cause: err });
    }
    if (!st.isDirectory()) throw new Error(`watch directory ${showPath(this.dir)} is not a directory`);
    this.rootReal = await realpath(this.dir);

    this.onChange = onChange;
    const watcher = chokidar.watch(this.dir, {
      ignored: (p: string, stats?: Stats) => this.isIgnored(p, stats),
      ignoreInitial: false,
      followSymlinks: true,
      // Collapses an editor's unlink + add of the same path within 100 ms into one change.
      atomic: true,
      // No awaitWriteFinish: it delays every event by its stability threshold (~57 ms measured
      // for 50 ms). The trailing re-reads cover what it covered: events chokidar drops, and a
      // save read half-way (which either does not parse and keeps the last good objects, or is
      // corrected by the re-read 60 ms later).
    });
    this.watcher = watcher;
    watcher.on('add', (p) => this.schedule(p));
    watcher.on('change', (p) => this.onChangeEvent(p));
    watcher.on('unlink', (p) => this.schedule(p));
    watcher.on('unlinkDir', (d) => {
      // chokidar reports the files under a removed directory too; re-checking them is harmless.
      const prefix = d + path.sep;
      for (const f of this.files.keys()) if (f.startsWith(prefix)) this.schedule(f);
    });
    watcher.on('error', (err) => {
      this.onError();
      this.logger.error(`watching ${showPath(this.dir)}: ${errorMessage(err)}`, {
        dir: this.dir,
        error: errorMessage(err),
      });
    });

    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    await this.settle();
    if (this.stopped) return;
    this.rebuild();
    this.synced = true;
    const s = this.current;
    this.logger.info(`read ${this.files.size} manifest files from ${showPath(this.dir)}`, {
      dir: this.dir,
      files: this.files.size,
      ...snapshotCounts(s),
    });
  }

  snapshot(): Snapshot {
    // Rebuilt here rather than per changed file: a burst of N files costs one merge, not N.
    if (this.stale) this.rebuild();
    const s = this.current;
    return {
      ingresses: [...s.ingresses],
      ingressClasses: [...s.ingressClasses],
      services: [...s.services],
      endpointSlices: [...s.endpointSlices],
      endpoints: [...s.endpoints],
      secrets: [...s.secrets],
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timers of this.trailing.values()) for (const t of timers) clearTimeout(t);
    this.trailing.clear();
    const w = this.watcher;
    if (w) await w.close();
    await this.settle();
  }

  private isIgnored(p: string, stats?: Stats): boolean {
    if (isIgnored(this.dir, p, stats?.isFile() === true)) return true;
    // A directory reached through a link to outside is not watched at all (files are checked,
    // and reported, when read).
    if (stats?.isDirectory() && p !== this.dir) {
      let real: string;
      try {
        real = realpathSync(p);
      } catch {
        return false; // gone, or a loop: chokidar finds out itself
      }
      if (!isInside(this.rootReal, real)) {
        if (!this.outsideDirs.has(p)) {
          this.outsideDirs.add(p);
          this.onError();
          this.logger.error(
            `not reading ${showPath(p)}: it resolves to ${showPath(real)}, outside ${showPath(this.rootReal)}`,
            { file: p },
          );
        }
        return true;
      }
    }
    return false;
  }

  /** A 'change' of `file`: read it now, and again once chokidar's throttles have passed. */
  private onChangeEvent(file: string): void {
    if (this.stopped || !MANIFEST_EXT.test(file)) return;
    for (const t of this.trailing.get(file) ?? []) clearTimeout(t);
    const timers = TRAILING_READS_MS.map((ms, i) =>
      setTimeout(() => {
        // After the last one, an empty read is taken as final (see refresh()).
        if (i === TRAILING_READS_MS.length - 1) this.trailing.delete(file);
        this.schedule(file);
      }, ms).unref(),
    );
    this.trailing.set(file, timers);
    this.schedule(file);
  }

  /** Marks a file for re-reading; at most one read per file runs at a time, the last event wins. */
  private schedule(file: string): void {
    if (this.stopped || !MANIFEST_EXT.test(file)) return;
    this.dirty.add(file);
    if (this.running.has(file)) return;
    const run = (async () => {
      while (this.dirty.delete(file)) {
        let changed: ReadonlySet<keyof Snapshot>;
        try {
          changed = await this.refresh(file);
        } catch (err) {
          // refresh() handles what it knows; this is the last boundary between one file and the
          // process (a rejection here would end it, or fail start()).
          this.onError();
          this.logger.error(`reading ${showPath(file)} failed: ${errorMessage(err)}`, {
            file,
            error: errorMessage(err),
          });
          changed = NOTHING;
        }
        if (changed.size > 0 && this.synced && !this.stopped) {
          this.stale = true;
          this.notify(changed);
        }
      }
    })().finally(() => this.running.delete(file));
    this.running.set(file, run);
  }

  /** Waits until no file read is in progress (reads started meanwhile included). */
  private async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  private notify(fields: ReadonlySet<keyof Snapshot>): void {
    try {
      for (const f of fields) this.onChange?.(f);
    } catch (err) {
      // The watcher must survive a failing listener; the next change calls it again.
      this.logger.error(`change listener failed: ${errorMessage(err)}`, { error: errorMessage(err) });
    }
  }

  /** Reads one file into the cache. Returns which kinds of its cached objects changed (none: empty). Never throws. */
  private async refresh(file: string): Promise<ReadonlySet<keyof Snapshot>> {
    const prev = this.files.get(file);
    let text: string;
    try {
      text = await readManifestText(file, this.rootReal);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
        if (!prev) return NOTHING;
        this.files.delete(file);
        this.logger.debug(`${showPath(file)} removed`, { file });
        return changedFields(prev.entries, []);
      }
      this.onError();
      if (err instanceof RefusedFile) {
        // Reported like a file that does not parse: what it served before was read from inside.
        this.logger.error(`not reading ${showPath(file)}: ${err.message}${keeping(prev)}`, {
          file,
          error: err.message,
        });
        this.files.set(file, {
          text: undefined,
          entries: prev?.entries,
          fingerprint: prev?.fingerprint ?? '',
          broken: true,
        });
        return NOTHING;
      }
      this.logger.error(`cannot read ${showPath(file)}: ${errorMessage(err)}${keeping(prev)}`, {
        file,
        error: errorMessage(err),
      });
      return NOTHING;
    }
    if (prev && prev.text === text) return NOTHING;
    if (text === '' && prev?.entries !== undefined && prev.entries.length > 0 && this.trailing.has(file)) {
      // Most likely a save caught between its truncation and its write (Node's writeFile, many
      // editors): keep the objects until a re-read that no later event can follow confirms it.
      // The write usually lands within a millisecond, and its own event may be dropped by
      // chokidar's throttle: look again shortly rather than at the first trailing read.
      this.logger.debug(`${showPath(file)} reads empty; checking again before dropping its objects`, { file });
      setTimeout(() => this.schedule(file), EMPTY_RECHECK_MS).unref();
      return NOTHING;
    }

    let entries: Entry[];
    let fingerprint: string;
    try {
      entries = this.parse(file, text);
      fingerprint = JSON.stringify(entries.map((e) => e.obj));
    } catch (err) {
      // Any failure on the way from text to objects is this file's problem, never the process's.
      const e = err instanceof FileError ? err : new FileError(errorMessage(err));
      this.onError();
      this.logger.error(`cannot parse ${showPath(file)}: ${e.message}${keeping(prev)}`, {
        file,
        error: e.message,
        ...(e.line !== undefined ? { line: e.line } : {}),
        ...(e.column !== undefined ? { column: e.column } : {}),
      });
      this.files.set(file, { text, entries: prev?.entries, fingerprint: prev?.fingerprint ?? '', broken: true });
      return NOTHING;
    }

    if (prev?.broken) this.logger.info(`${showPath(file)} parses again`, { file });
    this.files.set(file, { text, entries, fingerprint, broken: false });
    const changed =
      prev?.entries !== undefined && prev.fingerprint === fingerprint ? NOTHING : changedFields(prev?.entries, entries);
    this.logger.debug(`${showPath(file)} read: ${entries.length} objects${changed.size > 0 ? '' : ', unchanged'}`, {
      file,
      objects: entries.length,
      changed: changed.size > 0,
    });
    return changed;
  }

  /** Parses a whole file; throws FileError if any document is unusable. */
  private parse(file: string, text: string): Entry[] {
    return parseManifestFile(file, text, {
      warn: (message, meta) => this.logger.warn(message, meta),
      outdated: (message, meta) => this.logger.warn(message, meta),
      debug: (message, meta) => this.logger.debug(message, meta),
    });
  }

  /** Recomputes the union of all files: first file by path wins a duplicate; sorted output. */
  private rebuild(): void {
    this.stale = false;
    const duplicates = new Set<string>();
    this.current = mergeFiles(
      [...this.files].map(([file, state]) => [file, state.entries] as const),
      ({ key, used, ignored }) => {
        const id = `${key}\0${used}\0${ignored}`;
        duplicates.add(id);
        if (!this.warnedDuplicates.has(id)) {
          this.logger.warn(duplicateMessage({ key, used, ignored }), {
            object: key,
            used,
            ignored,
          });
        }
      },
    );
    // Forget resolved duplicates, so one that comes back is reported again.
    this.warnedDuplicates = duplicates;
  }
}

function keeping(prev: FileState | undefined): string {
  if (prev?.entries === undefined) return '; skipping it';
  return `; keeping its last good objects (${prev.entries.length})`;
}

const NOTHING: ReadonlySet<keyof Snapshot> = new Set();

/** The kinds of objects that differ between two reads of one file (by kind, as JSON). */
function changedFields(before: readonly Entry[] | undefined, after: readonly Entry[]): ReadonlySet<keyof Snapshot> {
  const byField = (entries: readonly Entry[] | undefined) => {
    const out = new Map<keyof Snapshot, unknown[]>();
    for (const e of entries ?? []) out.set(e.field, [...(out.get(e.field) ?? []), e.obj]);
    return out;
  };
  const a = byField(before);
  const b = byField(after);
  const fields = new Set<keyof Snapshot>();
  for (const f of new Set([...a.keys(), ...b.keys()]))
    if (JSON.stringify(a.get(f) ?? []) !== JSON.stringify(b.get(f) ?? [])) fields.add(f);
  return fields;
}
