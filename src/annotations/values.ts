// The grammars every annotation group shares: how an annotation is read (a trimmed, non-empty
// string, or a Go-style boolean), how a refused value is quoted in the reason, and the value
// shapes several groups use (sizes, seconds, whole numbers, comma-separated lists).

import { createHash } from 'node:crypto';
import { InvalidValue, parseBoolAnnotation } from '../grammar.ts';

export const ANNOTATION_PREFIX = 'nginx.ingress.kubernetes.io/';
/** The full name of an annotation under the prefix. */
export const annotation = (name: string) => `${ANNOTATION_PREFIX}${name}`;

/** Timeouts above this (about 24 days) overflow nginx's millisecond timers on 32-bit builds. */
export const MAX_TIMEOUT_SECONDS = 2_147_483;
const MAX_LIST_ITEMS = 256;

/** Derived names (zones, maps, files): a digest of what they stand for, never the input itself. */
export const digest = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);

/** A value as a reason may quote it: short, and JSON-escaped so that it cannot forge a log line. */
export function shown(value: unknown): string {
  if (typeof value !== 'string') return `a ${Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value}`;
  return JSON.stringify(value.slice(0, 64)) + (value.length > 64 ? '...' : '');
}

/** Reads an Ingress's annotations. */
export class Reader {
  private readonly raw: Record<string, unknown>;

  constructor(raw: Record<string, unknown>) {
    this.raw = raw;
  }

  has(name: string): boolean {
    return Object.hasOwn(this.raw, name);
  }

  /** The value, trimmed, or undefined when the annotation is absent; non-strings and "" are refused. */
  string(name: string): string | undefined {
    if (!this.has(name)) return undefined;
    const v = this.raw[name];
    if (typeof v !== 'string') throw new InvalidValue(`annotation ${name} must be a string, not ${shown(v)}`);
    const t = v.trim();
    if (t === '') throw new InvalidValue(`annotation ${name} must not be empty`);
    return t;
  }

  bool(name: string): boolean | undefined {
    return this.has(name) ? parseBoolAnnotation(name, this.raw[name]) : undefined;
  }
}

/** What a group's parse gets: the annotations, where to note those that have no effect, and the Ingress's context. */
export interface GroupInput {
  r: Reader;
  /** Notes `annotation NAME has no effect: WHY` when NAME is set. */
  noEffect: (name: string, why: string) => void;
  namespace: string;
  tlsEnabled: boolean;
  allowSnippets: boolean;
  /** The nginx the config is for has `sticky cookie` (balancing.ts hasStickyCookie). */
  stickyCookie: boolean;
}

export const fail = (name: string, value: string, why: string) =>
  new InvalidValue(`annotation ${name}: ${shown(value)} ${why}`);

/** An nginx size: `text` is what the directive gets (digits and k, m or g), `bytes` its value. */
export interface Size {
  text: string;
  bytes: number;
}

/** An nginx size as ingress-nginx accepts it: digits, then b, k, m or g in either case. */
export function parseSize(name: string, value: string, opts: { min?: number; max?: number } = {}): Size {
  const m = /^(\d{1,13})([bBkKmMgG]?)$/.exec(value);
  if (!m) throw fail(name, value, 'is not a size (digits, then optionally k, m or g, as in "8m")');
  const amount = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const bytes = amount * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
  if (!Number.isSafeInteger(bytes)) throw fail(name, value, 'is too large');
  if (opts.min !== undefined && bytes < opts.min)
    throw fail(name, value, `is smaller than ${opts.min} byte${opts.min === 1 ? '' : 's'}`);
  if (opts.max !== undefined && bytes > opts.max)
    throw fail(name, value, `is larger than ${opts.max / 1024}k, the most this sidecar accepts`);
  // nginx has no "b" suffix: bytes are plain digits.
  return { text: `${amount}${unit === 'b' ? '' : unit}`, bytes };
}

/** Whole seconds, as ingress-nginx's timeouts are given ("60"; "60s" is accepted too). */
export function parseSeconds(name: string, value: string): number {
  const m = /^(\d{1,9})s?$/.exec(value);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 1 && n <= MAX_TIMEOUT_SECONDS))
    throw fail(name, value, `is not a number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`);
  return n;
}

export function parseInteger(name: string, value: string, min: number, max: number): number {
  const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw fail(name, value, `is not a whole number from ${min} to ${max}`);
  return n;
}

/** A comma-separated list, items trimmed, empty items dropped. */
export function items(name: string, value: string): string[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length === 0) throw fail(name, value, 'names nothing');
  if (list.length > MAX_LIST_ITEMS) throw fail(name, value, `has more than ${MAX_LIST_ITEMS} items`);
  return list;
}

/** A cookie name nginx can read as `$cookie_<name>`: its variable names end at any other character. */
export const COOKIE_NAME = /^[A-Za-z0-9_]{1,64}$/;
