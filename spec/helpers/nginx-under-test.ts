// The nginx a test run is about. scripts/test.sh (npm test) runs the integration tier once per
// nginx version, telling each run its binary in INGRESS_SIDECAR_TEST_NGINX; mocha loads this
// module before any spec (.mocharc.json `require`), and it puts that binary's directory first on
// PATH, so that every nginx a test starts or checks with is that one: nginxBinary(),
// findExecutable('nginx', PATH) and the sidecars the tests spawn all look there. nginxBuilds()
// then gives that build alone, since the other runs cover the others. Unset (or empty): PATH's
// nginx, and nginxBuilds() gives every build.
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

export const TEST_NGINX_VARIABLE = 'INGRESS_SIDECAR_TEST_NGINX';

/** The binary of INGRESS_SIDECAR_TEST_NGINX, absolute, or null when the run is not about one nginx. */
export function nginxUnderTest(): string | null {
  const raw = process.env[TEST_NGINX_VARIABLE];
  return raw ? path.resolve(raw) : null;
}

const binary = nginxUnderTest();
if (binary !== null) {
  // PATH finds a binary by its name only: one called anything else could not be put first.
  if (path.basename(binary) !== 'nginx')
    throw new Error(`${TEST_NGINX_VARIABLE}=${binary}: the binary must be named nginx`);
  try {
    accessSync(binary, constants.X_OK);
    if (!statSync(binary).isFile()) throw new Error('not a file');
  } catch (err) {
    throw new Error(`${TEST_NGINX_VARIABLE}=${binary} is not an executable file: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const dir = path.dirname(binary);
  const rest = (process.env.PATH ?? '').split(':').filter((d) => d !== '' && path.resolve(d) !== dir);
  process.env.PATH = [dir, ...rest].join(':');
}
