// Prometheus metrics through prom-client, on a registry of our own (not the global default), so
// that each sidecar (and each test) counts for itself.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type ReloadResult = 'success' | 'failure';
export type DnsErrorKind = 'bad_packet' | 'socket';
/** The question types counted by name; the rest count as "other" (a label per type would be unbounded). */
const DNS_TYPES = new Set(['A', 'AAAA', 'SRV', 'SOA', 'ANY']);

export class Metrics {
  readonly registry = new Registry();
  private readonly reloads = new Counter({
    name: 'ingress_sidecar_reloads_total',
    help: 'nginx reloads by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly lastReloadSuccess = new Gauge({
    name: 'ingress_sidecar_last_reload_success',
    help: '1 if the last reload succeeded (nginx runs the current config), 0 if it failed',
    registers: [this.registry],
  });
  private readonly lastReloadTime = new Gauge({
    name: 'ingress_sidecar_last_reload_timestamp_seconds',
    help: 'Unix time of the last reload attempt',
    registers: [this.registry],
  });
  private readonly configHash = new Gauge({
    name: 'ingress_sidecar_config_hash',
    help: 'A hash of the configuration nginx runs, as a number: compare it across replicas',
    registers: [this.registry],
  });
  private readonly syncDuration = new Histogram({
    name: 'ingress_sidecar_sync_duration_seconds',
    help: 'Time for one sync pass: translate, render, check, write and reload',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly renderDuration = new Histogram({
    name: 'ingress_sidecar_render_duration_seconds',
    help: 'Time to translate the cluster state and render the nginx files',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  private readonly ingresses = new Gauge({
    name: 'ingress_sidecar_ingresses',
    help: 'Ingresses of our class by state: served (at least one route live) or rejected (nothing served)',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  private readonly sourceErrors = new Counter({
    name: 'ingress_sidecar_source_errors_total',
    help: 'Errors reading the sources (a manifest that does not parse, a watch that failed)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  private readonly dnsQueries = new Counter({
    name: 'ingress_sidecar_dns_queries_total',
    help: "DNS queries answered for nginx's upstream resolver, by question type, response code and transport",
    labelNames: ['type', 'rcode', 'transport'] as const,
    registers: [this.registry],
  });
  private readonly dnsTruncated = new Counter({
    name: 'ingress_sidecar_dns_truncated_total',
    help: 'UDP answers too large for 512 bytes, sent truncated so that the resolver asks again over TCP',
    registers: [this.registry],
  });
  private readonly dnsErrors = new Counter({
    name: 'ingress_sidecar_dns_errors_total',
    help: 'DNS packets that could not be read (bad_packet) and socket errors (socket)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'ingress_sidecar_' });
    this.ingresses.set({ state: 'served' }, 0);
    this.ingresses.set({ state: 'rejected' }, 0);
    this.reloads.inc({ result: 'success' }, 0);
    this.reloads.inc({ result: 'failure' }, 0);
    this.dnsErrors.inc({ kind: 'bad_packet' }, 0);
    this.dnsErrors.inc({ kind: 'socket' }, 0);
  }

  reload(result: ReloadResult, configHash?: string): void {
    this.reloads.inc({ result });
    this.lastReloadSuccess.set(result === 'success' ? 1 : 0);
    this.lastReloadTime.set(Date.now() / 1000);
    // 48 bits of the hash: exact in a float64 sample value.
    if (result === 'success' && configHash) this.configHash.set(parseInt(configHash.slice(0, 12), 16));
  }

  observeSync(seconds: number): void {
    this.syncDuration.observe(seconds);
  }

  observeRender(seconds: number): void {
    this.renderDuration.observe(seconds);
  }

  setIngresses(served: number, rejected: number): void {
    this.ingresses.set({ state: 'served' }, served);
    this.ingresses.set({ state: 'rejected' }, rejected);
  }

  sourceError(source: string): void {
    this.sourceErrors.inc({ source });
  }

  /** An endpoint change answered by the DNS responder, with no render and no reload. */
  endpointsAnswered(): void {
    this.endpointUpdates.inc();
  }

  setEndpointsMode(mode: 'dns' | 'reload'): void {
    this.endpointsMode.set({ mode: 'dns' }, mode === 'dns' ? 1 : 0);
    this.endpointsMode.set({ mode: 'reload' }, mode === 'reload' ? 1 : 0);
  }

  private readonly endpointUpdates = new Counter({
    name: 'ingress_sidecar_endpoint_updates_total',
    help: 'Endpoint changes that reached nginx as new DNS answers, without a reload (dns mode)',
    registers: [this.registry],
  });
  private readonly endpointsMode = new Gauge({
    name: 'ingress_sidecar_endpoints_mode',
    help: 'How endpoint changes reach nginx: 1 for the mode in force (dns: no reload; reload: in the files)',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });

  dnsQuery(type: string, rcode: string, transport: 'udp' | 'tcp', truncated = false): void {
    this.dnsQueries.inc({ type: DNS_TYPES.has(type) ? type : 'other', rcode, transport });
    if (truncated) this.dnsTruncated.inc();
  }

  dnsError(kind: DnsErrorKind): void {
    this.dnsErrors.inc({ kind });
  }
}
