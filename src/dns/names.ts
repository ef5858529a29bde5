// Placeholder until the DNS responder lands (p-dns owns this file).
export const ENDPOINTS_DOMAIN = 'endpoints.ingress-sidecar.internal';
export function serviceHost(namespace: string, service: string, port: number): string {
  return `p${port}.${service}.${namespace}.${ENDPOINTS_DOMAIN}`;
}
