// The objects bench/scale.ts and bench/nginx-config-cost.ts translate: N Ingresses, each one host
// (`app-<i>.scale.test`) with two Prefix paths (`/` and `/api`) to its own Service (one port, an
// EndpointSlice with two ready endpoints); every tenth has TLS for its host from its own
// kubernetes.io/tls Secret, all holding the same certificate (`*.scale.test`).
import type { V1EndpointSlice, V1Ingress, V1Secret, V1Service } from '@kubernetes/client-node';
import type { Snapshot } from '../src/sources/snapshot.ts';

export const TLS_EVERY = 10;
const ns = (i: number) => `team-${i % 20}`;
const host = (i: number) => `app-${i}.scale.test`;

export function ingress(i: number, apiPath = '/api'): V1Ingress {
  const backend = { service: { name: `app-${i}`, port: { name: 'http' } } };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: `app-${i}`, namespace: ns(i), creationTimestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000) },
    spec: {
      ingressClassName: 'nginx',
      ...(i % TLS_EVERY === 0 ? { tls: [{ hosts: [host(i)], secretName: `app-${i}-tls` }] } : {}),
      rules: [
        {
          host: host(i),
          http: {
            paths: [
              { path: '/', pathType: 'Prefix', backend },
              { path: apiPath, pathType: 'Prefix', backend },
            ],
          },
        },
      ],
    },
  };
}

export function snapshotOf(n: number, cert: { crt: string; key: string }): Snapshot {
  const ingresses: V1Ingress[] = [];
  const services: V1Service[] = [];
  const endpointSlices: V1EndpointSlice[] = [];
  const secrets: V1Secret[] = [];
  const crt = Buffer.from(cert.crt).toString('base64');
  const key = Buffer.from(cert.key).toString('base64');
  for (let i = 0; i < n; i++) {
    ingresses.push(ingress(i));
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `app-${i}`, namespace: ns(i) },
      spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    endpointSlices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `app-${i}-1`, namespace: ns(i), labels: { 'kubernetes.io/service-name': `app-${i}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [
        { addresses: ['127.0.0.1'], conditions: { ready: true } },
        { addresses: ['127.0.0.2'], conditions: { ready: true } },
      ],
    });
    if (i % TLS_EVERY === 0) {
      secrets.push({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: `app-${i}-tls`, namespace: ns(i) },
        data: { 'tls.crt': crt, 'tls.key': key },
      });
    }
  }
  return { ingresses, ingressClasses: [], services, endpointSlices, endpoints: [], secrets };
}
