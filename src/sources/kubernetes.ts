// A Source that watches the Kubernetes API with client-node informers (ListWatch): Ingress,
// IngressClass, Service, EndpointSlice (or core/v1 Endpoints where discovery.k8s.io/v1 is not
// served), and Secrets of type kubernetes.io/tls and Opaque (two watches, see SECRET_TYPES).
// Downstream code cannot tell it from the directory source: it fills the same Snapshot, sorted
// by namespace/name.
//
// Failures. client-node's ListWatch relists by itself on 410 Gone and reconnects a watch that
// ends or times out, but on any other error (the API server restarting, a refused connection, a
// 403) it emits 'error' and stops for good. Restarting is ours: each resource is restarted with
// a jittered exponential backoff (RETRY), and every restart is a *fresh* ListWatch whose first
// list replaces the cache, so objects deleted during an outage disappear once the API answers
// again. Until that relist succeeds, the last cache keeps serving: routes survive an API outage.
// Each outage is logged once (error) and its end once (info), per resource, not every retry.
//
// Objects. The generated list functions return typed objects (Dates for timestamps), watch
// events raw JSON; watch objects are deserialized with the same serializer, so both look alike
// downstream and compare equal when nothing changed. Listed items get the apiVersion and kind
// the API server leaves out of lists.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApisApi,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  ListWatch,
  NetworkingV1Api,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
  type V1APIGroupList,
} from '@kubernetes/client-node';
// Not re-exported by the package index; the generated clients deserialize lists with it.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import type { Logger } from '../ops/log.ts';
import { snapshotCounts, type Snapshot, type Source } from './snapshot.ts';
import { describe } from '../errors.ts';

/** What the environment says about where the API is. config.ts reads it; nothing else does. */
export interface KubeEnvironment {
  /** KUBECONFIG: kubeconfig files separated by path.delimiter, merged, the first one's context wins. */
  kubeconfigPath?: string;
  /** HOME, for ~/.kube/config. */
  home?: string;
  /** KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, set by the kubelet in every pod. */
  serviceHost?: string;
  servicePort?: string;
}

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

/**
 * Restart backoff: 500 ms doubling to 5 s, each delay jittered by +-20%. The ceiling bounds how
 * long routes lag behind the API after an outage; six watches retrying every ~5 s cost the
 * API server about one request a second meanwhile.
 */
export const RETRY = { initialMs: 500, maxMs: 5_000, jitter: 0.2 } as const;

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The Secrets read, one ListWatch each (a field selector matches one value; `type!=` excludes
 * one): `kubernetes.io/tls` for certificates, and `Opaque` for the htpasswd files of auth-type
 * basic (`kubectl create secret generic NAME --from-file=auth`, as ingress-nginx users make them).
 * Selected by type rather than all Secrets, because the cache holds every object it lists, for
 * the life of the process: a cluster's service-account tokens, `helm.sh/release.v1` Secrets (each
 * a whole compressed release, up to 1 MiB), `kubernetes.io/dockerconfigjson` and bootstrap tokens
 * would cost memory (and a sync on every change) for nothing the sidecar reads, and would put
 * credentials in its heap that it has no use for. Opaque Secrets other than auth files are still
 * held (they cannot be told apart before an Ingress names one); `--namespace` bounds that. What
 * is kept of each Secret is slimmed too (see slim()).
 */
const SECRET_TYPES = [
  { fieldSelector: 'type=kubernetes.io/tls', plural: 'TLS Secrets' },
  { fieldSelector: 'type=Opaque', plural: 'Opaque Secrets' },
] as const;

/** The delay before retry number `attempt` (0 for the first), jittered by `random` in [0, 1). */
export function backoffDelay(attempt: number, random: number = Math.random(), retry: { initialMs: number; maxMs: number } = RETRY): number {
  const base = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - RETRY.jitter + 2 * RETRY.jitter * random));
}

/**
 * Which object feeds the upstreams: EndpointSlices where the API serves discovery.k8s.io/v1
 * (Kubernetes 1.21 and later), else core/v1 Endpoints (older servers serve only v1beta1 slices,
 * whose shape we do not read). Decided once, at start, from API discovery (GET /apis).
 */
export function endpointsKind(groups: V1APIGroupList): 'EndpointSlice' | 'Endpoints' {
  const discovery = groups.groups.find((g) => g.name === 'discovery.k8s.io');
  return discovery?.versions.some((v) => v.version === 'v1') ? 'EndpointSlice' : 'Endpoints';
}

/**
 * The credentials, in order: the `--kubeconfig` file; in-cluster (the service account's token
 * exists and the kubelet set KUBERNETES_SERVICE_HOST/PORT); KUBECONFIG; ~/.kube/config. Throws
 * when none is there, rather than guessing (client-node's loadFromDefault would fall back to
 * http://localhost:8080).
 */
export function loadKubeConfig(opts: { kubeconfig?: string; env?: KubeEnvironment; serviceAccountDir?: string }): { kubeConfig: KubeConfig; from: string } {
  const env = opts.env ?? {};
  const kc = new KubeConfig();
  let from: string;
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const token = path.join(saDir, 'token');
  const homeConfig = env.home ? path.join(env.home, '.kube', 'config') : undefined;
  if (opts.kubeconfig !== undefined) {
    from = `--kubeconfig ${opts.kubeconfig}`;
    kc.loadFromFile(opts.kubeconfig);
  } else if (existsSync(token) && env.serviceHost && env.servicePort) {
    // What KubeConfig.loadFromCluster() does, from the host and port passed in. The token is
    // re-read as the kubelet rotates it (client-node's tokenFile provider).
    from = 'the in-cluster service account';
    const host = env.serviceHost.includes(':') ? `[${env.serviceHost}]` : env.serviceHost;
    kc.loadFromOptions({
      clusters: [{ name: 'inCluster', server: `https://${host}:${env.servicePort}`, caFile: path.join(saDir, 'ca.crt'), skipTLSVerify: false }],
      users: [{ name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile: token } } }],
      contexts: [{ name: 'inClusterContext', cluster: 'inCluster', user: 'inClusterUser' }],
      currentContext: 'inClusterContext',
    });
  } else if (env.kubeconfigPath) {
    const files = env.kubeconfigPath.split(path.delimiter).filter((f) => f !== '');
    from = `KUBECONFIG ${files.join(path.delimiter)}`;
    for (const [i, file] of files.entries()) {
      if (i === 0) {
        kc.loadFromFile(file);
      } else {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kc.mergeConfig(more, true);
      }
    }
  } else if (homeConfig !== undefined && existsSync(homeConfig)) {
    from = homeConfig;
    kc.loadFromFile(homeConfig);
  } else {
    throw new Error(
      'no Kubernetes credentials: give --kubeconfig FILE, run in a pod with a service account token, set KUBECONFIG, or create ~/.kube/config (or serve files with --watch-dir)',
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new Error(`${from}: no cluster for the current context ${JSON.stringify(kc.getCurrentContext())}`);
  }
  return { kubeConfig: kc, from };
}

/** One watched resource: where it lives and how to list it. */
interface Resource {
  field: keyof Snapshot;
  /** For logs: `Ingresses`. */
  plural: string;
  apiVersion: string;
  kind: string;
  /** ObjectSerializer's type name, e.g. V1Ingress. */
  type: string;
  /** The watch path: all namespaces, or the one given. */
  path: string;
  fieldSelector?: string;
  list: () => Promise<KubernetesListObject<KubernetesObject>>;
}

function resources(kc: KubeConfig, namespace: string | undefined, endpoints: 'EndpointSlice' | 'Endpoints'): Resource[] {
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const disc = kc.makeApiClient(DiscoveryV1Api);
  const ns = namespace;
  const where = (prefix: string, plural: string) => (ns === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${ns}/${plural}`);
  const list: Resource[] = [
    {
      field: 'ingresses', plural: 'Ingresses', apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', type: 'V1Ingress',
      path: where('/apis/networking.k8s.io/v1', 'ingresses'),
      list: () => (ns === undefined ? net.listIngressForAllNamespaces() : net.listNamespacedIngress({ namespace: ns })),
    },
    {
      field: 'ingressClasses', plural: 'IngressClasses', apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', type: 'V1IngressClass',
      path: '/apis/networking.k8s.io/v1/ingressclasses',
      list: () => net.listIngressClass(),
    },
    {
      field: 'services', plural: 'Services', apiVersion: 'v1', kind: 'Service', type: 'V1Service',
      path: where('/api/v1', 'services'),
      list: () => (ns === undefined ? core.listServiceForAllNamespaces() : core.listNamespacedService({ namespace: ns })),
    },
    endpoints === 'EndpointSlice'
      ? {
          field: 'endpointSlices', plural: 'EndpointSlices', apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', type: 'V1EndpointSlice',
          path: where('/apis/discovery.k8s.io/v1', 'endpointslices'),
          list: () => (ns === undefined ? disc.listEndpointSliceForAllNamespaces() : disc.listNamespacedEndpointSlice({ namespace: ns })),
        }
      : {
          field: 'endpoints', plural: 'Endpoints', apiVersion: 'v1', kind: 'Endpoints', type: 'V1Endpoints',
          path: where('/api/v1', 'endpoints'),
          list: () => (ns === undefined ? core.listEndpointsForAllNamespaces() : core.listNamespacedEndpoints({ namespace: ns })),
        },
    ...SECRET_TYPES.map(({ fieldSelector, plural }): Resource => ({
      field: 'secrets', plural, apiVersion: 'v1', kind: 'Secret', type: 'V1Secret',
      path: where('/api/v1', 'secrets'),
      fieldSelector,
      list: () =>
        ns === undefined
          ? core.listSecretForAllNamespaces({ fieldSelector })
          : core.listNamespacedSecret({ namespace: ns, fieldSelector }),
    })),
  ];
  return list;
}

/** A Watch whose events carry typed objects, as the generated list functions return them. */
class TypedWatch extends Watch {
  private readonly type: string;
  constructor(kc: KubeConfig, type: string) {
    super(kc);
    this.type = type;
  }
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, raw) => callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : slim(ObjectSerializer.deserialize(obj, this.type)), raw),
      done,
    );
  }
}

/** What the source needs from its owner, per resource. */
interface Owner {
  readonly logger: Logger;
  readonly kubeConfig: KubeConfig;
  readonly retry: { initialMs: number; maxMs: number };
  changed(): void;
  failed(err: Error): void;
}

/**
 * One resource: the ListWatch whose cache serves snapshots (`current`), and the restarts after it
 * fails. A restart builds a new ListWatch; its first list is compared with the cache it replaces,
 * so what changed while nothing was watching (deletions included) is reported once.
 */
class ResourceWatch {
  readonly res: Resource;
  private readonly owner: Owner;
  /** The ListWatch whose cache is served; undefined until the first list succeeded. */
  private current: ListWatch<KubernetesObject> | undefined;
  /** A ListWatch being started to replace `current`. */
  private attempt: ListWatch<KubernetesObject> | undefined;
  /** Per namespace/name, what about the object counts as a change (see fingerprint()). */
  private fingerprints = new Map<string, string>();
  private failures = 0;
  private failingSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** ListWatches already counted as failed: one ListWatch can report more than one error. */
  private readonly dead = new WeakSet<ListWatch<KubernetesObject>>();
  private resolveSynced!: () => void;
  private rejectSynced!: (err: Error) => void;
  /** Resolves on the first successful list; rejects if stopped before. */
  readonly synced: Promise<void>;

  constructor(res: Resource, owner: Owner) {
    this.res = res;
    this.owner = owner;
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // Nobody may be waiting yet (stop() during discovery): the rejection must not go unhandled.
    this.synced.catch(() => {});
  }

  start(): void {
    this.running = this.run();
  }

  list(): KubernetesObject[] {
    return [...(this.current?.list() ?? [])];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.rejectSynced(new Error(`stopped before the first list of ${this.res.plural}`));
    await Promise.all([this.current?.stop(), this.attempt?.stop()]);
    await this.running;
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const { res } = this;
    const listFn = async () => {
      const list = await res.list();
      for (const item of list.items) {
        item.apiVersion ??= res.apiVersion;
        item.kind ??= res.kind;
        slim(item);
      }
      return list;
    };
    // What makeInformer() builds, plus the field selector it cannot pass.
    const lw = new ListWatch<KubernetesObject>(res.path, new TypedWatch(this.owner.kubeConfig, res.type), listFn, false, undefined, res.fieldSelector);
    this.attempt = lw;
    lw.on('error', (err: unknown) => this.fail(lw, err));
    lw.on('add', (obj) => this.event(lw, obj, false));
    lw.on('update', (obj) => this.event(lw, obj, false));
    lw.on('delete', (obj) => this.event(lw, obj, true));
    try {
      // Lists, then connects the watch. A failure is reported through 'error' (and start()
      // still resolves), or, rarely, by a rejection.
      await lw.start();
    } catch (err) {
      this.fail(lw, err);
    }
    if (this.stopped) {
      // ListWatch connects its watch even when stopped during the list.
      await lw.stop();
      return;
    }
    if (!this.dead.has(lw) && lw.latestResourceVersion() === '') this.fail(lw, new Error(`the list of ${res.plural} had no resourceVersion`));
    if (this.attempt === lw) this.attempt = undefined;
    if (!this.dead.has(lw)) this.swap(lw);
  }

  /** `lw` has listed and is watching: its cache replaces the served one. */
  private swap(lw: ListWatch<KubernetesObject>): void {
    const old = this.current;
    this.current = lw;
    void old?.stop();
    const fresh = new Map<string, string>();
    for (const obj of lw.list()) fresh.set(keyOf(obj), fingerprint(this.res, obj));
    const changed = !sameMap(this.fingerprints, fresh);
    this.fingerprints = fresh;
    if (this.failingSince !== undefined) {
      this.owner.logger.info(`Kubernetes API: watching ${this.res.plural} again`, {
        resource: this.res.kind,
        downMs: Date.now() - this.failingSince,
        retries: this.failures,
        changed,
      });
    }
    this.failingSince = undefined;
    this.failures = 0;
    this.resolveSynced();
    if (changed && old !== undefined) this.owner.changed();
  }

  private event(lw: ListWatch<KubernetesObject>, obj: KubernetesObject, deleted: boolean): void {
    // A replacement's first list is compared whole in swap(); an old ListWatch is done.
    if (lw !== this.current || this.stopped) return;
    const key = keyOf(obj);
    let changed: boolean;
    if (deleted) {
      changed = this.fingerprints.delete(key);
    } else {
      const fp = fingerprint(this.res, obj);
      changed = this.fingerprints.get(key) !== fp;
      this.fingerprints.set(key, fp);
    }
    if (changed) this.owner.changed();
  }

  /** `lw` failed: keep the cache, log once per outage, and try a new ListWatch after a backoff. */
  private fail(lw: ListWatch<KubernetesObject>, raw: unknown): void {
    if (this.stopped || this.dead.has(lw) || (lw !== this.current && lw !== this.attempt)) return;
    this.dead.add(lw);
    void lw.stop();
    const err = asError(raw);
    this.owner.failed(err);
    const delayMs = backoffDelay(this.failures, Math.random(), this.owner.retry);
    this.failures++;
    const meta = { resource: this.res.kind, error: describe(err), retryInMs: delayMs };
    if (this.failingSince === undefined) {
      this.failingSince = Date.now();
      this.owner.logger.error(
        this.current
          ? `Kubernetes API: watching ${this.res.plural} failed; retrying with backoff, the last known ones keep serving`
          : `Kubernetes API: cannot list ${this.res.plural}; retrying with backoff`,
        meta,
      );
    } else {
      this.owner.logger.debug(`Kubernetes API: ${this.res.plural} still failing`, { ...meta, retries: this.failures });
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.run();
    }, delayMs);
  }
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
  private onChange: (() => void) | undefined;
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

  async start(onChange: () => void): Promise<void> {
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
      changed: () => this.changed(),
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
      endpointsFrom: kind === 'EndpointSlice' ? 'discovery.k8s.io/v1 EndpointSlices' : 'core/v1 Endpoints (discovery.k8s.io/v1 is not served)',
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
          this.logger.info('Kubernetes API: discovery answers again', { downMs: Date.now() - failingSince, retries: attempt });
        }
        return groups;
      } catch (raw) {
        if (this.stopped) throw stoppedError();
        const err = asError(raw);
        this.failed(err);
        const delayMs = backoffDelay(attempt, Math.random(), this.retry);
        if (failingSince === undefined) {
          failingSince = Date.now();
          this.logger.error('Kubernetes API: discovery failed; retrying with backoff', { error: describe(err), retryInMs: delayMs });
        } else {
          this.logger.debug('Kubernetes API: discovery still failing', { error: describe(err), retryInMs: delayMs, retries: attempt + 1 });
        }
        await sleep(delayMs, undefined, { signal: this.abort.signal }).catch(() => {});
      }
    }
  }

  private changed(): void {
    if (!this.synced || this.stopped) return;
    try {
      this.onChange?.();
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

function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
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

/**
 * What about an object counts as a change: everything but its resourceVersion and managedFields
 * (and apiVersion/kind, which lists leave out). Endpoints' annotations are left out too: older
 * control planes renew leader-election locks there every few seconds, and translation does not
 * read them. Hashed, so that the cache is not held twice.
 */
function fingerprint(res: Resource, obj: KubernetesObject): string {
  const meta = obj.metadata ?? {};
  const { resourceVersion: _rv, managedFields: _mf, ...keep } = meta;
  if (res.kind === 'Endpoints') delete keep.annotations;
  return createHash('sha256')
    .update(JSON.stringify({ ...obj, apiVersion: undefined, kind: undefined, metadata: keep }))
    .digest('base64');
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * What the cache need not hold of a Secret: its managedFields, and the copy of the whole object
 * (data included) that `kubectl apply` keeps in an annotation; nothing downstream reads either.
 * In place; returns `obj`. Other kinds are kept whole.
 */
function slim<T extends KubernetesObject>(obj: T): T {
  if (obj.kind !== 'Secret') return obj;
  const meta = obj.metadata;
  if (meta) {
    delete meta.managedFields;
    if (meta.annotations?.[LAST_APPLIED] !== undefined) {
      const { [LAST_APPLIED]: _dropped, ...rest } = meta.annotations;
      meta.annotations = rest;
    }
  }
  return obj;
}

function sameMap(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
}

