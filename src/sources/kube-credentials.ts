// Which Kubernetes API to talk to, with which credentials: the kubeconfig the Kubernetes source
// (and, through it, status and Events) builds its clients from.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

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

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The credentials, in order: the `--kubeconfig` file; in-cluster (the service account's token
 * exists and the kubelet set KUBERNETES_SERVICE_HOST/PORT); KUBECONFIG; ~/.kube/config. Throws
 * when none is there, rather than guessing (client-node's loadFromDefault would fall back to
 * http://localhost:8080).
 */
export function loadKubeConfig(opts: { kubeconfig?: string; env?: KubeEnvironment; serviceAccountDir?: string }): {
  kubeConfig: KubeConfig;
  from: string;
} {
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
      clusters: [
        {
          name: 'inCluster',
          server: `https://${host}:${env.servicePort}`,
          caFile: path.join(saDir, 'ca.crt'),
          skipTLSVerify: false,
        },
      ],
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
