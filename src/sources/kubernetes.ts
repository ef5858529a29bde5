// A Source that watches the Kubernetes API with client-node informers (ListWatch): Ingress,
// IngressClass, Service, EndpointSlice (or core/v1 Endpoints where discovery.k8s.io/v1 is not
// served), and Secrets of type kubernetes.io/tls and Opaque (two watches, see SECRET_TYPES in
// kube-resources.ts).
// Downstream code cannot tell it from the directory source: it fills the same Snapshot, sorted
// by namespace/name.
//
// Each resource is its own ResourceWatch (resource-watch.ts: the restarts that survive an API
// outage); what is watched, and what of each object is kept, is kube-resources.ts; credentials
// are kube-credentials.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApisApi, type KubeConfig, type KubernetesObject, type V1APIGroupList } from '@kubernetes/client-node';
import type { Logger } from '../ops/log.ts';
import { snapshotCounts, type Snapshot, type Source } from './snapshot.ts';
import { loadKubeConfig, type KubeEnvironment } from './kube-credentials.ts';
import { endpointsKind, resources } from './kube-resources.ts';
import { asError, backoffDelay, ResourceWatch, RETRY, type Owner } from './resource-watch.ts';
import { describe } from '../errors.ts';

export interface KubernetesSourceOptions {
  /** A kubeconfig file (`--kubeconfig`): wins over in-cluster credentials and KUBECONFIG. */
  kubeconfig?: string;
  /** Watch only this namespace; IngressClasses are cluster-scoped and always watched whole. */
  namespace?: string;
  logger: Logger;
  /** Called for every failed list, watch or discovery attempt (each retry included): metrics. */
  onError?: (err: Error) => void;
  env?: KubeEnvironment;
  /** Where the service account's token and ca.crt are mounted in a pod. */
  serviceAccountDir?: string;
  /** Backoff between restarts; the defaults are RETRY's. Tests shorten the ceiling. */
  retry?: { initialMs?: number; maxMs?: number };
}

export class KubernetesSource implements Source {
  /** The credentials in use: other parts (status, Events) build their API clients from it. */
  readonly kubeConfig: KubeConfig;
  /** Where the credentials came from, for the log. */
  readonly credentials: string;
  private readonly logger: Logger;
  private readonly retry: { initialMs: number; maxMs: number };
  private readonly namespace: string | undefined;
  private readonly onError: ((err: Error) => void) | undefined;
  private watches: ResourceWatch[] = [];
  private onChange: ((field?: keyof Snapshot) => void) | undefined;
  private started = false;
  private synced = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private kind: 'EndpointSlice' | 'Endpoints' | undefined;

  /** Reads the credentials now (throws when there are none), and contacts the API in start(). */
  constructor(opts: KubernetesSourceOptions) {
    this.logger = opts.logger;
    this.namespace = opts.namespace;
    this.onError = opts.onError;
    this.retry = { initialMs: opts.retry?.initialMs ?? RETRY.initialMs, maxMs: opts.retry?.maxMs ?? RETRY.maxMs };
    const { kubeConfig, from } = loadKubeConfig({
      ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.serviceAccountDir !== undefined ? { serviceAccountDir: opts.serviceAccountDir } : {}),
    });
    this.kubeConfig = kubeConfig;
    this.credentials = from;
  }

  async start(onChange: (field?: keyof Snapshot) => void): Promise<void> {
    if (this.started) throw new Error('KubernetesSource.start() called twice');
    this.started = true;
    this.onChange = onChange;
    const began = performance.now();
    const server = this.kubeConfig.getCurrentCluster()?.server;
    this.logger.info(`connecting to the Kubernetes API at ${server}`, {
      server,
      credentials: this.credentials,
      namespace: this.namespace ?? '(all)',
    });

    const kind = endpointsKind(await this.discover());
    this.kind = kind;
    const owner: Owner = {
      logger: this.logger,
      kubeConfig: this.kubeConfig,
      retry: this.retry,
      changed: (field) => this.changed(field),
      failed: (err) => this.failed(err),
    };
    this.watches = resources(this.kubeConfig, this.namespace, kind).map((r) => new ResourceWatch(r, owner));
    if (this.stopped) throw stoppedError();
    for (const w of this.watches) w.start();
    // Never before every resource has been listed once: a partial cache would drop routes.
    await Promise.all(this.watches.map((w) => w.synced));
    if (this.stopped) throw stoppedError();
    this.synced = true;
    const s = this.snapshot();
    this.logger.info('read the objects from the Kubernetes API', {
      endpointsFrom:
        kind === 'EndpointSlice'
          ? 'discovery.k8s.io/v1 EndpointSlices'
          : 'core/v1 Endpoints (discovery.k8s.io/v1 is not served)',
      ...snapshotCounts(s),
      ms: Math.round(performance.now() - began),
    });
  }

  /** Which object feeds the upstreams, once discovery has answered (see endpointsKind()). */
  get endpointsKind(): 'EndpointSlice' | 'Endpoints' | undefined {
    return this.kind;
  }

  snapshot(): Snapshot {
    const out: Record<keyof Snapshot, KubernetesObject[]> = {
      ingresses: [],
      ingressClasses: [],
      services: [],
      endpointSlices: [],
      endpoints: [],
      secrets: [],
    };
    // Secrets come from two watches (one per type): one list.
    for (const w of this.watches) out[w.res.field].push(...w.list());
    for (const list of Object.values(out)) list.sort(byNamespaceName);
    // Each array holds the kind its field names (see resources()).
    return out as unknown as Snapshot;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  /** GET /apis, retried with backoff (one error line per outage) until it answers or stop(). */
  private async discover(): Promise<V1APIGroupList> {
    const apis = this.kubeConfig.makeApiClient(ApisApi);
    let failingSince: number | undefined;
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw stoppedError();
      try {
        const groups = await apis.getAPIVersions();
        if (failingSince !== undefined) {
          this.logger.info('Kubernetes API: discovery answers again', {
            downMs: Date.now() - failingSince,
            retries: attempt,
          });
        }
        return groups;
      } catch (raw) {
        if (this.stopped) throw stoppedError();
        const err = asError(raw);
        this.failed(err);
        const delayMs = backoffDelay(attempt, Math.random(), this.retry);
        if (failingSince === undefined) {
          failingSince = Date.now();
          this.logger.error('Kubernetes API: discovery failed; retrying with backoff', {
            error: describe(err),
            retryInMs: delayMs,
          });
        } else {
          this.logger.debug('Kubernetes API: discovery still failing', {
            error: describe(err),
            retryInMs: delayMs,
            retries: attempt + 1,
          });
        }
        await sleep(delayMs, undefined, { signal: this.abort.signal }).catch(() => {});
      }
    }
  }

  private changed(field: keyof Snapshot): void {
    if (!this.synced || this.stopped) return;
    try {
      this.onChange?.(field);
    } catch (err) {
      // The informers must survive a failing listener; the next change calls it again.
      this.logger.error(`change listener failed: ${describe(err)}`, { error: describe(err) });
    }
  }

  private failed(err: Error): void {
    try {
      this.onError?.(err);
    } catch {
      // A metrics hook must not break the restart logic.
    }
  }
}

function stoppedError(): Error {
  return new Error('the Kubernetes source was stopped before its first full read');
}

function byNamespaceName(a: KubernetesObject, b: KubernetesObject): number {
  const ka = [a.metadata?.namespace ?? '', a.metadata?.name ?? ''];
  const kb = [b.metadata?.namespace ?? '', b.metadata?.name ?? ''];
  for (let i = 0; i < 2; i++) {
    const x = ka[i]!;
    const y = kb[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
