// limit-rps, limit-rpm, limit-burst-multiplier, limit-connections: limit_req and limit_conn per
// Ingress, with their zones at http level (names derived from a digest of the Ingress).

import { annotation, parseInteger, type GroupInput } from './values.ts';

export const LIMIT_RPS = annotation('limit-rps');
export const LIMIT_RPM = annotation('limit-rpm');
export const LIMIT_BURST_MULTIPLIER = annotation('limit-burst-multiplier');
export const LIMIT_CONNECTIONS = annotation('limit-connections');

export const RATE_LIMIT_ANNOTATIONS = [LIMIT_RPS, LIMIT_RPM, LIMIT_BURST_MULTIPLIER, LIMIT_CONNECTIONS];

/** As ingress-nginx documents it. */
export const DEFAULT_LIMIT_BURST_MULTIPLIER = 5;
/** Shared memory per zone, as ingress-nginx sizes them: about 80,000 client addresses. */
export const ZONE_SIZE = '5m';

export interface RateLimitAnnotations {
  limitRps: number | null;
  limitRpm: number | null;
  limitBurstMultiplier: number;
  limitConnections: number | null;
}

export const NO_RATE_LIMIT_ANNOTATIONS: Readonly<RateLimitAnnotations> = Object.freeze({
  limitRps: null,
  limitRpm: null,
  limitBurstMultiplier: DEFAULT_LIMIT_BURST_MULTIPLIER,
  limitConnections: null,
});

export function parseRateLimits({ r, noEffect }: GroupInput): RateLimitAnnotations {
  const rps = r.string(LIMIT_RPS);
  const rpm = r.string(LIMIT_RPM);
  const burst = r.string(LIMIT_BURST_MULTIPLIER);
  const conns = r.string(LIMIT_CONNECTIONS);
  // As in ingress-nginx, 0 means no limit. nginx refuses 65536 connections or more.
  const out: RateLimitAnnotations = {
    limitRps: rps === undefined ? null : parseInteger(LIMIT_RPS, rps, 0, 1_000_000) || null,
    limitRpm: rpm === undefined ? null : parseInteger(LIMIT_RPM, rpm, 0, 60_000_000) || null,
    limitBurstMultiplier:
      burst === undefined ? DEFAULT_LIMIT_BURST_MULTIPLIER : parseInteger(LIMIT_BURST_MULTIPLIER, burst, 1, 1000),
    limitConnections: conns === undefined ? null : parseInteger(LIMIT_CONNECTIONS, conns, 0, 65_535) || null,
  };
  if (out.limitRps === null && out.limitRpm === null)
    noEffect(LIMIT_BURST_MULTIPLIER, `neither ${LIMIT_RPS} nor ${LIMIT_RPM} is set`);
  return out;
}

export interface RateLimitSettings {
  /** limit_req per zone (rps, rpm); the zones are the model's `limitReqZones`. */
  limitReq: Array<{ zone: string; burst: number }>;
  /** limit_conn; the zone is one of the model's `limitConnZones`. */
  limitConn: { zone: string; connections: number } | null;
}

export const DEFAULT_RATE_LIMIT_SETTINGS: Readonly<RateLimitSettings> = Object.freeze({
  limitReq: [],
  limitConn: null,
});

/** The limit_req zones the locations' settings name, with their rates. */
export class RateLimitZones {
  private readonly rates = new Map<string, string>();

  /** The settings of an Ingress whose derived id is `id`. */
  settings(id: string, a: RateLimitAnnotations): RateLimitSettings {
    const limitReq: RateLimitSettings['limitReq'] = [];
    if (a.limitRps !== null) {
      const zone = `ingress_sidecar_rps_${id}`;
      this.rates.set(zone, `${a.limitRps}r/s`);
      limitReq.push({ zone, burst: a.limitRps * a.limitBurstMultiplier });
    }
    if (a.limitRpm !== null) {
      const zone = `ingress_sidecar_rpm_${id}`;
      this.rates.set(zone, `${a.limitRpm}r/m`);
      limitReq.push({ zone, burst: a.limitRpm * a.limitBurstMultiplier });
    }
    return {
      limitReq,
      limitConn:
        a.limitConnections !== null ? { zone: `ingress_sidecar_conn_${id}`, connections: a.limitConnections } : null,
    };
  }

  /** The rate of a zone that settings() named. */
  rate(zone: string): string {
    return this.rates.get(zone)!;
  }
}

/** `derived` checks a derived name before the template writes it. */
export function rateLimitView(s: RateLimitSettings, derived: (name: string) => string) {
  return {
    limitReq: s.limitReq.map((z) => ({ zone: `zone=${derived(z.zone)}`, burst: `burst=${z.burst}` })),
    limitConn: s.limitConn ? { zone: derived(s.limitConn.zone), connections: s.limitConn.connections } : null,
  };
}
