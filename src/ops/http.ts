// The operator's HTTP endpoint: liveness, readiness, Prometheus metrics, and the live routing
// table, so that a user can see why a request went where it went.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';
import { locationLabel, type RoutingModel } from '../model.ts';

export interface StatusSource {
  /** Alive: the sources are watching. */
  healthy(): boolean;
  /** Ready: the first sync is live in nginx. */
  ready(): boolean;
  /** The model nginx runs now, or null before the first sync. */
  model(): RoutingModel | null;
}

export interface Route {
  host: string;
  /** The nginx location: `= /foo` for exact matches, `/foo/` for a prefix, `~ ^/foo(?:/|$)` or `~* ^(?:/re.*)` for a regex. */
  location: string;
  pathType: string;
  path: string;
  ingress: string | null;
  service: string | null;
  upstream: string | null;
  endpoints: string[];
  /** `proxy`, or the status nginx answers itself: 503 (no backend) or 404 (nothing matched). */
  action: 'proxy' | 503 | 404;
  reason?: string;
  /** The server also answers HTTPS (the default server: with the default certificate). */
  tls: boolean;
}

/** The live routing table, server by server, in nginx's own order of precedence. */
export function routesOf(model: RoutingModel): Route[] {
  const endpoints = new Map(model.upstreams.map((u) => [u.name, u.servers.map((s) => s.address)]));
  return [model.defaultServer, ...model.servers].flatMap((s) =>
    s.locations.map((l): Route => {
      const a = l.action;
      return {
        host: s.host ?? '*',
        location: locationLabel(l),
        pathType: l.route.pathType,
        path: l.route.path,
        ingress: l.ingress || null,
        service: l.service || null,
        upstream: a.kind === 'proxy' ? a.upstream : null,
        endpoints: a.kind === 'proxy' ? (endpoints.get(a.upstream) ?? []) : [],
        action: a.kind === 'proxy' ? 'proxy' : a.kind === 'unavailable' ? 503 : 404,
        ...(a.kind === 'unavailable' ? { reason: a.reason } : {}),
        tls: s.tls !== null,
      };
    }),
  );
}

export interface StatusServer {
  /** The address actually bound (port 0 picks a free one). */
  port: number;
  close(): Promise<void>;
}

/** `listen` is HOST:PORT (`[::]:10254` for IPv6). */
export async function startStatusServer(listen: string, source: StatusSource, metrics: Metrics): Promise<StatusServer> {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m?.[1] || m[2] === undefined) throw new Error(`--listen must be HOST:PORT, not ${JSON.stringify(listen)}`);
  const host = m[1].replace(/^\[(.*)\]$/, '$1');
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    switch (url) {
      case '/healthz':
        return source.healthy() ? send(200, 'ok\n') : send(503, 'sources are not watching\n');
      case '/readyz':
        return source.ready() ? send(200, 'ok\n') : send(503, 'the first sync is not live in nginx yet\n');
      case '/metrics':
        metrics.registry.metrics().then(
          (text) => send(200, text, metrics.registry.contentType),
          (err: unknown) => send(500, `${String(err)}\n`),
        );
        return;
      case '/routes': {
        const model = source.model();
        return model
          ? send(200, JSON.stringify(routesOf(model), null, 2) + '\n', 'application/json')
          : send(503, 'no sync yet\n');
      }
      default:
        return send(404, 'not found: try /healthz, /readyz, /metrics or /routes\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
