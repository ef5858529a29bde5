// allowlist-source-range (and its old name whitelist-source-range), denylist-source-range:
// which client addresses a location serves.

import { isIP } from 'node:net';
import { annotation, fail, items, type GroupInput } from './values.ts';

export const ALLOWLIST_SOURCE_RANGE = annotation('allowlist-source-range');
export const WHITELIST_SOURCE_RANGE = annotation('whitelist-source-range');
export const DENYLIST_SOURCE_RANGE = annotation('denylist-source-range');

export const ACCESS_ANNOTATIONS = [ALLOWLIST_SOURCE_RANGE, WHITELIST_SOURCE_RANGE, DENYLIST_SOURCE_RANGE];

/** Normalised CIDRs (network address / prefix length): the same in the annotations and in the model. */
export interface AccessAnnotations {
  allow: string[];
  deny: string[];
}

/** Normalised CIDRs: `deny` each of `deny`; then, when `allow` is not empty, allow each and deny all. */
export type AccessSettings = AccessAnnotations;

export const DEFAULT_ACCESS: Readonly<AccessAnnotations> = Object.freeze({ deny: [], allow: [] });

export function parseAccess({ r, noEffect }: GroupInput): AccessAnnotations {
  const out: AccessAnnotations = { allow: [], deny: [] };
  const allow = r.string(ALLOWLIST_SOURCE_RANGE);
  const whitelist = r.string(WHITELIST_SOURCE_RANGE);
  if (allow !== undefined) {
    out.allow = parseCidrs(ALLOWLIST_SOURCE_RANGE, allow);
    if (whitelist !== undefined) {
      parseCidrs(WHITELIST_SOURCE_RANGE, whitelist);
      noEffect(WHITELIST_SOURCE_RANGE, `${ALLOWLIST_SOURCE_RANGE}, its newer name, is set too and wins`);
    }
  } else if (whitelist !== undefined) {
    out.allow = parseCidrs(WHITELIST_SOURCE_RANGE, whitelist);
  }
  const deny = r.string(DENYLIST_SOURCE_RANGE);
  if (deny !== undefined) out.deny = parseCidrs(DENYLIST_SOURCE_RANGE, deny);
  return out;
}

/** An IPv4 or IPv6 address as 4 or 16 bytes, or null. */
function ipBytes(ip: string): number[] | null {
  const family = isIP(ip);
  if (family === 4) return ip.split('.').map(Number);
  if (family !== 6 || ip.includes('%')) return null;
  let text = ip;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const words =
    rest === undefined ? h : [...h, ...new Array<number>(Math.max(0, 8 - h.length - r.length)).fill(0), ...r];
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes.length === 16 && bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255) ? bytes : null;
}

/** "10.0.0.7/24" -> "10.0.0.0/24": nginx warns about (and ignores) host bits. A bare address is /32 or /128. */
export function parseCidr(name: string, item: string): string {
  const [ip = '', prefix, extra] = item.split('/');
  const bytes = ipBytes(ip);
  if (!bytes || extra !== undefined) throw fail(name, item, 'is not an IP address or CIDR range');
  const bits = bytes.length * 8;
  const len = prefix === undefined ? bits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (!(len >= 0 && len <= bits)) throw fail(name, item, `has a prefix length outside 0-${bits}`);
  const masked = bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  if (bytes.length === 4) return `${masked.join('.')}/${len}`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((masked[i]! << 8) | masked[i + 1]!).toString(16));
  return `${words.join(':')}/${len}`;
}

function parseCidrs(name: string, value: string): string[] {
  return [...new Set(items(name, value).map((i) => parseCidr(name, i)))];
}

export function accessSettings(a: AccessAnnotations): AccessSettings {
  return { deny: a.deny, allow: a.allow };
}

export function accessView(s: AccessSettings) {
  return { deny: s.deny, allow: s.allow, denyOthers: s.allow.length > 0 };
}
