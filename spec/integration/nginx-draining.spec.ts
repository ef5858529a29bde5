// drainingGenerations() on a real nginx: upgraded connections (WebSocket-style, through to the echo
// backend) keep an old worker generation alive after a reload, as they do in production when no
// worker_shutdown_timeout is set; closing them lets the generation go.
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { drainingGenerations, masterDrainingGenerations } from '../../src/nginx/draining.ts';
import { reloadAndVerify } from '../../src/nginx/process.ts';
import { freePort, startNginx, type RunningNginx } from '../helpers/nginx.ts';

describe('drainingGenerations (real nginx)', function () {
  this.timeout(60_000);
  let echo: EchoServer;
  let nginx: RunningNginx;
  let port: number;
  const sockets: net.Socket[] = [];

  before(async () => {
    echo = await startEcho('ws');
    port = await freePort();
    nginx = await startNginx({
      workerProcesses: 2,
      http: `server {
    listen 127.0.0.1:${port};
    location / {
        proxy_pass http://127.0.0.1:${echo.port};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
}`,
    });
    // A reload within 50 ms of the start would merge with the first generation (see draining.ts).
    await sleep(100);
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await nginx?.stop();
    await echo?.close();
  });

  /** Opens `n` upgraded connections through nginx: the workers that accepted them cannot finish draining. */
  async function pin(n: number): Promise<net.Socket[]> {
    const opened: net.Socket[] = [];
    for (let i = 0; i < n; i++) {
      const sock = net.connect(port, '127.0.0.1');
      sockets.push(sock);
      opened.push(sock);
      sock.write('GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      assert.match(await firstLine(sock), /^HTTP\/1\.1 101 /);
    }
    return opened;
  }

  /** Polls (bounded) until the count is `want`; returns the last count seen. */
  async function eventually(want: number): Promise<number> {
    let seen = -1;
    for (let i = 0; i < 200 && seen !== want; i++) {
      seen = await drainingGenerations(nginx.master);
      if (seen !== want) await sleep(25);
    }
    return seen;
  }

  it('counts one generation per reload while connections hold them, and none once they close', async () => {
    assert.equal(await drainingGenerations(nginx.master), 0, 'a fresh nginx has nothing draining');
    const first = await pin(4);
    assert.equal((await reloadAndVerify(nginx.master, 10_000)).ok, true);
    // Two workers in that generation (one or both pinned): one generation.
    assert.equal(await eventually(1), 1);
    const second = await pin(4);
    assert.equal((await reloadAndVerify(nginx.master, 10_000)).ok, true);
    assert.equal(await eventually(2), 2);
    assert.equal(await masterDrainingGenerations({ pidFile: nginx.pidFile }), 2);
    for (const s of first) s.destroy();
    assert.equal(await eventually(1), 1, 'the first generation left once its connections closed');
    for (const s of second) s.destroy();
    assert.equal(await eventually(0), 0);
  });
});

function firstLine(sock: net.Socket, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms: ${text}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      clearTimeout(timer);
      sock.off('data', onData);
      resolve(text.split('\r\n')[0]!);
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
}
