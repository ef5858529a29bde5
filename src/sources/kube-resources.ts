// What the Kubernetes source watches: one Resource per list (Ingress, IngressClass, Service,
// EndpointSlice or Endpoints, two Secret types), how it is listed and watched, and what of each
// object is kept (slim()) and compared (fingerprint()).
//
// Objects. The generated list functions return typed objects (Dates for timestamps), watch
// events raw JSON; watch objects are deserialized with the same serializer, so both look alike
// downstream and compare equal when nothing changed. Listed items get the apiVersion and kind
// the API server leaves out of lists.
import { createHash } from 'node:crypto';
import {
  CoreV1Api,
  DiscoveryV1Api,
  NetworkingV1Api,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1APIGroupList,
} from '@kubernetes/client-node';
// Not re-exported by the package index; the generated clients deserialize lists with it.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import type { Snapshot } from './snapshot.ts';

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

/**
 * Which object feeds the upstreams: EndpointSlices where the API serves discovery.k8s.io/v1
 * (Kubernetes 1.21 and later), else core/v1 Endpoints (older servers serve only v1beta1 slices,
 * whose shape we do not read). Decided once, at start, from API discovery (GET /apis).
 */
export function endpointsKind(groups: V1APIGroupList): 'EndpointSlice' | 'Endpoints' {
  const discovery = groups.groups.find((g) => g.name === 'discovery.k8s.io');
  return discovery?.versions.some((v) => v.version === 'v1') ? 'EndpointSlice' : 'Endpoints';
}

/** One watched resource: where it lives and how to list it. */
export interface Resource {
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

export function resources(
  kc: KubeConfig,
  namespace: string | undefined,
  endpoints: 'EndpointSlice' | 'Endpoints',
): Resource[] {
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const disc = kc.makeApiClient(DiscoveryV1Api);
  const ns = namespace;
  const where = (prefix: string, plural: string) =>
    ns === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${ns}/${plural}`;
  const list: Resource[] = [
    {
      field: 'ingresses',
      plural: 'Ingresses',
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      type: 'V1Ingress',
      path: where('/apis/networking.k8s.io/v1', 'ingresses'),
      list: () => (ns === undefined ? net.listIngressForAllNamespaces() : net.listNamespacedIngress({ namespace: ns })),
    },
    {
      field: 'ingressClasses',
      plural: 'IngressClasses',
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      type: 'V1IngressClass',
      path: '/apis/networking.k8s.io/v1/ingressclasses',
      list: () => net.listIngressClass(),
    },
    {
      field: 'services',
      plural: 'Services',
      apiVersion: 'v1',
      kind: 'Service',
      type: 'V1Service',
      path: where('/api/v1', 'services'),
      list: () =>
        ns === undefined ? core.listServiceForAllNamespaces() : core.listNamespacedService({ namespace: ns }),
    },
    endpoints === 'EndpointSlice'
      ? {
          field: 'endpointSlices',
          plural: 'EndpointSlices',
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          type: 'V1EndpointSlice',
          path: where('/apis/discovery.k8s.io/v1', 'endpointslices'),
          list: () =>
            ns === undefined
              ? disc.listEndpointSliceForAllNamespaces()
              : disc.listNamespacedEndpointSlice({ namespace: ns }),
        }
      : {
          field: 'endpoints',
          plural: 'Endpoints',
          apiVersion: 'v1',
          kind: 'Endpoints',
          type: 'V1Endpoints',
          path: where('/api/v1', 'endpoints'),
          list: () =>
            ns === undefined ? core.listEndpointsForAllNamespaces() : core.listNamespacedEndpoints({ namespace: ns }),
        },
    ...SECRET_TYPES.map(({ fieldSelector, plural }): Resource => ({
      field: 'secrets',
      plural,
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'V1Secret',
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
export class TypedWatch extends Watch {
  private readonly type: string;
  constructor(kc: KubeConfig, type: string) {
    super(kc);
    this.type = type;
  }
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    /* eslint-disable @typescript-eslint/no-explicit-any -- client-node's Watch.watch signature, overridden as declared */
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
    /* eslint-enable @typescript-eslint/no-explicit-any */
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, raw) =>
        callback(
          phase,
          phase === 'ERROR' || phase === 'BOOKMARK' ? obj : slim(ObjectSerializer.deserialize(obj, this.type)),
          raw,
        ),
      done,
    );
  }
}

/**
 * What about an object counts as a change: everything but its resourceVersion and managedFields
 * (and apiVersion/kind, which lists leave out). Endpoints' annotations are left out too: older
 * control planes renew leader-election locks there every few seconds, and translation does not
 * read them. Hashed, so that the cache is not held twice.
 */
export function fingerprint(res: Resource, obj: KubernetesObject): string {
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
export function slim<T extends KubernetesObject>(obj: T): T {
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
