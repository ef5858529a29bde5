// The cache shape every source feeds. Nothing downstream knows which source filled it.
import type {
  V1EndpointSlice,
  V1Endpoints,
  V1Ingress,
  V1IngressClass,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';

export interface Snapshot {
  ingresses: V1Ingress[];
  ingressClasses: V1IngressClass[];
  services: V1Service[];
  endpointSlices: V1EndpointSlice[];
  /** core/v1 Endpoints: used for a Service only when no EndpointSlice names it. */
  endpoints: V1Endpoints[];
  secrets: V1Secret[];
}

export function emptySnapshot(): Snapshot {
  return { ingresses: [], ingressClasses: [], services: [], endpointSlices: [], endpoints: [], secrets: [] };
}

/** A source keeps a cache of cluster objects and says when it changed. */
export interface Source {
  /**
   * Starts watching; resolves once the first full read is in the cache. `field` says which part
   * of the snapshot changed when the source knows (an endpoint change is answered without a
   * render); absent: anything may have.
   */
  start(onChange: (field?: keyof Snapshot) => void): Promise<void>;
  /** The current cache. The arrays are fresh copies; the objects must not be mutated. */
  snapshot(): Snapshot;
  stop(): Promise<void>;
}

/** How many objects of each kind a snapshot holds, for the log line a source writes once it has read everything. */
export function snapshotCounts(
  s: Snapshot,
): Record<'ingresses' | 'ingressClasses' | 'services' | 'endpointSlices' | 'endpoints' | 'secrets', number> {
  return {
    ingresses: s.ingresses.length,
    ingressClasses: s.ingressClasses.length,
    services: s.services.length,
    endpointSlices: s.endpointSlices.length,
    endpoints: s.endpoints.length,
    secrets: s.secrets.length,
  };
}
