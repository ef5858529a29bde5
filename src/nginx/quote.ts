// nginx's own quoting: how a value becomes exactly one token of nginx.conf. Every interpolated
// value passes through nginxValue (render's mustache escape), whatever grammar it passed first.

import { CONF_BUFFER } from './tokenizer.ts';

/**
 * nginx refuses a token of 4096 bytes or more ("too long parameter": ngx_conf_read_token's buffer
 * is NGX_CONF_BUFFER, 4096 bytes, and a token must fit in it), wherever it is in the config.
 */
export const MAX_TOKEN_BYTES = CONF_BUFFER - 1;

/** Whether `value`, quoted as render quotes it, is a token nginx accepts by length. */
export function tokenFits(value: string): boolean {
  return Buffer.byteLength(nginxValue(value)) <= MAX_TOKEN_BYTES;
}

// Characters that nginx's tokenizer treats as ordinary inside an unquoted word.
const BARE_WORD = /^[A-Za-z0-9._:/\-[\]]+$/;
// A `key=value` parameter (`zone=NAME:5m`, `burst=10`): starting with a letter, it can never be
// read as a location modifier ("=", "~", "^~").
const BARE_PARAMETER = /^[A-Za-z][A-Za-z0-9_]*=[A-Za-z0-9._:/-]+$/;

/**
 * Every interpolated value passes through here (it replaces mustache's HTML escaping). The result
 * is always exactly one nginx token: plain when that is unambiguous, else double-quoted with `\`
 * and `"` escaped as ngx_conf_read_token unescapes them. Control characters never reach config.
 */
export function nginxValue(value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`refusing to render non-finite number ${value}`);
    return String(value);
  }
  if (typeof value !== 'string') throw new Error(`refusing to render a ${typeof value} into nginx config`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new Error(`refusing to render control characters: ${JSON.stringify(value)}`);
  if (BARE_WORD.test(value) || BARE_PARAMETER.test(value)) return value;
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}
