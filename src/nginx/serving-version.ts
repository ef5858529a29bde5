// The version of the nginx that serves: the data-plane container's master, which may be older or
// newer than the binary in our image that runs `nginx -t` (--nginx-binary). Features are chosen by
// the files both must accept, so the sidecar renders for the older of the two.
import { createReadStream } from 'node:fs';
import {
  BANNER_PREFIX,
  parseNginxVersion,
  versionAtLeast,
  versionInBanner,
  VERSIONED_FEATURES,
  type NginxVersion,
} from './version.ts';

/**
 * Past this many bytes a binary is not nginx (nginx's banner sits about 1 MB in, in builds with
 * every module and debug symbols; node's own binary is 120 MB).
 */
const MAX_SCAN_BYTES = 32 * 1024 * 1024;
/** Bytes after the banner's prefix that hold the rest of it ("nginx/1.30.4"). */
const BANNER_TAIL = 48;

/**
 * The version of the nginx master `masterPid`, read from its executable without running it:
 * `/proc/PID/exe` opened as a file is the binary the process runs (even once replaced or deleted
 * on disk, as after an image upgrade), readable for a process of our UID in a shared PID
 * namespace, and every nginx binary holds its banner, "nginx version: nginx/1.30.4", as a string
 * constant. Streamed, stopping at the banner. Null when the binary cannot be read (EACCES: another
 * UID; ENOENT: the process is gone) or holds no banner (not nginx).
 */
export async function servingNginxVersion(masterPid: number, procDir = '/proc'): Promise<string | null> {
  if (!Number.isInteger(masterPid) || masterPid <= 0) return null;
  const prefix = Buffer.from(BANNER_PREFIX, 'latin1');
  const stream = createReadStream(`${procDir}/${masterPid}/exe`, { end: MAX_SCAN_BYTES - 1, highWaterMark: 1 << 20 });
  // What is kept of the previous chunks: enough for a prefix split between two, or, once the
  // prefix is found, the banner so far.
  let window: Buffer = Buffer.alloc(0);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      window = window.length > 0 ? Buffer.concat([window, chunk]) : chunk;
      const at = window.indexOf(prefix);
      if (at === -1) {
        window = window.subarray(Math.max(0, window.length - prefix.length + 1));
      } else if (window.length - at >= prefix.length + BANNER_TAIL) {
        return versionInBanner(window.subarray(at, at + prefix.length + BANNER_TAIL).toString('latin1'));
      } else {
        window = window.subarray(at);
      }
    }
    // The file ended (or the scan limit came) with no banner, or with one cut short.
    return window.indexOf(prefix) === 0 ? versionInBanner(window.toString('latin1')) : null;
  } catch {
    // EACCES, ENOENT, ESRCH, EIO: not readable, which is what null means.
    return null;
  } finally {
    stream.destroy();
  }
}

export interface EffectiveNginx {
  /** The version to render for (translate's nginxVersion); null: unknown, the oldest syntax. */
  version: string | null;
  /** What an operator should know about the choice, one sentence each. */
  warnings: string[];
}

/**
 * The nginx version to render for, from the checking binary's (`nginx -v` of --nginx-binary), the
 * serving master's (servingNginxVersion) and --nginx-version's. The flag stands for the serving
 * nginx and wins over detection. When the two nginx differ the files are rendered for the older:
 * the checking one must accept them and the serving one must load them. Pure.
 */
export function effectiveNginx(opts: {
  checking: string | null;
  serving: string | null;
  flag: string | null;
}): EffectiveNginx {
  const warnings: string[] = [];
  const checking = parsed(opts.checking);
  const detected = parsed(opts.serving);
  const flag = parsed(opts.flag);
  if (flag && detected && !same(flag, detected)) {
    warnings.push(
      `--nginx-version says the serving nginx is ${show(flag)}, but its binary says ${show(detected)}: ` +
        `using ${show(flag)}, as the flag says`,
    );
  }
  const serving = flag ?? detected;
  const servingName = flag
    ? `the serving nginx (--nginx-version) is ${show(flag)}`
    : `the serving nginx is ${show(serving)}`;

  if (!serving && !checking) {
    warnings.push(
      'the versions of the serving nginx and of nginx -t are both unknown: rendering for the oldest nginx supported, ' +
        `without ${needsNewer(null, null)}; set --nginx-version to the serving nginx's version`,
    );
    return { version: null, warnings };
  }
  if (!serving) {
    warnings.push(
      `the serving nginx's version is unknown (no master found yet, or its binary is not readable by this user): ` +
        `assuming it is nginx -t's, ${show(checking)}; set --nginx-version if it differs`,
    );
    return { version: show(checking), warnings };
  }
  // No nginx -t (no --nginx-binary): the serving nginx alone decides.
  if (!checking || same(checking, serving)) return { version: show(serving), warnings };

  const older = versionAtLeast(checking, serving) ? serving : checking;
  const newer = older === serving ? checking : serving;
  const off = needsNewer(older, newer);
  warnings.push(
    `nginx -t (--nginx-binary) is nginx ${show(checking)} but ${servingName}: rendering for ${show(older)}, ` +
      `which both accept${off ? `, without what needs a newer nginx: ${off}` : ''}`,
  );
  return { version: show(older), warnings };
}

function parsed(text: string | null): NginxVersion | null {
  return text === null ? null : parseNginxVersion(text);
}

function same(a: NginxVersion, b: NginxVersion): boolean {
  return a.every((n, i) => n === b[i]);
}

function show(v: NginxVersion | null): string {
  return v ? v.join('.') : 'unknown';
}

/** "X (1.25.1+), Y (1.27.3+)": what `newer` has and `older` lacks (null: every feature), or "". */
function needsNewer(older: NginxVersion | null, newer: NginxVersion | null): string {
  return VERSIONED_FEATURES.filter(
    (f) => (older === null || !versionAtLeast(older, f.since)) && (newer === null || versionAtLeast(newer, f.since)),
  )
    .map((f) => `${f.what} (${show(f.since)}+)`)
    .join(', ');
}
