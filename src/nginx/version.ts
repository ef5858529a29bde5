// nginx versions, for syntax that changed between them (HTTP/2: `http2 on;` from 1.25.1,
// `listen ... http2` before). Pure: translate decides syntax with these; asking the binary for
// its version is process.ts's (nginxVersion) and serving-version.ts's (servingNginxVersion).

/** `major.minor.patch` of an nginx version string ("1.27.4", "nginx/1.22.1"), or null. */
export function parseNginxVersion(text: string): [number, number, number] | null {
  const m = /(?:^|\/)(\d{1,4})\.(\d{1,4})\.(\d{1,4})(?![\d.])/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** Whether nginx `version` is at least `min` (both `major.minor.patch`). */
export function versionAtLeast(version: [number, number, number], min: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (version[i] !== min[i]) return version[i]! > min[i]!;
  return true;
}

/**
 * The version in nginx's banner, "nginx version: nginx/1.30.4" (what `nginx -v` prints, and a
 * string constant in every nginx binary), as `major.minor.patch`, or null when `text` holds none.
 */
export function versionInBanner(text: string): string | null {
  const m = BANNER.exec(text);
  const parsed = m?.[1] ? parseNginxVersion(m[1]) : null;
  return parsed ? parsed.join('.') : null;
}

/** The literal start of the banner, for scanning binaries (serving-version.ts). */
export const BANNER_PREFIX = 'nginx version: ';
const BANNER = /nginx version: [A-Za-z]+\/([0-9][0-9.]*)/;

export type NginxVersion = [number, number, number];

/** `http2 on;` (before: `listen ... http2`). */
export const HTTP2_DIRECTIVE_SINCE: NginxVersion = [1, 25, 1];
/** `server NAME resolve` in upstreams with a zone: names re-resolved while nginx runs, no reload. */
export const UPSTREAM_RESOLVE_SINCE: NginxVersion = [1, 27, 3];

/** What rendering for an older nginx gives up, newest last (for warnings that say what is off). */
export const VERSIONED_FEATURES: ReadonlyArray<{ since: NginxVersion; what: string }> = [
  { since: HTTP2_DIRECTIVE_SINCE, what: '`http2 on;`' },
  { since: UPSTREAM_RESOLVE_SINCE, what: 'reload-free endpoints' },
];
