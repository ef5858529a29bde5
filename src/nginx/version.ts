// The version of the nginx that will load the config, for syntax that changed between versions
// (HTTP/2: `http2 on;` from 1.25.1, `listen ... http2` before).
import { execa } from 'execa';
import { parseNginxVersion } from '../grammar.ts';

/** `major.minor.patch` from `nginx -v` (it prints "nginx version: nginx/1.27.4" on stderr), or null. */
export async function nginxVersion(binary: string): Promise<string | null> {
  const result = await execa(binary, ['-v'], { reject: false, stdin: 'ignore', timeout: 10_000, all: true });
  const m = /nginx version: [A-Za-z]+\/(\S+)/.exec(result.all ?? '');
  const parsed = m?.[1] ? parseNginxVersion(m[1]) : null;
  return parsed ? parsed.join('.') : null;
}
