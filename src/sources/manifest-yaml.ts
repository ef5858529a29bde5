// client-node's loadAllYaml, without its index: the index loads every API class and client
// (~55 MB of RSS that directory mode does not need). The same parser (js-yaml, which client-node
// depends on) and the same model deserializer, so the objects are exactly what loadAllYaml built.
// Within MANIFEST_LIMITS, with each document measured as if its YAML aliases were copied out.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { loadAll } from 'js-yaml';
import { MANIFEST_LIMITS } from './manifest-limits.ts';

/** client-node's built-in API groups (its util.js): their kinds deserialize to the model classes. */
const BUILT_IN_API_GROUPS = new Set([
  'core',
  'admissionregistration.k8s.io',
  'apiextensions.k8s.io',
  'apiregistration.k8s.io',
  'apps',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'autoscaling',
  'batch',
  'certificates.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'events.k8s.io',
  'flowcontrol.apiserver.k8s.io',
  'internal.apiserver.k8s.io',
  'networking.k8s.io',
  'node.k8s.io',
  'policy',
  'rbac.authorization.k8s.io',
  'resource.k8s.io',
  'scheduling.k8s.io',
  'storage.k8s.io',
  'storagemigration.k8s.io',
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
export function loadAllYaml(text: string, budget?: { units: number }): unknown[] {
  const docs = loadAll(text, { maxAliases: MANIFEST_LIMITS.maxAliases, maxDepth: MANIFEST_LIMITS.maxDepth });
  if (budget) for (const doc of docs) budget.units -= measureExpanded(doc, budget.units);
  return docs.map((doc) => {
    const o = doc as { apiVersion?: string; kind?: string };
    return ObjectSerializer.deserialize(doc, serializationType(o.apiVersion, o.kind)) as unknown;
  });
}

/** A document too large or too deep once its aliases are expanded, or an alias inside itself. */
export class ExpansionError extends Error {}

/**
 * The size of `doc` in nodes plus string characters as if each alias were a copy, walking each
 * shared node once; throws ExpansionError past `maxUnits` or MANIFEST_LIMITS.maxDepth, or on a
 * cycle (js-yaml builds one for `a: &a [*a]`). Iterative: the nesting it measures may be deeper
 * than the call stack.
 */
function measureExpanded(doc: unknown, maxUnits: number): number {
  const memo = new Map<object, { units: number; depth: number }>();
  const onPath = new Set<object>();
  interface Frame {
    node: object;
    children: unknown[];
    next: number;
    units: number;
    depth: number;
  }
  const frames: Frame[] = [];
  let result: { units: number; depth: number } | undefined;
  const tooBig = (): never => {
    throw new ExpansionError(
      `expands, through YAML aliases, past ${MANIFEST_LIMITS.maxExpandedUnits} nodes and characters (for the whole file)`,
    );
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
    if (
      typeof v !== 'object' ||
      v === null ||
      !(Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)
    ) {
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
        if (frames.length > MANIFEST_LIMITS.maxDepth)
          throw new ExpansionError(
            `nests deeper than ${MANIFEST_LIMITS.maxDepth} levels once its YAML aliases are expanded`,
          );
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
  if (result!.depth > MANIFEST_LIMITS.maxDepth)
    throw new ExpansionError(`nests deeper than ${MANIFEST_LIMITS.maxDepth} levels once its YAML aliases are expanded`);
  if (result!.units > maxUnits) tooBig();
  return result!.units;
}
