// The settings table: every flag, its environment variable, default, parser and help, described
// once (FLAGS); config.ts parses from it and helpText() prints it, so they cannot drift apart.
import type { Command, Config } from './config.ts';
import { DEFAULT_ELECTION_ID, parsePublishAddresses, parsePublishService } from './cluster/publish.ts';
import { isDnsSubdomain } from './grammar.ts';
import { parseNginxVersion } from './nginx/version.ts';
import {
  DEFAULT_MAX_DRAIN_WAIT_MS,
  DEFAULT_MAX_DRAINING_GENERATIONS,
  DEFAULT_MAX_RELOAD_SHARE_PERCENT,
  RELOAD_WINDOW_MS,
} from './sync/pacing.ts';
import {
  accessLogPath,
  boolean,
  count,
  dns1123Label,
  dns1123Subdomain,
  hostPort,
  milliseconds,
  namespacedName,
  nonEmpty,
  oneOf,
  percent,
  plainPath,
  port,
  portOrZero,
  resolverList,
} from './config-values.ts';

const PROGRAM = 'ingress-sidecar';
const ENV_PREFIX = 'INGRESS_SIDECAR_';

export const COMMANDS: ReadonlyArray<{ name: Command; help: string }> = [
  { name: 'run', help: 'watch the Kubernetes API (or --watch-dir) and keep nginx configured and reloaded (default)' },
  { name: 'demo', help: 'start a local nginx and echo backends, and serve examples/local (edit it live)' },
  {
    name: 'render',
    help: 'print the nginx config the --file manifests produce and what they get rejected for, then exit',
  },
];

export interface FlagSpec<K extends keyof Config> {
  /** Metavariable shown in help for a flag that takes a value; absent for a boolean flag. */
  arg?: string;
  /** A one-letter alias, e.g. `f` for `-f`. */
  short?: string;
  help: string;
  default: Config[K];
  /** Help text for the default when `String(default)` is not the right thing to show. */
  defaultText?: string;
  /** Validates and converts a raw value; throws an Error whose message says what is wrong. */
  parse: (raw: string) => Config[K];
}

/**
 * The table. Keyed by Config field (typed so that every field has exactly one descriptor, and each
 * parser returns that field's type); the flag is the field in kebab case (`httpPort` ->
 * `--http-port`) and the environment variable is INGRESS_SIDECAR_ + upper snake case. Key order is
 * the help order.
 */
export const FLAGS: { [K in keyof Config]-?: FlagSpec<K> } = {
  kubeconfig: {
    arg: 'FILE',
    help: 'Kubernetes API credentials (default: in-cluster, else KUBECONFIG or ~/.kube/config)',
    default: undefined,
    defaultText: '(in-cluster)',
    parse: nonEmpty,
  },
  namespace: {
    arg: 'NS',
    help: 'watch only namespace NS (IngressClasses are cluster-wide)',
    default: undefined,
    defaultText: '(all)',
    parse: dns1123Label,
  },
  watchDir: {
    arg: 'DIR',
    help: 'serve the manifests (YAML/JSON) in DIR, watched for changes, instead of the Kubernetes API',
    default: undefined,
    defaultText: '(none: the API)',
    parse: nonEmpty,
  },
  file: {
    arg: 'FILE|DIR',
    short: 'f',
    help: 'render: the manifests (YAML/JSON) in FILE, or in every manifest file under DIR',
    default: undefined,
    defaultText: '(required for render)',
    parse: nonEmpty,
  },
  nginxCheck: {
    help: 'render: check the output with nginx -t in a temporary directory, as run does (--no-nginx-check: skip it)',
    default: true,
    parse: boolean,
  },
  confDir: {
    arg: 'DIR',
    help: "nginx's conf.d: the sidecar owns the files in it",
    default: '/etc/nginx/conf.d',
    parse: plainPath,
  },
  httpPort: { arg: 'N', help: 'port nginx listens on for HTTP', default: 80, parse: port },
  httpsPort: { arg: 'N', help: 'port nginx listens on for HTTPS; 0 serves HTTP only', default: 443, parse: portOrZero },
  httpsRedirectPort: {
    arg: 'N',
    help: 'the HTTPS port clients see, for HTTP -> HTTPS redirects',
    default: 443,
    parse: port,
  },
  defaultSslCertificate: {
    arg: 'NS/NAME',
    help: 'kubernetes.io/tls Secret for unknown names and unusable Secrets (else self-signed)',
    default: undefined,
    defaultText: '(self-signed)',
    parse: namespacedName,
  },
  defaultBackendService: {
    arg: 'NS/NAME',
    help: "Service whose first port answers what no Ingress's defaultBackend does (else 404)",
    default: undefined,
    defaultText: '(404)',
    parse: namespacedName,
  },
  nginxPidFile: {
    arg: 'FILE',
    help: "the nginx master's pid file",
    default: undefined,
    defaultText: '(none)',
    parse: nonEmpty,
  },
  nginxBinary: { arg: 'PATH', help: 'nginx binary used to check configurations', default: 'nginx', parse: nonEmpty },
  nginxVersion: {
    arg: 'VERSION',
    help: "the serving nginx's version (e.g. 1.30.4), for when its binary cannot be read (nginx runs as another user)",
    default: undefined,
    defaultText: "(read from the master's binary)",
    parse: (raw) => {
      const v = /^(?:nginx\/)?\d+\.\d+\.\d+$/.test(raw) ? parseNginxVersion(raw) : null;
      if (!v) throw new Error('is not an nginx version (MAJOR.MINOR.PATCH, as nginx -v prints it: 1.30.4)');
      return v.join('.');
    },
  },
  ingressClass: {
    arg: 'NAME',
    help: 'serve Ingresses of this IngressClass',
    default: 'nginx',
    parse: dns1123Subdomain,
  },
  watchIngressWithoutClass: {
    help: 'also serve Ingresses that name no class (no ingressClassName, no kubernetes.io/ingress.class)',
    default: false,
    parse: boolean,
  },
  debounceMs: { arg: 'N', help: 'quiet time (ms) after a change before syncing', default: 100, parse: milliseconds },
  maxDelayMs: {
    arg: 'N',
    help: 'longest wait (ms) to sync while changes keep coming; a reload may wait longer for nginx (--max-draining-generations, --max-reload-share)',
    default: 1000,
    parse: milliseconds,
  },
  maxDrainingGenerations: {
    arg: 'N',
    help: 'a reload waits while N old nginx worker generations are still draining (0: no limit)',
    default: DEFAULT_MAX_DRAINING_GENERATIONS,
    parse: count,
  },
  maxDrainWaitMs: {
    arg: 'N',
    help: 'longest wait (ms) for draining workers; then the reload goes ahead, with a warning',
    default: DEFAULT_MAX_DRAIN_WAIT_MS,
    parse: milliseconds,
  },
  maxReloadShare: {
    arg: 'PERCENT',
    help: `reloads may take at most PERCENT of any ${RELOAD_WINDOW_MS / 1000} s of wall time (100: no limit)`,
    default: DEFAULT_MAX_RELOAD_SHARE_PERCENT,
    parse: percent,
  },
  reloadTimeoutMs: { arg: 'N', help: 'how long (ms) to wait for nginx to reload', default: 5000, parse: milliseconds },
  ipv6: { help: 'also listen on [::]', default: true, parse: boolean },
  logLevel: {
    arg: 'LEVEL',
    help: 'error, warn, info or debug',
    default: 'info',
    parse: oneOf(['error', 'warn', 'info', 'debug']),
  },
  logFormat: { arg: 'FORMAT', help: 'json or text', default: 'json', parse: oneOf(['json', 'text']) },
  listen: {
    arg: 'HOST:PORT',
    help: 'serve /healthz, /readyz, /metrics and /routes here',
    default: '0.0.0.0:10254',
    parse: hostPort,
  },
  updateStatus: {
    help: "write our Ingresses' status (off: never written, and no Lease is used)",
    default: true,
    parse: boolean,
  },
  publishService: {
    arg: 'NS/NAME',
    help: "write this Service's addresses to our Ingresses' status",
    default: undefined,
    defaultText: '(none)',
    parse: parsePublishService,
  },
  publishAddress: {
    arg: 'ADDR[,ADDR]',
    help: "write these IPs or host names to our Ingresses' status",
    default: undefined,
    defaultText: '(none)',
    parse: parsePublishAddresses,
  },
  electionId: {
    arg: 'NAME',
    help: 'the Lease (in POD_NAMESPACE) electing the replica that writes status',
    default: DEFAULT_ELECTION_ID,
    parse: (raw) => {
      if (!isDnsSubdomain(raw)) throw new Error('is not a valid Lease name (a DNS-1123 subdomain)');
      return raw;
    },
  },
  accessLog: {
    arg: 'PATH',
    help: "nginx's JSON access log for our servers; off leaves it to nginx.conf",
    default: '/dev/stdout',
    parse: accessLogPath,
  },
  allowSnippetAnnotations: {
    help: 'render configuration-snippet and server-snippet annotations (checked nginx directives; any Ingress author may use them)',
    default: false,
    parse: boolean,
  },
  allowCrossNamespaceCanary: {
    help: "let a canary Ingress split the traffic of another namespace's Ingress (off: a canary attaches only in its own namespace)",
    default: false,
    parse: boolean,
  },
  allowCrossNamespaceHosts: {
    help: "let Ingresses of several namespaces share a host, as ingress-nginx does (off: a host is served by its oldest Ingress's namespace)",
    default: false,
    parse: boolean,
  },
  resolver: {
    arg: 'ADDR[,ADDR]',
    help: "DNS servers nginx resolves ExternalName Services' names with (IP[:PORT], IPv6 in brackets)",
    default: undefined,
    defaultText: '(the nameservers of /etc/resolv.conf: the cluster DNS in a pod)',
    parse: resolverList,
  },
  endpointsMode: {
    arg: 'MODE',
    help: "how endpoint changes reach nginx: dns (answers of the sidecar's DNS responder, no reload; nginx >= 1.27.3), reload (written into the files), or auto (dns where the serving nginx can)",
    default: 'auto',
    parse: oneOf(['auto', 'dns', 'reload']),
  },
  dnsPort: {
    arg: 'N',
    help: "loopback UDP and TCP port of the sidecar's DNS responder that nginx asks for endpoints (dns mode)",
    default: 10053,
    parse: port,
  },
  unavailablePort: {
    arg: 'N',
    help: 'loopback ports (N, and N+1 for TLS backends) where nginx answers 503 for a Service without ready endpoints (dns mode)',
    default: 10503,
    parse: (raw) => {
      const n = port(raw);
      if (n > 65534) throw new Error('must be a port below 65535 (the next port is the TLS one)');
      return n;
    },
  },
  once: { help: 'run: render, apply, and exit (for an init container)', default: false, parse: boolean },
};

/**
 * `demo` runs everything on this machine as an unprivileged user might: nginx on a high port, and
 * the sidecar's own state directory (`.run/`) instead of /etc/nginx/conf.d.
 */
export const DEMO_DEFAULTS: Partial<Config> = {
  httpPort: 8080,
  httpsPort: 8443,
  httpsRedirectPort: 8443,
  listen: '127.0.0.1:10254',
};

export interface Flag {
  key: keyof Config;
  /** Long flag name without dashes, e.g. `http-port`. */
  name: string;
  env: string;
  boolean: boolean;
  spec: FlagSpec<keyof Config>;
}

export const TABLE: readonly Flag[] = (Object.keys(FLAGS) as Array<keyof Config>).map((key) => {
  const name = key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
  const spec = FLAGS[key] as FlagSpec<keyof Config>;
  return { key, name, env: ENV_PREFIX + name.toUpperCase().replace(/-/g, '_'), boolean: spec.arg === undefined, spec };
});

export function helpText(): string {
  const rows: string[][] = [['FLAG', 'ENVIRONMENT', 'DEFAULT', 'DESCRIPTION']];
  for (const f of TABLE) {
    const long = f.boolean ? `--[no-]${f.name}` : `--${f.name} ${f.spec.arg}`;
    const flag = f.spec.short !== undefined ? `-${f.spec.short}, ${long}` : long;
    const demo = DEMO_DEFAULTS[f.key];
    const dflt =
      (f.spec.defaultText ?? String(f.spec.default)) + (demo !== undefined ? ` (demo: ${String(demo)})` : '');
    rows.push([flag, f.env, dflt, f.spec.help]);
  }
  rows.push(['-h, --help', '', '', 'show this help']);
  const commandWidth = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `Usage: ${PROGRAM} [${COMMANDS.map((c) => c.name).join('|')}] [flags]`,
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(commandWidth)}  ${c.help}`),
    '',
    'Flags (each can also be set by its environment variable; a flag wins over the environment):',
    ...align(rows).map((l) => '  ' + l),
    '',
  ].join('\n');
}

/** Pads each column to its widest cell; the last column is left ragged. */
function align(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}
