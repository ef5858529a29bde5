// Manifest text into objects, shared by DirectorySource and readManifests: one way to split,
// parse, classify and normalize a file's objects, and to merge several files' objects into a
// Snapshot. A file either parses whole or throws FileError saying where and why.
import type { KubernetesObject } from '@kubernetes/client-node';
import { emptySnapshot, type Snapshot } from './snapshot.ts';
import { compare, showPath } from './manifest-files.ts';
import { ExpansionError, loadAllYaml } from './manifest-yaml.ts';
import { MANIFEST_LIMITS } from './manifest-limits.ts';

/** The kinds the sidecar reads, keyed by `apiVersion kind`, and the Snapshot field each fills. */
const KINDS: ReadonlyMap<string, { kind: string; field: keyof Snapshot; clusterScoped: boolean }> = new Map([
  ['networking.k8s.io/v1 Ingress', { kind: 'Ingress', field: 'ingresses', clusterScoped: false }],
  ['networking.k8s.io/v1 IngressClass', { kind: 'IngressClass', field: 'ingressClasses', clusterScoped: true }],
  ['v1 Service', { kind: 'Service', field: 'services', clusterScoped: false }],
  ['discovery.k8s.io/v1 EndpointSlice', { kind: 'EndpointSlice', field: 'endpointSlices', clusterScoped: false }],
  ['v1 Endpoints', { kind: 'Endpoints', field: 'endpoints', clusterScoped: false }],
  ['v1 Secret', { kind: 'Secret', field: 'secrets', clusterScoped: false }],
]);

/** Ingress API versions that Kubernetes 1.22 removed: reported, never read. */
const OUTDATED_INGRESS_VERSIONS: ReadonlySet<string> = new Set(['networking.k8s.io/v1beta1', 'extensions/v1beta1']);

export interface Entry {
  /** kind/namespace/name: the identity used for duplicate detection. */
  key: string;
  field: keyof Snapshot;
  namespace: string;
  name: string;
  obj: KubernetesObject;
}

/** A file's content is unusable; the message says where and why. */
export class FileError extends Error {
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(message: string, line?: number, column?: number) {
    super(message);
    this.line = line;
    this.column = column;
  }
}

/** Where parsing reports what is worth saying besides the objects themselves. */
export interface ParseNotes {
  warn(message: string, meta: Record<string, unknown>): void;
  /** An Ingress of an API version the sidecar does not read, and what to change. */
  outdated(message: string, meta: Record<string, unknown>): void;
  debug(message: string, meta: Record<string, unknown>): void;
}

/** Parses a whole file; throws FileError if any document is unusable. */
export function parseManifestFile(file: string, text: string, notes: ParseNotes): Entry[] {
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
    notes.warn(`${showPath(file)}: ${spec.kind} ${name} has an invalid metadata.creationTimestamp; ignoring it`, {
      file,
    });
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
export function mergeFiles(
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
  const sorted = [...winners.values()]
    .map((w) => w.entry)
    .sort((a, b) => compare(a.namespace, b.namespace) || compare(a.name, b.name));
  for (const e of sorted) {
    // The KINDS table pairs each apiVersion/kind with its field, and loadAllYaml built the
    // matching model class, so the element type is right by construction.
    (snap[e.field] as KubernetesObject[]).push(e.obj);
  }
  return snap;
}

export function duplicateMessage(d: { key: string; used: string; ignored: string }): string {
  return `${d.key} is defined in both ${showPath(d.used)} and ${showPath(d.ignored)}; using the one in ${showPath(d.used)}`;
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
    if (typeof v === 'object' && v !== null)
      throw new FileError(`${where}: Secret stringData.${JSON.stringify(k).slice(1, -1)} is not a string`);
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
