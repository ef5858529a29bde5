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
// readManifests() reads a file or a directory tree once, through the same parsing and merging
// code, for one-shot uses (the `render` command, golden tests).
import { open, readdir, readFile, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants, realpathSync } from 'node:fs';
import path from 'node:path';
import type { Stats } from 'node:fs';
import chokidar, { type FSWatcher } from 'chokidar';
import type { KubernetesObject } from '@kubernetes/client-node';
// client-node's loadAllYaml, without its index: the index loads every API class and client
// (~55 MB of RSS that directory mode does not need). The same parser (js-yaml, which client-node
// depends on) and the same model deserializer, so the objects are exactly what loadAllYaml built.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { loadAll } from 'js-yaml';
import type { Logger } from '../ops/log.ts';
import { emptySnapshot, snapshotCounts, type Snapshot, type Source } from './snapshot.ts';
import { describe } from '../errors.ts';

/** The kinds the sidecar reads, keyed by `apiVersion kind`, and the Snapshot field each fills. */
const KINDS: ReadonlyMap<string, { kind: string; field: keyof Snapshot; clusterScoped: boolean }> = new Map([
  ['networking.k8s.io/v1 Ingress', { kind: 'Ingress', field: 'ingresses', clusterScoped: false }],
  ['networking.k8s.io/v1 IngressClass', { kind: 'IngressClass', field: 'ingressClasses', clusterScoped: true }],
  ['v1 Service', { kind: 'Service', field: 'services', clusterScoped: false }],
  ['discovery.k8s.io/v1 EndpointSlice', { kind: 'EndpointSlice', field: 'endpointSlices', clusterScoped: false }],
  ['v1 Endpoints', { kind: 'Endpoints', field: 'endpoints', clusterScoped: false }],
  ['v1 Secret', { kind: 'Secret', field: 'secrets', clusterScoped: false }],
]);

const MANIFEST_EXT = /\.(ya?ml|json)$/i;
/** Ingress API versions that Kubernetes 1.22 removed: reported, never read. */
const OUTDATED_INGRESS_VERSIONS: ReadonlySet<string> = new Set(['networking.k8s.io/v1beta1', 'extensions/v1beta1']);

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

/**
 * Limits that keep one hostile file from stopping the process. YAML aliases share one parsed node
 * among all their uses, so a few hundred bytes of anchors expand to gigabytes (billion laughs) or
 * to a nesting tens of thousands deep as soon as anything walks them (JSON.stringify, the model
 * deserializer, translate): "Invalid string length", "Maximum call stack size exceeded". js-yaml's
 * own limits bound the parse (nesting, aliases per document, merge keys) but not the expansion:
 * nine aliases per level over nine levels are 81 aliases and 387 million nodes. So each document is also
 * measured as if every alias were copied out, by walking the shared nodes once (memoized, with an
 * explicit stack): cheap however large the expansion, and the file is refused before anything
 * else walks it. Without aliases a document's expanded size is at most about twice its bytes, so
 * maxExpandedUnits only ever refuses alias expansion.
 */
export const MANIFEST_LIMITS = {
  /** Bytes per file: far above any real manifest (an API object is at most ~1.5 MiB). */
  maxFileBytes: 16 * 1024 * 1024,
  /** js-yaml's maxAliases, per document: anchors for shared labels and the like fit easily. */
  maxAliases: 1000,
  /** js-yaml's maxDepth (its default), and the same bound on the nesting once aliases are expanded. */
  maxDepth: 100,
  /** Expanded size of a file's documents, in nodes plus string characters. */
  maxExpandedUnits: 2 * 16 * 1024 * 1024,
} as const;

interface Entry {
  /** kind/namespace/name: the identity used for duplicate detection. */
  key: string;
  field: keyof Snapshot;
  namespace: string;
  name: string;
  obj: KubernetesObject;
}

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

/** A file's content is unusable; the message says where and why. */
class FileError extends Error {
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(message: string, line?: number, column?: number) {
    super(message);
    this.line = line;
    this.column = column;
  }
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
  private onChange: (() => void) | undefined;
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

  async start(onChange: () => void): Promise<void> {
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
      this.logger.error(`watching ${showPath(this.dir)}: ${errorMessage(err)}`, { dir: this.dir, error: errorMessage(err) });
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
          this.logger.error(`not reading ${showPath(p)}: it resolves to ${showPath(real)}, outside ${showPath(this.rootReal)}`, { file: p });
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
        let changed: boolean;
        try {
          changed = await this.refresh(file);
        } catch (err) {
          // refresh() handles what it knows; this is the last boundary between one file and the
          // process (a rejection here would end it, or fail start()).
          this.onError();
          this.logger.error(`reading ${showPath(file)} failed: ${errorMessage(err)}`, { file, error: errorMessage(err) });
          changed = false;
        }
        if (changed && this.synced && !this.stopped) {
          this.stale = true;
          this.notify();
        }
      }
    })().finally(() => this.running.delete(file));
    this.running.set(file, run);
  }

  /** Waits until no file read is in progress (reads started meanwhile included). */
  private async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }

  private notify(): void {
    try {
      this.onChange?.();
    } catch (err) {
      // The watcher must survive a failing listener; the next change calls it again.
      this.logger.error(`change listener failed: ${errorMessage(err)}`, { error: errorMessage(err) });
    }
  }

  /** Reads one file into the cache. Returns whether its cached objects changed. Never throws. */
  private async refresh(file: string): Promise<boolean> {
    const prev = this.files.get(file);
    let text: string;
    try {
      text = await readManifestText(file, this.rootReal);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
        if (!prev) return false;
        this.files.delete(file);
        this.logger.debug(`${showPath(file)} removed`, { file });
        return prev.entries !== undefined && prev.entries.length > 0;
      }
      this.onError();
      if (err instanceof RefusedFile) {
        // Reported like a file that does not parse: what it served before was read from inside.
        this.logger.error(`not reading ${showPath(file)}: ${err.message}${keeping(prev)}`, { file, error: err.message });
        this.files.set(file, { text: undefined, entries: prev?.entries, fingerprint: prev?.fingerprint ?? '', broken: true });
        return false;
      }
      this.logger.error(`cannot read ${showPath(file)}: ${errorMessage(err)}${keeping(prev)}`, { file, error: errorMessage(err) });
      return false;
    }
    if (prev && prev.text === text) return false;
    if (text === '' && prev?.entries !== undefined && prev.entries.length > 0 && this.trailing.has(file)) {
      // Most likely a save caught between its truncation and its write (Node's writeFile, many
      // editors): keep the objects until a re-read that no later event can follow confirms it.
      // The write usually lands within a millisecond, and its own event may be dropped by
      // chokidar's throttle: look again shortly rather than at the first trailing read.
      this.logger.debug(`${showPath(file)} reads empty; checking again before dropping its objects`, { file });
      setTimeout(() => this.schedule(file), EMPTY_RECHECK_MS).unref();
      return false;
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
      return false;
    }

    if (prev?.broken) this.logger.info(`${showPath(file)} parses again`, { file });
    this.files.set(file, { text, entries, fingerprint, broken: false });
    const changed = prev?.entries === undefined ? entries.length > 0 : prev.fingerprint !== fingerprint;
    this.logger.debug(`${showPath(file)} read: ${entries.length} objects${changed ? '' : ', unchanged'}`, {
      file,
      objects: entries.length,
      changed,
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

// ---- shared by DirectorySource and readManifests: one way to read, classify and merge files ----

/** Where parsing reports what is worth saying besides the objects themselves. */
interface ParseNotes {
  warn(message: string, meta: Record<string, unknown>): void;
  /** An Ingress of an API version the sidecar does not read, and what to change. */
  outdated(message: string, meta: Record<string, unknown>): void;
  debug(message: string, meta: Record<string, unknown>): void;
}

/**
 * Dotfiles and dot-directories (relative to the root, whose own name may start with a dot), and
 * files that are not manifests. Directories are never ignored for their extension (chokidar may
 * ask before it knows whether a path is a file).
 */
function isIgnored(root: string, p: string, isFile: boolean): boolean {
  const rel = path.relative(root, p);
  if (rel === '') return false;
  if (rel.split(path.sep).some((seg) => seg.startsWith('.'))) return true;
  return isFile && !MANIFEST_EXT.test(p);
}

/** client-node's built-in API groups (its util.js): their kinds deserialize to the model classes. */
const BUILT_IN_API_GROUPS = new Set([
  'core', 'admissionregistration.k8s.io', 'apiextensions.k8s.io', 'apiregistration.k8s.io', 'apps',
  'authentication.k8s.io', 'authorization.k8s.io', 'autoscaling', 'batch', 'certificates.k8s.io',
  'coordination.k8s.io', 'discovery.k8s.io', 'events.k8s.io', 'flowcontrol.apiserver.k8s.io',
  'internal.apiserver.k8s.io', 'networking.k8s.io', 'node.k8s.io', 'policy', 'rbac.authorization.k8s.io',
  'resource.k8s.io', 'scheduling.k8s.io', 'storage.k8s.io', 'storagemigration.k8s.io',
]);

/** client-node's getSerializationType: `V1Ingress` for networking.k8s.io/v1 Ingress, else KubernetesObject. */
function serializationType(apiVersion: string | undefined, kind: string | undefined): string {
  if (apiVersion === undefined || kind === undefined) return 'KubernetesObject';
  const parts = apiVersion.split('/');
  const [group, version] = parts.length === 1 ? ['core', apiVersion] : [parts[0]!, parts[1] ?? ''];
  if (!BUILT_IN_API_GROUPS.has(group)) return 'KubernetesObject';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

/**
 * client-node's loadAllYaml (see the imports), within MANIFEST_LIMITS. Throws on a `null`
 * document, as it does. `budget` is what is left of the file's expanded size; omitted for text
 * already measured.
 */
function loadAllYaml(text: string, budget?: { units: number }): unknown[] {
  const docs = loadAll(text, { maxAliases: MANIFEST_LIMITS.maxAliases, maxDepth: MANIFEST_LIMITS.maxDepth });
  if (budget) for (const doc of docs) budget.units -= measureExpanded(doc, budget.units);
  return docs.map((doc) => {
    const o = doc as { apiVersion?: string; kind?: string };
    return ObjectSerializer.deserialize(doc, serializationType(o.apiVersion, o.kind)) as unknown;
  });
}

/** A document too large or too deep once its aliases are expanded, or an alias inside itself. */
class ExpansionError extends Error {}

/**
 * The size of `doc` in nodes plus string characters as if each alias were a copy, walking each
 * shared node once; throws ExpansionError past `maxUnits` or MANIFEST_LIMITS.maxDepth, or on a
 * cycle (js-yaml builds one for `a: &a [*a]`). Iterative: the nesting it measures may be deeper
 * than the call stack.
 */
function measureExpanded(doc: unknown, maxUnits: number): number {
  const memo = new Map<object, { units: number; depth: number }>();
  const onPath = new Set<object>();
  interface Frame { node: object; children: unknown[]; next: number; units: number; depth: number }
  const frames: Frame[] = [];
  let result: { units: number; depth: number } | undefined;
  const tooBig = (): never => {
    throw new ExpansionError(`expands, through YAML aliases, past ${MANIFEST_LIMITS.maxExpandedUnits} nodes and characters (for the whole file)`);
  };
  // Only arrays and plain objects come out of js-yaml's core schema; anything else is a leaf.
  const enter = (node: object): void => {
    const isArray = Array.isArray(node);
    const keys = isArray ? [] : Object.keys(node);
    let units = 1;
    for (const k of keys) units += 1 + k.length;
    const children = isArray ? (node as unknown[]) : keys.map((k) => (node as Record<string, unknown>)[k]);
    onPath.add(node);
    frames.push({ node, children, next: 0, units, depth: 1 });
  };
  const measured = (v: unknown): { units: number; depth: number } | undefined => {
    if (typeof v === 'string') return { units: 1 + v.length, depth: 0 };
    if (typeof v !== 'object' || v === null || !(Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
      return { units: 1, depth: 0 };
    }
    const known = memo.get(v);
    if (known) return known;
    if (onPath.has(v)) throw new ExpansionError('has a YAML alias inside the node it refers to (a cycle)');
    enter(v);
    return undefined;
  };
  result = measured(doc);
  while (frames.length > 0) {
    const top = frames[frames.length - 1]!;
    if (top.next < top.children.length) {
      const m = measured(top.children[top.next++]);
      if (!m) {
        if (frames.length > MANIFEST_LIMITS.maxDepth) throw new ExpansionError(`nests deeper than ${MANIFEST_LIMITS.maxDepth} levels once its YAML aliases are expanded`);
        continue;
      }
      top.units += m.units;
      top.depth = Math.max(top.depth, m.depth + 1);
      if (top.units > maxUnits) tooBig();
      continue;
    }
    frames.pop();
    onPath.delete(top.node);
    const done = { units: top.units, depth: top.depth };
    memo.set(top.node, done);
    const parent = frames[frames.length - 1];
    if (parent) {
      parent.units += done.units;
      parent.depth = Math.max(parent.depth, done.depth + 1);
      if (parent.units > maxUnits) tooBig();
    } else {
      result = done;
    }
  }
  if (result!.depth > MANIFEST_LIMITS.maxDepth) throw new ExpansionError(`nests deeper than ${MANIFEST_LIMITS.maxDepth} levels once its YAML aliases are expanded`);
  if (result!.units > maxUnits) tooBig();
  return result!.units;
}

/** Parses a whole file; throws FileError if any document is unusable. */
function parseManifestFile(file: string, text: string, notes: ParseNotes): Entry[] {
  const entries: Entry[] = [];
  const budget = { units: MANIFEST_LIMITS.maxExpandedUnits };
  const seen = new Set<string>();
  const add = (obj: Record<string, unknown>, where: string): void => {
    const entry = toEntry(file, obj, where, notes);
    if (!entry) return;
    if (seen.has(entry.key)) {
      notes.warn(`${showPath(file)} defines ${entry.key} more than once; using the first`, { file, object: entry.key });
      return;
    }
    seen.add(entry.key);
    entries.push(entry);
  };

  for (const doc of splitDocuments(text)) {
    let objs: unknown[];
    try {
      objs = loadAllYaml(doc.text, budget);
    } catch (err) {
      if (err instanceof ExpansionError) throw new FileError(`document at line ${doc.line} ${err.message}`, doc.line);
      if (isYamlError(err)) {
        // The parser counts from the document's first line (0-based); report the file's line.
        const line = err.mark ? err.mark.line + doc.line : undefined;
        const column = err.mark ? err.mark.column + 1 : undefined;
        const at = line !== undefined ? ` at line ${line}, column ${column}` : '';
        throw new FileError(`${err.reason ?? err.message}${at}`, line, column);
      }
      // loadAllYaml dereferences each document: a `null` document fails here.
      throw new FileError(`document at line ${doc.line} is not a Kubernetes object`, doc.line);
    }
    for (const obj of objs) {
      if (!isObject(obj)) throw new FileError(`document at line ${doc.line} is not a mapping`, doc.line);
      const where = `document at line ${doc.line}`;
      checkTyped(obj, where, doc.line);
      if (isList(obj)) {
        expandList(obj, where, doc.line).forEach((item, i) => add(item, `${where}, item ${i}`));
      } else {
        add(obj, where);
      }
    }
  }
  return entries;
}

/** Keeps an object of a supported kind (normalized), ignores others; throws if it has no name. */
function toEntry(file: string, obj: Record<string, unknown>, where: string, notes: ParseNotes): Entry | undefined {
  const o = obj as KubernetesObject;
  const spec = KINDS.get(`${o.apiVersion} ${o.kind}`);
  const name = o.metadata?.name;
  if (!spec && o.kind === 'Ingress' && OUTDATED_INGRESS_VERSIONS.has(String(o.apiVersion))) {
    // Removed from Kubernetes in 1.22; such a manifest would otherwise vanish without a word.
    const ingress = `${o.metadata?.namespace || 'default'}/${name ?? ''}`;
    notes.outdated(
      `${showPath(file)}: Ingress ${ingress} is ${o.apiVersion}, which is not read: convert to networking.k8s.io/v1: ` +
        'spec.backend -> spec.defaultBackend, serviceName/servicePort -> service.name/service.port.number|name, add pathType',
      { file, apiVersion: o.apiVersion, ingress },
    );
    return undefined;
  }
  if (!spec) {
    notes.debug(`ignoring ${o.apiVersion} ${o.kind} ${name ?? ''} in ${showPath(file)}`, {
      file,
      apiVersion: o.apiVersion,
      kind: o.kind,
    });
    return undefined;
  }
  if (typeof name !== 'string' || name === '') throw new FileError(`${where}: ${spec.kind} has no metadata.name`);
  const meta = o.metadata!;
  if (spec.clusterScoped) delete meta.namespace;
  else if (typeof meta.namespace !== 'string' || meta.namespace === '') meta.namespace = 'default';
  const ts = meta.creationTimestamp;
  // null is what `kubectl create --dry-run=client -o yaml` writes: no timestamp, quietly.
  if (ts === null) delete meta.creationTimestamp;
  else if (ts !== undefined && !(ts instanceof Date && !Number.isNaN(ts.getTime()))) {
    notes.warn(`${showPath(file)}: ${spec.kind} ${name} has an invalid metadata.creationTimestamp; ignoring it`, { file });
    delete meta.creationTimestamp;
  }
  if (spec.kind === 'Secret') mergeStringData(obj, where);
  const namespace = meta.namespace ?? '';
  return { key: `${spec.kind}/${namespace ? namespace + '/' : ''}${name}`, field: spec.field, namespace, name, obj: o };
}

/**
 * The union of the objects of several files: the file whose path sorts first wins an object
 * defined in more than one (each such duplicate goes to `onDuplicate`); sorted output. Files
 * whose entries are undefined (never parsed) contribute nothing.
 */
function mergeFiles(
  files: Iterable<readonly [string, Entry[] | undefined]>,
  onDuplicate: (d: { key: string; used: string; ignored: string }) => void,
): Snapshot {
  const winners = new Map<string, { entry: Entry; file: string }>();
  for (const [file, entries] of [...files].sort((a, b) => compare(a[0], b[0]))) {
    for (const entry of entries ?? []) {
      const first = winners.get(entry.key);
      if (!first) winners.set(entry.key, { entry, file });
      else onDuplicate({ key: entry.key, used: first.file, ignored: file });
    }
  }
  const snap = emptySnapshot();
  const sorted = [...winners.values()].map((w) => w.entry).sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name));
  for (const e of sorted) {
    // The KINDS table pairs each apiVersion/kind with its field, and loadAllYaml built the
    // matching model class, so the element type is right by construction.
    (snap[e.field] as KubernetesObject[]).push(e.obj);
  }
  return snap;
}

function duplicateMessage(d: { key: string; used: string; ignored: string }): string {
  return `${d.key} is defined in both ${showPath(d.used)} and ${showPath(d.ignored)}; using the one in ${showPath(d.used)}`;
}

/** A file's problem: `message` says what, and where in the file when known. */
export interface ManifestProblem {
  file: string;
  message: string;
}

export interface ManifestRead {
  snapshot: Snapshot;
  /** Files that could not be read or parsed; none of their objects is in the snapshot. */
  errors: ManifestProblem[];
  /**
   * Objects left out or adjusted while the rest was used: an object defined twice (the first,
   * by path, wins), an invalid creationTimestamp. Each message names the file(s) itself.
   */
  warnings: ManifestProblem[];
  /** Ingresses of a removed API version (v1beta1), left out, each with what to change. */
  outdated: ManifestProblem[];
}

/**
 * Reads a manifest file, or every manifest (`*.yaml`, `*.yml`, `*.json`, dot-paths skipped) under
 * a directory, once, with DirectorySource's parsing and merging. A file named explicitly is read
 * whatever its extension. A file that does not parse is reported in `errors` and contributes
 * nothing (there is no "last good" version to keep). Throws only when the path itself cannot be
 * read.
 */
export async function readManifests(pathToFileOrDir: string): Promise<ManifestRead> {
  const root = path.resolve(pathToFileOrDir);
  let st: Stats;
  try {
    st = await stat(root);
  } catch (err) {
    throw new Error(`${showPath(root)} cannot be read: ${errorMessage(err)}`, { cause: err });
  }
  const errors: ManifestProblem[] = [];
  // Files under a directory must resolve inside it; a file named explicitly is read wherever it is.
  const rootReal = st.isDirectory() ? await realpath(root) : undefined;
  const files = rootReal !== undefined ? await manifestFiles(root, rootReal, errors) : [root];
  const warnings: ManifestProblem[] = [];
  const outdated: ManifestProblem[] = [];
  const parsed = new Map<string, Entry[]>();
  for (const file of files) {
    let text: string;
    try {
      text = await readManifestText(file, rootReal);
    } catch (err) {
      errors.push({ file, message: err instanceof RefusedFile ? `not read: ${err.message}` : `cannot be read: ${errorMessage(err)}` });
      continue;
    }
    try {
      parsed.set(file, parseManifestFile(file, text, {
        warn: (message) => warnings.push({ file, message }),
        outdated: (message) => outdated.push({ file, message }),
        debug: () => {},
      }));
    } catch (err) {
      errors.push({ file, message: errorMessage(err) });
    }
  }
  const snapshot = mergeFiles(parsed, ({ key, used, ignored }) =>
    warnings.push({ file: ignored, message: duplicateMessage({ key, used, ignored }) }),
  );
  return { snapshot, errors, warnings, outdated };
}

/**
 * The manifest files under `root`, sorted, following symbolic links (as the watcher does) once,
 * and only to directories inside `rootReal` (others go to `errors`; files are checked when read).
 */
async function manifestFiles(root: string, rootReal: string, errors: ManifestProblem[]): Promise<string[]> {
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
class RefusedFile extends Error {}

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
async function readManifestText(file: string, root: string | undefined): Promise<string> {
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
    const real = process.platform === 'linux' ? await readlink(`/proc/self/fd/${handle.fd}`).catch(() => realpath(file)) : await realpath(file);
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
function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * A path as printed in messages: as it is, or JSON-quoted with every control, line-separator and
 * bidi character escaped when it has any (or a quote or backslash), so that a file name cannot
 * forge lines or fields in logs and in `render`'s output.
 */
export function showPath(p: string): string {
  if (!/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069"\\]/.test(p)) return p;
  return JSON.stringify(p).replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Splits YAML text at `---` document markers, remembering each document's first line (1-based). */
function splitDocuments(text: string): Array<{ text: string; line: number }> {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const docs: Array<{ text: string; line: number }> = [];
  let start = 0;
  const flush = (end: number): void => {
    const chunk = lines.slice(start, end);
    // Skip documents with nothing but markers, comments and blank lines (e.g. a trailing `---`).
    const hasContent = chunk.some((l) => !/^(?:---|\.\.\.)?\s*(?:#.*)?$/.test(l));
    if (hasContent) docs.push({ text: chunk.join('\n'), line: start + 1 });
  };
  lines.forEach((l, i) => {
    // A document marker at column 0 ends the previous document even inside a block scalar.
    if (i > start && /^---(?:\s|$)/.test(l)) {
      flush(i);
      start = i;
    }
  });
  flush(lines.length);
  return docs;
}

function checkTyped(obj: Record<string, unknown>, where: string, line: number): void {
  if (typeof obj['apiVersion'] !== 'string' || typeof obj['kind'] !== 'string' || !obj['apiVersion'] || !obj['kind']) {
    throw new FileError(`${where} has no apiVersion and kind`, line);
  }
}

function isList(obj: Record<string, unknown>): boolean {
  return typeof obj['kind'] === 'string' && obj['kind'].endsWith('List') && Array.isArray(obj['items']);
}

/**
 * The items of a `List` (or `ServiceList` etc.), each deserialized into its model class.
 * Items of a typed list may omit apiVersion and kind, as API list responses do.
 */
function expandList(list: Record<string, unknown>, where: string, line: number): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const kind = String(list['kind']);
  const itemKind = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
  (list['items'] as unknown[]).forEach((raw, i) => {
    const itemWhere = `${where}, item ${i}`;
    if (!isObject(raw)) throw new FileError(`${itemWhere} is not a mapping`, line);
    const item = itemKind ? { apiVersion: list['apiVersion'], kind: itemKind, ...raw } : raw;
    checkTyped(item, itemWhere, line);
    // The list itself was not deserialized into a model; round-trip each item (JSON is YAML).
    const typed = loadAllYaml(JSON.stringify(item))[0] as Record<string, unknown>;
    if (isList(typed)) out.push(...expandList(typed, itemWhere, line));
    else out.push(typed);
  });
  return out;
}

/** As the API server does: `stringData` is write-only and lands base64-encoded in `data`. */
function mergeStringData(obj: Record<string, unknown>, where: string): void {
  const sd = obj['stringData'];
  if (!isObject(sd)) return;
  const data: Record<string, unknown> = isObject(obj['data']) ? { ...obj['data'] } : {};
  for (const [k, v] of Object.entries(sd)) {
    // A scalar is taken as its text (a YAML number); a mapping or list would print as nonsense.
    if (typeof v === 'object' && v !== null) throw new FileError(`${where}: Secret stringData.${JSON.stringify(k).slice(1, -1)} is not a string`);
    data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  }
  obj['data'] = data;
  delete obj['stringData'];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isYamlError(err: unknown): err is Error & { reason?: string; mark?: { line: number; column: number } } {
  return err instanceof Error && err.name === 'YAMLException';
}

function keeping(prev: FileState | undefined): string {
  if (prev?.entries === undefined) return '; skipping it';
  return `; keeping its last good objects (${prev.entries.length})`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** An error's message on one line: fs errors quote the path, which may hold a newline. */
function errorMessage(err: unknown): string {
  const m = describe(err);
  return m.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
