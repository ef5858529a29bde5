// nginx versions, for syntax that changed between them (HTTP/2: `http2 on;` from 1.25.1,
// `listen ... http2` before). Pure: translate decides syntax with these; asking the binary for
// its version is process.ts's (nginxVersion).

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
