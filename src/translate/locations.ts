// Location precedence: one server's locations from its claims, so that nginx picks what Ingress
// semantics say (exact host, then longest path, then Exact over Prefix; use-regex paths ordered
// among them as ingress-nginx orders them).

import { defaultCookiePath, regexLiteral } from '../annotations/index.ts';
import type { LocationContext, SettingsResult } from '../annotations/settings.ts';
import { serverNameFor } from '../grammar.ts';
import { nginxValue } from '../nginx/quote.ts';
import type { Action, Location, Server, ServerTls } from '../model.ts';
import type { Claim, HostRoutes } from './hosts.ts';
import { MAIN_FILE, serverFile } from './names.ts';
import { claimKeyOf } from './parse.ts';

/** A location's settings from its Ingress. */
export type SettingsFor = (ingress: string, ctx: LocationContext) => SettingsResult;

/** The longest rendered location argument: nginx refuses tokens of 4096 bytes or more (quoting can double backslashes). */
const MAX_PATTERN_BYTES = 3000;

/**
 * The rewrite-target regex of a location with a literal (Exact or Prefix) path: it has no capture
 * groups, so any pattern that matches does; the path itself reads best, `^` when that is too long.
 */
function literalRewrite(literal: string): string {
  const pattern = `^${regexLiteral(literal)}`;
  return Buffer.byteLength(nginxValue(pattern)) <= MAX_PATTERN_BYTES ? pattern : '^';
}

export function buildServer(
  h: HostRoutes,
  /** --default-backend-service: answers the unmatched paths when the host (or catch-all) has no defaultBackend. */
  serviceDefault: HostRoutes['fallback'],
  redirect: (ingress: string, locationPath: string) => boolean,
  tls: ServerTls | null,
  settingsFor: SettingsFor,
): Server {
  const locations: Location[] = [];
  /** How long a location's path counts in precedence (for a converted Prefix: its literal path). */
  const weight = new Map<Location, number>();
  /** A Prefix path rendered as a regex (see below): the literal path, for pinning. */
  const converted = new Map<Location, string>();
  const exactTaken = new Set([...h.claims.values()].filter((c) => c.path.match === 'exact').map((c) => c.path.path));
  // A host with use-regex paths: nginx tries regex locations in file order before any prefix
  // location except "/". To keep "longest path first" across both kinds (as ingress-nginx orders
  // them), the host's other Prefix paths become anchored, case-sensitive regexes with exactly the
  // Prefix semantics, and all regexes are ordered by path length. Exact paths stay exact (they
  // win outright) and "/" stays a prefix (it is tried last).
  const regexHost = [...h.claims.values()].some((c) => c.path.match === 'regex');
  const located = (l: Omit<Location, 'settings' | 'action'> & { action: Action }, ctx: LocationContext, w: number) => {
    const s = settingsFor(l.ingress, ctx);
    const loc: Location = {
      ...l,
      action: s.unavailable && l.action.kind === 'proxy' ? { kind: 'unavailable', reason: s.unavailable } : l.action,
      settings: s.settings,
    };
    locations.push(loc);
    weight.set(loc, w);
    return loc;
  };
  const push = (
    match: Location['match'],
    path: string,
    c: Claim,
    opts: { ignoreCase?: boolean; weight?: number } = {},
  ) =>
    located(
      {
        match,
        path,
        ignoreCase: opts.ignoreCase ?? false,
        route: { pathType: c.path.pathType, path: c.path.rawPath },
        ingress: c.ingress,
        service: c.resolved.service,
        ...(c.canary !== undefined ? { canary: { ingress: c.canary, service: c.canaryService ?? '' } } : {}),
        action: c.resolved.action,
        sslRedirect: redirect(c.ingress, c.path.match === 'regex' ? '' : c.path.path),
      },
      {
        rewriteRegex: c.path.match === 'regex' ? `(?i)^(?:${c.path.path})` : literalRewrite(c.path.path),
        cookiePath: defaultCookiePath(c.path),
      },
      opts.weight ?? path.length,
    );
  for (const c of h.claims.values()) {
    const p = c.path.path;
    if (c.path.match === 'regex') {
      push('regex', `^(?:${p})`, c, { ignoreCase: true, weight: p.length });
      continue;
    }
    if (c.path.match === 'exact' || p === '/') {
      push(c.path.match, p, c);
      continue;
    }
    // Prefix "/foo" beside Prefix "/foo/": the request for /foo goes to "/foo", everything below
    // to "/foo/" (ingress-nginx's locations "= /foo" and "/foo/"), so neither route is lost.
    const sibling = h.claims.get(claimKeyOf({ match: 'prefix', path: p, slash: !c.path.slash }));
    if (sibling && !c.path.slash) {
      if (!exactTaken.has(p)) push('exact', p, c);
      continue;
    }
    if (regexHost) {
      const pattern = `^${regexLiteral(p)}(?:/|$)`;
      if (Buffer.byteLength(nginxValue(pattern)) <= MAX_PATTERN_BYTES) {
        converted.set(push('regex', pattern, c, { weight: p.length }), p);
        continue;
      }
      // Too long to render as a pattern: it keeps nginx's prefix semantics (a regex may win over it).
    }
    // Prefix /foo matches /foo and /foo/..., never /foobar: an exact location for the path
    // itself (unless an Exact rule owns it: Exact wins) and a prefix location for its subtree.
    if (!exactTaken.has(p) && !sibling) push('exact', p, c);
    push('prefix', `${p}/`, c);
  }
  if (!locations.some((l) => l.match === 'prefix' && l.path === '/')) {
    // Without a "location /", nginx would serve files from its html root for unmatched paths.
    const fb = h.fallback ?? serviceDefault;
    located(
      {
        match: 'prefix',
        path: '/',
        ignoreCase: false,
        route: { pathType: 'Default', path: '/' },
        ingress: fb?.ingress ?? '',
        service: fb?.resolved.service ?? '',
        action: fb ? fb.resolved.action : { kind: 'notFound' },
        sslRedirect: redirect(fb?.ingress ?? '', '/'),
      },
      { rewriteRegex: '^/', cookiePath: '/' },
      1,
    );
  }
  // nginx answers /foo with a 301 to /foo/ when a proxied location is named "/foo/" and none is
  // named "/foo" (before it even tries regexes). Ingress says an Exact /foo/ does not match /foo
  // at all: pin /foo to whatever it would match without that redirect (the longest Prefix
  // covering it; regex paths are not considered).
  // Indexed by path (not a scan of every location per path: 20,000 paths took a minute): each
  // map holds the first location of that path, so ties go to the earlier one, as a scan in order.
  const exactPaths = new Set<string>();
  const prefixAt = new Map<string, number>();
  const convertedAt = new Map<string, number>();
  locations.forEach((o, i) => {
    const literal = converted.get(o);
    if (literal !== undefined) {
      if (!convertedAt.has(literal)) convertedAt.set(literal, i);
    } else if (o.match === 'exact') exactPaths.add(o.path);
    else if (o.match === 'prefix' && !prefixAt.has(o.path)) prefixAt.set(o.path, i);
  });
  const count = locations.length;
  for (let i = 0; i < count; i++) {
    const l = locations[i]!;
    if (l.match !== 'exact' || !l.path.endsWith('/') || l.path === '/') continue;
    const bare = l.path.slice(0, -1);
    if (exactPaths.has(bare)) continue;
    // The location covering `bare` with the longest path: a prefix location (its path, which
    // always ends in "/", starts `bare`) or a converted Prefix (`bare` is its literal or below it).
    let best = 0;
    let bestValue = -1;
    const consider = (at: number | undefined, value: number) => {
      if (at !== undefined && (value > bestValue || (value === bestValue && at < best)))
        [best, bestValue] = [at, value];
    };
    for (let k = bare.indexOf('/'); k !== -1; k = bare.indexOf('/', k + 1)) {
      consider(prefixAt.get(bare.slice(0, k + 1)), k + 1);
      if (k > 0) consider(convertedAt.get(bare.slice(0, k)), k + 1);
    }
    consider(convertedAt.get(bare), bare.length + 1);
    const covering = locations[best]!;
    const pinned: Location = {
      ...covering,
      match: 'exact',
      path: bare,
      ignoreCase: false,
      sslRedirect: redirect(covering.ingress, bare),
    };
    locations.push(pinned);
    exactPaths.add(bare);
    weight.set(pinned, bare.length);
  }
  // Longest path first, then exact, Prefix-as-regex, prefix, use-regex: nginx only cares about the
  // order of regex locations among themselves; the rest is for people reading the file.
  const rank = (l: Location) => (l.match === 'exact' ? 0 : l.match === 'prefix' ? 2 : l.ignoreCase ? 3 : 1);
  // The keys are computed once per location, not per comparison (Map lookups in a comparator).
  const keyed = locations.map((l) => ({ l, w: weight.get(l) ?? l.path.length, r: rank(l) }));
  keyed.sort((a, b) => {
    if (a.w !== b.w) return b.w - a.w;
    if (a.r !== b.r) return a.r - b.r;
    return a.l.path < b.l.path ? -1 : a.l.path > b.l.path ? 1 : 0;
  });
  keyed.forEach((k, i) => (locations[i] = k.l));
  const host = h.host?.host ?? null;
  return {
    host,
    serverName: h.host ? serverNameFor(h.host) : '_',
    file: host === null ? MAIN_FILE : serverFile(host),
    locations,
    ingresses: [...h.ingresses].sort(),
    tls,
    mirrors: [],
    errorLocations: [],
    snippets: [],
  };
}
