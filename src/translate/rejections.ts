// The rejection collector: every step reports what it could not serve of an Ingress here, as
// 'rejected' (nothing of it is served as written) or 'partial' (a warning: the rest is served).
// A step that catches an InvalidValue records its message through this, so that the model lists
// each problem once, by Ingress.

import type { Rejection } from '../model.ts';

/** How a step reports a problem of an Ingress. */
export type Report = (ingress: string, severity: Rejection['severity'], reason: string) => void;

export class Rejections {
  private readonly rejections: Rejection[] = [];
  private readonly reported = new Set<string>();

  /** Records a problem once: the same reason of the same Ingress, reported by two paths, is one entry. */
  readonly report: Report = (ingress, severity, reason) => {
    const k = `${ingress}\n${severity}\n${reason}`;
    if (this.reported.has(k)) return;
    this.reported.add(k);
    this.rejections.push({ ingress, severity, reason });
  };

  /** Everything reported, by Ingress (in the order reported within one). */
  sorted(): Rejection[] {
    return this.rejections.sort((a, b) => (a.ingress < b.ingress ? -1 : a.ingress > b.ingress ? 1 : 0));
  }
}
