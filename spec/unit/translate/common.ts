import type { Location, RoutingModel, Server } from '../../../src/model.ts';
import type { Snapshot } from '../../../src/sources/snapshot.ts';
import { translate } from '../../../src/translate/index.ts';

export const OPTS = { ingressClass: 'nginx', httpPort: 80, ipv6: false };

export function model(snap: Snapshot): RoutingModel {
  return translate(snap, OPTS);
}

export function server(m: RoutingModel, host: string | null): Server {
  const s = host === null ? m.defaultServer : m.servers.find((x) => x.host === host);
  if (!s) throw new Error(`no server for ${host}; have ${m.servers.map((x) => x.host).join(', ')}`);
  return s;
}

/** `= /foo -> default_svc_80` style lines, in the server's order. */
export function routes(s: Server): string[] {
  return s.locations.map((l: Location) => `${l.match === 'exact' ? '= ' : ''}${l.path} -> ${describe(l)}`);
}

function describe(l: Location): string {
  switch (l.action.kind) {
    case 'proxy':
      return l.action.upstream;
    case 'unavailable':
      return `503 (${l.action.reason})`;
    case 'notFound':
      return '404';
  }
}
