// Test certificates, made with the openssl CLI (synchronously, so that a spec can make them while
// it loads), and Secrets that carry them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { execaSync } from 'execa';

export interface TestCert {
  /** PEM certificate (with the CA after it when signed by one). */
  crt: string;
  /** PEM private key. */
  key: string;
  /** Certificate then key: what the sidecar takes as its default certificate. */
  pem: string;
}

export interface CertOptions {
  cn?: string;
  /** subjectAltName DNS names. */
  dns?: string[];
  days?: number;
  key?: 'ec' | 'rsa' | 'rsa1024';
  /** Signed by this CA (its certificate is appended to crt) instead of self-signed. */
  ca?: TestCert;
  /** Make a CA certificate. */
  isCa?: boolean;
  /** Signed (by `ca`) with SHA-1, which OpenSSL's default security level refuses in a chain. */
  sha1?: boolean;
}

function openssl(dir: string, args: string[]): void {
  const r = execaSync('openssl', args, { cwd: dir, reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${String(r.stderr)}`);
}

export function makeCert(opts: CertOptions = {}): TestCert {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spec-cert-'));
  try {
    const keyArgs =
      opts.key === 'rsa'
        ? ['-newkey', 'rsa:2048']
        : opts.key === 'rsa1024'
          ? ['-newkey', 'rsa:1024']
          : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
    const subj = `/CN=${opts.cn ?? opts.dns?.[0] ?? 'test'}`;
    const ext = [
      opts.isCa ? 'basicConstraints=critical,CA:TRUE' : 'basicConstraints=critical,CA:FALSE',
      ...(opts.dns?.length ? [`subjectAltName=${opts.dns.map((d) => `DNS:${d}`).join(',')}`] : []),
    ];
    const days = String(opts.days ?? 30);
    if (!opts.ca) {
      openssl(dir, [
        'req',
        '-x509',
        ...keyArgs,
        '-nodes',
        '-keyout',
        'key.pem',
        '-out',
        'crt.pem',
        '-days',
        days,
        '-subj',
        subj,
        ...ext.flatMap((e) => ['-addext', e]),
      ]);
    } else {
      writeFileSync(path.join(dir, 'ca.pem'), opts.ca.crt);
      writeFileSync(path.join(dir, 'ca.key'), opts.ca.key);
      writeFileSync(path.join(dir, 'ext.cnf'), ext.join('\n') + '\n');
      openssl(dir, ['req', '-new', ...keyArgs, '-nodes', '-keyout', 'key.pem', '-out', 'req.csr', '-subj', subj]);
      openssl(dir, [
        'x509',
        '-req',
        '-in',
        'req.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'crt.pem',
        '-days',
        days,
        '-extfile',
        'ext.cnf',
        ...(opts.sha1 ? ['-sha1'] : []),
      ]);
    }
    const crt = readFileSync(path.join(dir, 'crt.pem'), 'utf8') + (opts.ca ? opts.ca.crt : '');
    const key = readFileSync(path.join(dir, 'key.pem'), 'utf8');
    return { crt, key, pem: crt + key };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A kubernetes.io/tls Secret holding the given texts (base64, as the API stores them). */
export function tlsSecret(
  name: string,
  crt: string,
  key: string,
  opts: { namespace?: string; type?: string } = {},
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: opts.namespace ?? 'default' },
    type: opts.type ?? 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(crt).toString('base64'), 'tls.key': Buffer.from(key).toString('base64') },
  };
}

/** The same Secret as YAML for the directory source. */
export function tlsSecretYaml(name: string, cert: Pick<TestCert, 'crt' | 'key'>, namespace = 'default'): string {
  return `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: ${namespace}}
type: kubernetes.io/tls
data:
  tls.crt: ${Buffer.from(cert.crt).toString('base64')}
  tls.key: ${Buffer.from(cert.key).toString('base64')}
`;
}
