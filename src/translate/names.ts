// Names derived from the model: the files nginx includes, and the server_names hash sizes.

import { createHash } from 'node:crypto';
import type { RoutingModel } from '../model.ts';

export const FILE_PREFIX = 'ingress-sidecar';
// nginx includes conf.d/*.conf in name order, and a log_format must precede its use: the file
// with the http-level definitions (and the default server) sorts first.
export const MAIN_FILE = `${FILE_PREFIX}-00-main.conf`;
export const UPSTREAMS_FILE = `${FILE_PREFIX}-upstreams.conf`;

/**
 * A host's file name: readable, and within the 255 bytes a file name may have (a valid host has
 * up to 253 characters): long names keep their start and gain a digest of the whole.
 */
export function serverFile(host: string): string {
  const name = host.replace('*', '_wildcard_');
  const short =
    name.length <= 200 ? name : `${name.slice(0, 180)}-${createHash('sha256').update(host).digest('hex').slice(0, 16)}`;
  return `${FILE_PREFIX}-server-${short}.conf`;
}

/**
 * nginx refuses to start when a server name does not fit a hash bucket, and builds a slow hash
 * when the table is too small; size both from the names actually served.
 */
export function serverNamesHashSizes(names: string[]): RoutingModel['serverNamesHash'] {
  const longest = names.reduce((m, n) => Math.max(m, n.length), 0);
  // One element is a pointer plus the name and 2 bytes, pointer-aligned; a bucket also ends in a pointer.
  const need = Math.ceil((longest + 2) / 8) * 8 + 16;
  return { bucketSize: Math.max(64, nextPow2(need)), maxSize: Math.max(1024, nextPow2(names.length) * 8) };
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
