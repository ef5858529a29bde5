// One sync pass and the parts it drives: snapshot -> translate -> render -> apply. The reconcile
// loop decides when a pass runs; this module decides what a pass does and what it reports.

import { Applier, ReloadError } from '../nginx/apply.ts';
import { hashFiles } from '../nginx/conf-files.ts';
import { CertStore } from '../nginx/cert-store.ts';
import { Renderer } from '../nginx/render.ts';
import type { Logger } from '../ops/log.ts';
import { Metrics } from '../ops/metrics.ts';
import { diffModelsAsync } from './model-diff.ts';
import type { Rejection, RoutingModel } from '../model.ts';
import { Reconciler, type PassResult } from './reconciler.ts';
import { masterDrainingGenerations } from '../nginx/draining.ts';
import { closedIngresses, releaseChangedQuarantine, settle, UnsettledError, type Quarantined } from './settle.ts';
import type { Snapshot, Source } from '../sources/snapshot.ts';
import type { StatusSource } from '../ops/http.ts';
import { translateAsync, type TranslateOptions } from '../translate/index.ts';
import { describe } from '../errors.ts';
import { ServingNginx } from './serving-nginx.ts';
import { collectGarbageBetweenPasses } from './gc.ts';
import {
  answersOf,
  endpointsSignature,
  unionOf,
  withEndpointsOf,
  type EndpointAnswersSink,
  type EndpointsMode,
} from './endpoint-mode.ts';
import type { EndpointTarget } from '../dns/answers.ts';

export interface SidecarOptions {
  source: Source;
  /** `now` is set by each pass (from `clock`); with `tls`, certificates go to `tls.certDir`. */
  translate: Omit<TranslateOptions, 'now'>;
  /** The time certificates must be valid at; defaults to the system clock. For tests. */
  clock?: () => Date;
  confDir: string;
  nginxBinary: string | null;
  nginxPidFile?: string;
  reloadTimeoutMs: number;
  /**
   * How often to check that the running nginx master is the one that loaded our files (a restarted
   * nginx is reloaded once, files unchanged or not). Default 2000; 0 turns the check off.
   */
  masterCheckMs?: number;
  debounceMs: number;
  maxDelayMs: number;
  logger: Logger;
  metrics?: Metrics;
  /**
   * Called after every pass that put a config in place, with the objects it was built from and
   * the model (rejections included): status and Events in cluster mode are written from here.
   */
  afterSync?: (snapshot: Snapshot, model: RoutingModel) => void;
  /**
   * How long translate, render and the reload's diff may hold the event loop before they give
   * other work a turn (ms; default STEP_BUDGET_MS). For tests: 0 yields at every step.
   */
  stepBudgetMs?: number;
  /** --max-draining-generations, --max-drain-wait-ms, --max-reload-share (the reconciler's defaults when absent). */
  pacing?: { maxDrainingGenerations?: number; maxDrainWaitMs?: number; maxReloadSharePercent?: number };
  /**
   * --nginx-version: the serving nginx's version when it cannot be read from its master. The
   * files are rendered for the older of the serving nginx and the checking binary
   * (`translate.nginxVersion`, from `nginx -v` of --nginx-binary).
   */
  nginxVersionFlag?: string;
  /**
   * Reload-free endpoints: the DNS responder's answers (the caller runs the responder on
   * `resolver`), `mode` as --endpoints-mode says. Absent: endpoints are always in the files.
   */
  endpoints?: {
    mode: 'auto' | 'dns' | 'reload';
    answers: EndpointAnswersSink;
    /** The responder itself: started before the first pass, stopped last. */
    server?: { start(): Promise<void>; stop(): Promise<void> };
    resolver: string;
    unavailablePort: number;
  };
}

/** Parts of the snapshot whose changes alone are endpoint changes. */
const ENDPOINT_FIELDS: ReadonlySet<keyof Snapshot> = new Set(['endpointSlices', 'endpoints']);

export interface SidecarStats {
  syncs: number;
  reloads: number;
  /** The model of the last configuration nginx accepted (or that was written for it). */
  model: RoutingModel | null;
  lastSyncOk: boolean;
}

/** setTimeout's limit is about 24.8 days; a later certificate change is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The default period of the nginx master check. */
const MASTER_CHECK_MS = 2000;

export class Sidecar implements StatusSource {
  readonly metrics: Metrics;
  readonly stats: SidecarStats = { syncs: 0, reloads: 0, model: null, lastSyncOk: false };
  private readonly opts: SidecarOptions;
  private readonly applier: Applier;
  private readonly reconciler: Reconciler;
  private readonly certStore: CertStore | null;
  /** One for the sidecar's life: it reuses the text of servers that did not change. */
  private readonly renderer = new Renderer();
  /** A pass when a certificate in use expires or a refused one becomes valid. */
  private recheck: NodeJS.Timeout | null = null;
  /** The next nginx master check. */
  private masterTimer: NodeJS.Timeout | null = null;
  /** The last new master logged, so that a master that cannot be reloaded is reported once. */
  private announcedMaster: number | null = null;
  /** The last error of the master check, logged once. */
  private masterCheckError = '';
  /** Configuration warnings already logged (they belong to no Ingress). */
  private warned = new Set<string>();
  /**
   * Certificate files nginx refused to load although they parsed here, with its message: the
   * Secrets behind them count as unusable (their hosts get the default certificate). Keyed by a
   * digest of the content, so a fixed Secret is a new file and is tried again.
   */
  private readonly refusedCertificates = new Map<string, string>();
  private readonly log: Logger;
  /** Rejections already logged, so a steady problem is reported once, not every pass. */
  private reported = new Map<string, Rejection>();
  /**
   * Ingresses whose rendered config nginx refused, by key, with a fingerprint of the Ingress:
   * they stay out until the Ingress itself changes.
   */
  private quarantine = new Map<string, Quarantined>();
  /** What changed since the last pass began ('all': unknown, or not a source's change). */
  private pending = new Set<keyof Snapshot | 'all'>();
  /** The mode of the last full pass; the answers the responder gives now. */
  private mode: EndpointsMode = 'reload';
  private answered = new Map<string, EndpointTarget[]>();
  /** endpointsSignature() of the Services the live files depend on, as last rendered. */
  private filesSignature = '';
  /** runOnce(): one pass and exit, so never dns mode. */
  private onceOnly = false;
  /** Which nginx this pass renders for, and so which endpoints mode it runs in. */
  private readonly servingNginx: ServingNginx;

  constructor(opts: SidecarOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.metrics = opts.metrics ?? new Metrics();
    this.applier = new Applier({
      confDir: opts.confDir,
      nginxBinary: opts.nginxBinary,
      ...(opts.nginxPidFile ? { pidFile: opts.nginxPidFile } : {}),
      reloadTimeoutMs: opts.reloadTimeoutMs,
      logger: opts.logger,
    });
    // Where translate puts private files: the certificate directory, or privateDir without TLS.
    const privateDir = opts.translate.tls?.certDir ?? opts.translate.privateDir;
    this.certStore = privateDir ? new CertStore({ dir: privateDir, logger: opts.logger }) : null;
    this.servingNginx = new ServingNginx({
      ...(opts.nginxPidFile ? { pidFile: opts.nginxPidFile } : {}),
      checking: opts.translate.nginxVersion ?? null,
      flag: opts.nginxVersionFlag ?? null,
      logger: opts.logger,
    });
    this.reconciler = new Reconciler({
      debounceMs: opts.debounceMs,
      maxDelayMs: opts.maxDelayMs,
      sync: () => this.sync(),
      // An endpoint-only pass in dns mode costs nginx nothing: pacing must not hold it.
      reloadFree: () => this.endpointsOnly(this.pending),
      // Old generations still draining hold nginx's memory and connections: a reload waits for them.
      drainingGenerations: () => masterDrainingGenerations(opts.nginxPidFile ? { pidFile: opts.nginxPidFile } : {}),
      ...(opts.pacing ?? {}),
      logger: opts.logger,
    });
  }

  /** Resolves after the source's first full read has been applied (or failed and is retrying). */
  private watching = false;
  private synced = false;

  async start(): Promise<void> {
    // Up before nginx can load files that name it; SERVFAIL (keep your peers) until the first pass.
    await this.opts.endpoints?.server?.start();
    await this.opts.source.start((field) => this.changed(field ?? 'all'));
    this.watching = true;
    this.log.info('source ready; first sync', {});
    this.reconciler.start();
    this.changed('all');
    await this.reconciler.idle();
    this.scheduleMasterCheck();
  }

  /**
   * One sync after the source's first full read, then stop: `--once`. Throws when it fails;
   * returns the Ingresses set aside because nginx refused what they rendered (the rest is applied).
   */
  async runOnce(): Promise<Array<{ ingress: string; reason: string }>> {
    await this.opts.source.start(() => {});
    // No DNS responder outlives this process: the endpoints go into the files.
    this.onceOnly = true;
    try {
      await this.sync();
    } finally {
      await this.opts.source.stop();
    }
    return [...this.quarantine].map(([ingress, q]) => ({ ingress, reason: q.reason }));
  }

  async stop(): Promise<void> {
    this.watching = false;
    if (this.recheck) clearTimeout(this.recheck);
    this.recheck = null;
    if (this.masterTimer) clearTimeout(this.masterTimer);
    this.masterTimer = null;
    await this.opts.source.stop();
    await this.reconciler.stop();
    await this.opts.endpoints?.server?.stop();
  }

  healthy(): boolean {
    return this.watching;
  }

  /** True once a sync has put the configuration in place and nginx (where running) has loaded it. */
  ready(): boolean {
    return this.synced;
  }

  model(): RoutingModel | null {
    return this.stats.model;
  }

  /** For tests and tools: resolves when no change is pending. */
  idle(): Promise<void> {
    return this.reconciler.idle();
  }

  private async sync(): Promise<PassResult> {
    const started = performance.now();
    try {
      return await this.syncOnce(started);
    } finally {
      this.metrics.observeSync((performance.now() - started) / 1000);
      // The previous pass's model and files are garbage now: collect them before the next pass
      // (see collectGarbage()), outside the measured sync time.
      collectGarbageBetweenPasses();
    }
  }

  /** Whether `fields` are endpoint changes only, which dns mode answers without a reload. */
  private endpointsOnly(fields: ReadonlySet<keyof Snapshot | 'all'>): boolean {
    if (this.mode !== 'dns' || !this.stats.lastSyncOk || fields.size === 0) return false;
    for (const f of fields) if (f === 'all' || !ENDPOINT_FIELDS.has(f)) return false;
    return true;
  }

  /** A change to the objects (`field`), a master or certificate check ('all'): a pass is due. */
  private changed(field: keyof Snapshot | 'all'): void {
    this.pending.add(field);
    this.reconciler.trigger();
  }

  /** What the pass cost nginx, for the reconciler's pacing: the time in check, swap and reload. */
  private async syncOnce(started: number): Promise<PassResult> {
    this.stats.syncs++;
    const fields = this.pending;
    this.pending = new Set();
    if (this.endpointsOnly(fields) && this.answerEndpoints(started)) return { reloaded: false, reloadMs: 0 };
    let applyMs = 0;
    const snap = this.opts.source.snapshot();
    releaseChangedQuarantine(this.quarantine, snap.ingresses);
    let now = new Date();
    const tls = this.opts.translate.tls;
    const endpoints = this.opts.endpoints;
    const nginxVersion = await this.servingNginx.version();
    const mode = endpoints && !this.onceOnly ? this.servingNginx.endpointsMode(endpoints.mode, nginxVersion) : 'reload';
    const dynamicEndpoints =
      endpoints && mode === 'dns'
        ? { dynamicEndpoints: { resolver: endpoints.resolver, unavailablePort: endpoints.unavailablePort } }
        : {};
    let settled;
    try {
      settled = await settle(snap, {
        translate: (s) => {
          now = this.opts.clock?.() ?? new Date();
          // In slices (translateAsync): the same model, without holding the event loop for the whole pass.
          return translateAsync(
            s,
            {
              ...this.opts.translate,
              ...(nginxVersion !== undefined ? { nginxVersion } : {}),
              ...dynamicEndpoints,
              now,
              closed: closedIngresses(this.quarantine),
              ...(tls ? { tls: { ...tls, refusedCertificates: this.refusedCertificates } } : {}),
            },
            this.opts.stepBudgetMs,
          );
        },
        // A failure here fails the pass (and it is retried); the live config names only files still there.
        prepare: (model: RoutingModel) => this.prepare(model),
        apply: async (files) => {
          const t0 = performance.now();
          try {
            return await this.applier.apply(files);
          } finally {
            applyMs += performance.now() - t0;
          }
        },
        check: (files) => this.applier.check(files),
        renderer: this.renderer,
        quarantine: this.quarantine,
        refusedCertificates: this.refusedCertificates,
        logger: this.log,
        ...(this.opts.stepBudgetMs !== undefined ? { stepBudgetMs: this.opts.stepBudgetMs } : {}),
        onRender: (seconds) => this.metrics.observeRender(seconds),
        onRefused: () => {
          this.stats.lastSyncOk = false;
          this.metrics.reload('failure');
        },
      });
    } catch (err) {
      if (err instanceof UnsettledError) throw err;
      this.stats.lastSyncOk = false;
      this.metrics.reload('failure');
      if (err instanceof ReloadError) {
        if (err.unchanged)
          this.log.error('nginx did not reload to load the files in place; will retry', { reason: err.message });
        else
          this.log.error('nginx did not load the new configuration; the previous files were restored and stay live', {
            reason: err.message,
          });
      }
      throw err;
    }
    const { model, files, applied: result } = settled;
    this.filesSignature = endpointsSignature(snap, model.endpointsInFiles ?? []);
    // nginx runs the new files: old workers are draining, hosts only they asked for can go.
    this.answer(answersOf(model));
    if (mode !== this.mode) this.log.info('endpoint changes reach nginx', { mode, reloadFree: mode === 'dns' });
    this.mode = mode;
    this.metrics.setEndpointsMode(mode);
    const previous = this.stats.model;
    this.stats.model = model;
    this.stats.lastSyncOk = true;
    this.synced = true;
    this.reportRejections(model);
    this.reportWarnings(model);
    this.scheduleRecheck(model, now);
    await this.pruneCertificates(model);
    this.opts.afterSync?.(snap, this.withQuarantineRejections(model));
    if (result.reloaded) {
      this.stats.reloads++;
      this.metrics.reload('success', this.applier.loadedHash ?? hashFiles(files));
      // One line per reload that says what changed, for the operator reading the log.
      this.log.info('nginx reloaded', {
        ...(await diffModelsAsync(previous, model, this.opts.stepBudgetMs)),
        files: result.files,
        servers: model.servers.length + 1,
        upstreams: model.upstreams.length,
        ingresses: model.served.length,
        rejected: model.rejections.filter((r) => r.severity === 'rejected').length,
        ms: Math.round(performance.now() - started),
      });
    }
    return { reloaded: result.reloaded, reloadMs: applyMs };
  }

  /**
   * Before nginx reads the files: the private files they name, and answers for their dynamic
   * upstreams (new workers ask at once), with the old ones kept for the workers still running.
   */
  private async prepare(model: RoutingModel): Promise<void> {
    await this.certStore?.write(model.certificates);
    if (this.opts.endpoints) this.answer(unionOf(this.answered, answersOf(model)));
  }

  private answer(answers: Map<string, EndpointTarget[]>): void {
    if (!this.opts.endpoints) return;
    this.answered = answers;
    this.opts.endpoints.answers.replace(answers);
  }

  /**
   * An endpoint-only change in dns mode: new answers, no translate, no render, no reload. False
   * when an upstream whose endpoints are in the files changed too: then a full pass runs.
   */
  private answerEndpoints(started: number): boolean {
    const model = this.stats.model;
    if (!model) return false;
    const next = withEndpointsOf(model, this.opts.source.snapshot(), this.filesSignature);
    if (!next) return false;
    if (next.changed.length === 0) return true;
    this.stats.model = next.model;
    this.answer(answersOf(next.model));
    this.metrics.endpointsAnswered();
    this.log.info('endpoints changed; answered by DNS, no reload', {
      upstreams: next.changed.slice(0, 20),
      changed: next.changed.length,
      ms: Math.round(performance.now() - started),
    });
    return true;
  }

  /**
   * Nothing else watches nginx: when its master is restarted (the container crashed, was OOM
   * killed, or a binary upgrade finished), the new master may have parsed conf.d before our last
   * swap landed, or while no master ran to be signalled. So every few seconds compare the master
   * (pid file, or /proc scan, plus its start time) with the one that loaded our files, and on a
   * new one run a pass, which reloads it once even though no file changes. A pass that fails is
   * retried with the reconciler's backoff; a successful reload makes this master the known one,
   * so it never reloads in a loop.
   */
  private scheduleMasterCheck(): void {
    const every = this.opts.masterCheckMs ?? MASTER_CHECK_MS;
    if (every <= 0 || !this.watching) return;
    this.masterTimer = setTimeout(() => {
      void this.checkMaster().finally(() => {
        if (this.masterTimer !== null) this.scheduleMasterCheck();
      });
    }, every);
    this.masterTimer.unref();
  }

  private async checkMaster(): Promise<void> {
    try {
      const change = await this.applier.masterChanged();
      this.masterCheckError = '';
      if (change === null || !this.watching) return;
      if (change.current !== this.announcedMaster) {
        this.announcedMaster = change.current;
        this.log.info('nginx master changed', { previous: change.previous, current: change.current });
      }
      this.changed('all');
    } catch (err) {
      // Absorbed on purpose: a pass reports the same problem (two masters, an unreadable pid file)
      // when it looks for the master to reload; this check only logs it once.
      const message = describe(err);
      if (message !== this.masterCheckError)
        this.log.warn('could not check the nginx master; will retry', { error: message });
      this.masterCheckError = message;
    }
  }

  /** Certificate files no configuration names any more: nginx runs the new one, so they can go. */
  private async pruneCertificates(model: RoutingModel): Promise<void> {
    if (!this.certStore) return;
    try {
      await this.certStore.prune(model.certificates);
    } catch (err) {
      // Absorbed on purpose: a file left behind costs disk space only, and the next pass retries.
      this.log.warn('could not remove unused certificate files; will retry on the next sync', {
        dir: this.certStore.dir,
        error: describe(err),
      });
    }
  }

  /** Logs each configuration warning once when it appears, and once when it is gone. */
  private reportWarnings(model: RoutingModel): void {
    const now = new Set(model.warnings);
    for (const w of now) if (!this.warned.has(w)) this.log.warn('configuration problem', { reason: w });
    for (const w of this.warned) if (!now.has(w)) this.log.info('configuration problem resolved', { reason: w });
    this.warned = now;
  }

  /** A certificate's validity changes with time alone: translate again when it does. */
  private scheduleRecheck(model: RoutingModel, now: Date): void {
    if (this.recheck) clearTimeout(this.recheck);
    this.recheck = null;
    if (model.tlsRecheckAt === null || !this.watching) return;
    const ms = Math.min(MAX_TIMER_MS, Math.max(0, Date.parse(model.tlsRecheckAt) - now.getTime()));
    this.recheck = setTimeout(() => {
      this.recheck = null;
      this.changed('all');
    }, ms);
    this.recheck.unref();
  }

  /** The model as users should hear of it: Ingresses that nginx refused are rejected too. */
  private withQuarantineRejections(model: RoutingModel): RoutingModel {
    if (this.quarantine.size === 0) return model;
    const extra = [...this.quarantine].map(([ingress, q]) => ({
      ingress,
      severity: 'rejected' as const,
      reason: q.reason,
    }));
    return { ...model, rejections: [...model.rejections, ...extra] };
  }

  /** Logs each rejection once when it appears, and once more when it is gone. */
  private reportRejections(model: RoutingModel): void {
    const now = new Map<string, Rejection>();
    for (const r of model.rejections) now.set(`${r.ingress}\n${r.reason}`, r);
    for (const [key, q] of this.quarantine)
      now.set(`${key}\n${q.reason}`, { ingress: key, severity: 'rejected', reason: q.reason });
    for (const [k, r] of now) {
      if (this.reported.has(k)) continue;
      const msg = r.severity === 'rejected' ? 'Ingress rejected' : 'Ingress partly rejected';
      this.log.warn(msg, { ingress: r.ingress, reason: r.reason });
    }
    for (const [k, r] of this.reported) {
      if (!now.has(k)) this.log.info('Ingress problem resolved', { ingress: r.ingress, reason: r.reason });
    }
    this.reported = now;
    const rejected = new Set([...now.values()].filter((r) => r.severity === 'rejected').map((r) => r.ingress));
    this.metrics.setIngresses(model.served.length, rejected.size);
  }
}
