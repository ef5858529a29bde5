// A tiny HTTP backend that says who it is and what it received. The demo serves it behind the
// example Ingresses, and the tests use it as a real upstream. WebSocket-style upgrades are
// accepted and echoed byte for byte, so an upgrade through nginx can be checked end to end.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoReply {
  service: string;
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

export interface EchoServer {
  port: number;
  host: string;
  close(): Promise<void>;
}

export async function startEcho(service: string, opts: { host?: string; port?: number } = {}): Promise<EchoServer> {
  const host = opts.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const reply: EchoReply = { service, method: req.method ?? '', url: req.url ?? '', headers: req.headers };
      const body = JSON.stringify(reply) + '\n';
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-echo-service': service,
      });
      res.end(body);
    });
  });
  const upgraded = new Set<import('node:stream').Duplex>();
  server.on('upgrade', (req, socket) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade ?? 'websocket'}\r\nConnection: Upgrade\r\nX-Echo-Service: ${service}\r\n\r\n`,
    );
    socket.pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        for (const s of upgraded) s.destroy();
        server.close(() => resolve());
      }),
  };
}
