// `node src/dev/echo-main.ts NAME [PORT] [HOST]`: one echo backend (src/dev/echo.ts) as a process, so a
// test can run it where it cannot run a function, e.g. inside a network namespace
// (`ip netns exec NS node src/dev/echo-main.ts blue 8080`). Listens on HOST (default 0.0.0.0),
// prints one JSON line `{"listening":{"host":...,"port":...}}` once it accepts connections, and
// exits 0 on SIGTERM or SIGINT.
import { startEcho } from './echo.ts';

const [name, portArg = '0', host = '0.0.0.0'] = process.argv.slice(2);
if (name === undefined || name === '' || !/^\d{1,5}$/.test(portArg) || Number(portArg) > 65535) {
  process.stderr.write('usage: node src/dev/echo-main.ts NAME [PORT] [HOST]\n');
  process.exit(2);
}

const echo = await startEcho(name, { host, port: Number(portArg) });
process.stdout.write(JSON.stringify({ listening: { host: echo.host, port: echo.port } }) + '\n');

const stop = (): void => {
  void echo.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
