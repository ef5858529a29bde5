// What changed between two routing models, in the words an operator reads in a reload log line.
import { locationLabel, type Location, type RoutingModel, type Server } from '../model.ts';
import { runSteps, runStepsSync } from '../steps.ts';

export interface ModelChange {
  serversAdded: string[];
  serversRemoved: string[];
  /** `host location -> target`, e.g. `shop.test /api/ -> default_api_80` or `* / -> 404`. */
  locationsAdded: string[];
  locationsRemoved: string[];
  /** Upstreams added, removed, or with other endpoints. */
  upstreamsChanged: string[];
  /**
   * Servers whose TLS changed (on, off, another certificate): `host: Secret ns/name <file>`, or
   * `host: default certificate <file>`, or `host: no TLS`. `*` is the default server.
   */
  tlsChanged: string[];
}

const LIMIT = 20;

export function diffModels(prev: RoutingModel | null, next: RoutingModel): ModelChange {
  return runStepsSync(diffSteps(prev, next));
}

/** diffModels() that gives the event loop a turn every `budgetMs` (between servers); the same result. */
export function diffModelsAsync(
  prev: RoutingModel | null,
  next: RoutingModel,
  budgetMs?: number,
): Promise<ModelChange> {
  return runSteps(diffSteps(prev, next), budgetMs);
}

function* locationsOf(m: RoutingModel | null): Generator<void, Set<string>, void> {
  const out = new Set<string>();
  for (const s of m ? [m.defaultServer, ...m.servers] : []) {
    yield;
    for (const d of describeLocations(s)) out.add(d);
  }
  return out;
}

function* diffSteps(prev: RoutingModel | null, next: RoutingModel): Generator<void, ModelChange, void> {
  const servers = (m: RoutingModel | null) => new Set(m ? m.servers.map((s) => s.host ?? '*') : []);
  const upstreams = (m: RoutingModel | null) =>
    new Map(m ? m.upstreams.map((u) => [u.name, u.servers.map((s) => s.address).join(',')]) : []);
  const [ps, ns] = [servers(prev), servers(next)];
  const pl = yield* locationsOf(prev);
  const nl = yield* locationsOf(next);
  yield;
  const [pu, nu] = [upstreams(prev), upstreams(next)];
  const changedUpstreams = [...new Set([...pu.keys(), ...nu.keys()])].filter((k) => pu.get(k) !== nu.get(k));
  const tls = (m: RoutingModel | null) =>
    new Map(m ? [m.defaultServer, ...m.servers].map((s) => [s.host ?? '*', describeTls(s)]) : []);
  const [pt, nt] = [tls(prev), tls(next)];
  const changedTls = [...nt]
    .filter(([h, d]) => pt.get(h) !== d && !(pt.get(h) === undefined && d.endsWith(': no TLS')))
    .map(([, d]) => d);
  yield;
  const locationsAdded = capped([...nl].filter((l) => !pl.has(l)));
  yield;
  return {
    serversAdded: capped([...ns].filter((h) => !ps.has(h))),
    serversRemoved: capped([...ps].filter((h) => !ns.has(h))),
    locationsAdded,
    locationsRemoved: capped([...pl].filter((l) => !nl.has(l))),
    upstreamsChanged: capped(changedUpstreams.sort()),
    tlsChanged: capped(changedTls.sort()),
  };
}

function describeLocations(s: Server): string[] {
  return s.locations.map((l) => `${s.host ?? '*'} ${locationLabel(l)} -> ${target(l)}`);
}

function describeTls(s: Server): string {
  const host = s.host ?? '*';
  if (!s.tls) return `${host}: no TLS`;
  // The file name is a digest of the content: a rotated certificate shows as another name.
  const file = s.tls.certPath.slice(s.tls.certPath.lastIndexOf('/') + 1, -'.pem'.length).slice(0, 12);
  return `${host}: ${s.tls.secret ? `Secret ${s.tls.secret}` : 'generated default certificate'} ${file}`;
}

function target(l: Location): string {
  return l.action.kind === 'proxy' ? l.action.upstream : l.action.kind === 'unavailable' ? '503' : '404';
}

/** Long lists stay readable in a log line: the first few, then how many more. */
function capped(items: string[]): string[] {
  return items.length <= LIMIT ? items : [...items.slice(0, LIMIT), `...and ${items.length - LIMIT} more`];
}
