// Which Ingresses are ours (class membership), how they are keyed, and the order they claim in.

import type { V1Ingress, V1IngressClass } from '@kubernetes/client-node';

export const CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';

/**
 * Whether an Ingress belongs to the class this sidecar serves. `withoutClass`
 * (--watch-ingress-without-class) takes every Ingress that names no class, whatever the
 * IngressClasses say, as ingress-nginx's flag of that name does.
 */
export function isOurs(ing: V1Ingress, className: string, classes: V1IngressClass[], withoutClass = false): boolean {
  const explicit = ing.spec?.ingressClassName ?? ing.metadata?.annotations?.[CLASS_ANNOTATION];
  if (explicit !== undefined && explicit !== '') return explicit === className;
  if (withoutClass) return true;
  const cls = classes.find((c) => c.metadata?.name === className);
  return cls?.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true';
}

export function ingressKey(ing: V1Ingress): string {
  return `${ing.metadata?.namespace ?? 'default'}/${ing.metadata?.name ?? ''}`;
}

export const namespaceOf = (ingress: string) => ingress.slice(0, ingress.indexOf('/'));

/** Oldest first, so that an existing route is never taken over by a newer Ingress; then by name. */
export function byAge(a: V1Ingress, b: V1Ingress): number {
  const ta = timeOf(a);
  const tb = timeOf(b);
  if (ta !== tb) return ta - tb;
  const ka = ingressKey(a);
  const kb = ingressKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function timeOf(ing: V1Ingress): number {
  const t = ing.metadata?.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : NaN;
  // Without a timestamp (a hand-written manifest) an Ingress counts as the newest.
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}
