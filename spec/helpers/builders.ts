// Small builders for Kubernetes objects, so that a test says only what matters to it.
import type { V1EndpointSlice, V1Endpoints, V1Ingress, V1IngressClass, V1Service } from '@kubernetes/client-node';
import { emptySnapshot, type Snapshot } from '../../src/sources/snapshot.ts';

type PathType = 'Exact' | 'Prefix' | 'ImplementationSpecific';

export interface PathSpec {
  path?: string;
  pathType?: PathType;
  service: string;
  port: number | string;
}

export function path(p: string, pathType: PathType, service: string, port: number | string = 80): PathSpec {
  return { path: p, pathType, service, port };
}

function backend(service: string, port: number | string) {
  return { service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } };
}

export function rule(host: string | undefined, ...paths: PathSpec[]) {
  return {
    ...(host !== undefined ? { host } : {}),
    http: { paths: paths.map((p) => ({ path: p.path, pathType: p.pathType, backend: backend(p.service, p.port) })) },
  };
}

export interface IngressOpts {
  namespace?: string;
  className?: string | null;
  annotations?: Record<string, string>;
  /** Seconds after an arbitrary epoch; older Ingresses win conflicts. */
  age?: number;
  defaultBackend?: { service: string; port: number | string };
  tls?: Array<{ hosts?: string[]; secretName?: string }>;
}

export function ingress(name: string, rules: ReturnType<typeof rule>[], opts: IngressOpts = {}): V1Ingress {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      name,
      namespace: opts.namespace ?? 'default',
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
      ...(opts.age !== undefined ? { creationTimestamp: new Date(Date.UTC(2025, 0, 1) + opts.age * 1000) } : {}),
    },
    spec: {
      ...(opts.className === null ? {} : { ingressClassName: opts.className ?? 'nginx' }),
      ...(opts.defaultBackend
        ? { defaultBackend: backend(opts.defaultBackend.service, opts.defaultBackend.port) }
        : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
      rules,
    },
  } as V1Ingress;
}

export function ingressClass(name: string, isDefault: boolean): V1IngressClass {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'IngressClass',
    metadata: {
      name,
      ...(isDefault ? { annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } } : {}),
    },
    spec: { controller: 'ingress-sidecar.dev/controller' },
  };
}

export function service(
  name: string,
  ports: Array<{ name?: string; port: number }>,
  opts: { namespace?: string; type?: string } = {},
): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace ?? 'default' },
    spec: { ...(opts.type ? { type: opts.type } : {}), ports: ports.map((p) => ({ ...p, protocol: 'TCP' })) },
  };
}

export function slice(
  serviceName: string,
  port: { name?: string; port: number },
  endpoints: Array<string | { ip: string; ready?: boolean }>,
  opts: { namespace?: string; name?: string; addressType?: string } = {},
): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: opts.name ?? `${serviceName}-abc`,
      namespace: opts.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': serviceName },
    },
    addressType: opts.addressType ?? 'IPv4',
    ports: [{ ...(port.name !== undefined ? { name: port.name } : {}), port: port.port, protocol: 'TCP' }],
    endpoints: endpoints.map((e) =>
      typeof e === 'string'
        ? { addresses: [e] }
        : { addresses: [e.ip], ...(e.ready !== undefined ? { conditions: { ready: e.ready } } : {}) },
    ),
  };
}

export function endpoints(
  serviceName: string,
  port: { name?: string; port: number },
  ips: string[],
  notReady: string[] = [],
): V1Endpoints {
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: serviceName, namespace: 'default' },
    subsets: [
      {
        addresses: ips.map((ip) => ({ ip })),
        notReadyAddresses: notReady.map((ip) => ({ ip })),
        ports: [{ ...(port.name !== undefined ? { name: port.name } : {}), port: port.port }],
      },
    ],
  };
}

/** A Service named `name` with one port 80 ("http") and one ready endpoint. */
export function backendService(name: string, ip = '10.0.0.1', targetPort = 8080) {
  return {
    service: service(name, [{ name: 'http', port: 80 }]),
    slice: slice(name, { name: 'http', port: targetPort }, [ip]),
  };
}

export function snapshot(
  parts: Partial<Snapshot> & { backends?: Array<ReturnType<typeof backendService>> } = {},
): Snapshot {
  const snap = { ...emptySnapshot(), ...parts };
  for (const b of parts.backends ?? []) {
    snap.services = [...snap.services, b.service];
    snap.endpointSlices = [...snap.endpointSlices, b.slice];
  }
  delete (snap as { backends?: unknown }).backends;
  return snap;
}
