// Configuration from flags and environment. The only module that reads process.env and argv
// (main passes them in, so this stays a pure function).
//
// Every setting is described once, in FLAGS (config-flags.ts). Parsing, the environment variable
// names, validation and the help text are all derived from that table, so they cannot drift apart.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { LogFormat } from './ops/log.ts';
import type { LoadBalancerAddress } from './cluster/publish.ts';
import type { KubeEnvironment } from './sources/kube-credentials.ts';
import type { TranslateOptions } from './translate/index.ts';
import { COMMANDS, DEMO_DEFAULTS, helpText, TABLE, type Flag } from './config-flags.ts';
import { resolvConfNameservers } from './config-values.ts';

export { helpText } from './config-flags.ts';

export type Command = 'run' | 'demo' | 'render';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Config {
  /** Kubernetes API credentials; else in-cluster, else KUBECONFIG or ~/.kube/config. */
  kubeconfig?: string;
  /** Watch only this namespace (IngressClasses are cluster-scoped); all namespaces when unset. */
  namespace?: string;
  /** Directory of manifests to serve instead of the Kubernetes API. */
  watchDir?: string;
  /** A manifest file, or a directory of them, for `render`, which requires it. */
  file?: string;
  /** `render`: check its output with `nginx -t` (and set aside what nginx refuses), as `run` does. */
  nginxCheck: boolean;
  confDir: string;
  httpPort: number;
  httpsPort: number;
  httpsRedirectPort: number;
  /** `namespace/name` of the default certificate's Secret. */
  defaultSslCertificate?: string;
  /** `namespace/name` of the Service that answers what no Ingress's defaultBackend does. */
  defaultBackendService?: string;
  nginxPidFile?: string;
  nginxBinary: string;
  /**
   * The serving nginx's version (`major.minor.patch`), for when the sidecar cannot read it from the
   * master's binary (src/nginx/serving-version.ts); unset: detected.
   */
  nginxVersion?: string;
  ingressClass: string;
  /** Also serve Ingresses that name no class, as ingress-nginx's --watch-ingress-without-class. */
  watchIngressWithoutClass: boolean;
  debounceMs: number;
  maxDelayMs: number;
  /** A reload waits while this many old nginx worker generations still drain (0: no limit). */
  maxDrainingGenerations: number;
  /** The longest a reload waits for draining generations before it goes ahead (and warns). */
  maxDrainWaitMs: number;
  /** Reloads may take at most this percentage of any 10 s of wall time (100: no limit). */
  maxReloadShare: number;
  reloadTimeoutMs: number;
  ipv6: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  listen: string;
  /** Write Ingress status; false leaves it to another controller of the class (Events still go out). */
  updateStatus: boolean;
  /** Ingress status from this Service's load-balancer addresses (or ClusterIP). */
  publishService?: { namespace: string; name: string };
  /** Ingress status from these addresses. */
  publishAddress?: LoadBalancerAddress[];
  /** The Lease that elects the one replica writing status. */
  electionId: string;
  /** Absolute path for the JSON access log, or null to leave access logging to nginx.conf. */
  accessLog: string | null;
  /**
   * Parse and render the configuration-snippet and server-snippet annotations (src/annotations/snippets.ts
   * says what they may contain); off, they are refused and reported.
   */
  allowSnippetAnnotations: boolean;
  /** A canary Ingress may split the traffic of a main Ingress in another namespace (off: own namespace only). */
  allowCrossNamespaceCanary: boolean;
  /** Ingresses of several namespaces may share a host (off: one namespace per host, the oldest Ingress's). */
  allowCrossNamespaceHosts: boolean;
  /**
   * DNS servers for nginx's `resolver` (ExternalName Services), as nginx takes them. parseConfig
   * fills it from resolv.conf when neither the flag nor its variable is given; empty: none.
   */
  resolver?: string[];
  /** How endpoint changes reach nginx: src/sync/endpoint-mode.ts decides `auto`. */
  endpointsMode: 'auto' | 'dns' | 'reload';
  /** The DNS responder's loopback port (dns mode). */
  dnsPort: number;
  /** The loopback port (and the next, for TLS) of nginx's 503 servers for Services without endpoints. */
  unavailablePort: number;
  once: boolean;
}

export type ParseResult =
  | { kind: 'help'; text: string }
  | {
      kind: 'ok';
      command: Command;
      config: Config;
      rest: string[];
      kubeEnv: KubeEnvironment;
      pod: PodIdentity;
      /** PATH, where the nginx binary is looked up (findExecutable) when --nginx-binary is a bare name. */
      searchPath: string;
    };

/** A flag or environment variable has a bad value; the message names it and the value. */
export class ConfigError extends Error {
  /** The flag concerned, e.g. `--http-port`, when there is one. */
  readonly flag: string | undefined;
  constructor(message: string, flag?: string) {
    super(message);
    this.name = 'ConfigError';
    this.flag = flag;
  }
}

/** What parseConfig reads of the machine besides the environment (readSystemFiles gives it). */
export interface SystemFiles {
  /** /etc/resolv.conf's text, or null when it cannot be read. */
  resolvConf?: string | null;
}

/** The files parseConfig takes defaults from: read once, at start, here. */
export function readSystemFiles(resolvConfPath = '/etc/resolv.conf'): SystemFiles {
  let resolvConf: string | null = null;
  try {
    resolvConf = readFileSync(resolvConfPath, 'utf8');
  } catch {
    // Not there (or not readable): no default resolver; --resolver still sets one.
  }
  return { resolvConf };
}

export function parseConfig(
  argv: string[],
  env: Record<string, string | undefined>,
  system: SystemFiles = {},
): ParseResult {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const f of TABLE) {
    options[f.name] = {
      type: f.boolean ? 'boolean' : 'string',
      ...(f.spec.short !== undefined ? { short: f.spec.short } : {}),
    };
  }

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: booleanValues(argv),
      options,
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
  } catch (err) {
    // Asking for help works even next to a mistyped flag.
    if (wantsHelp(argv)) return { kind: 'help', text: helpText() };
    throw err instanceof ConfigError ? err : argvError(err);
  }
  const { values, positionals } = parsed;
  if (values['help'] === true) return { kind: 'help', text: helpText() };

  let command: Command = 'run';
  let rest = positionals;
  const first = positionals[0];
  if (first !== undefined) {
    const known = COMMANDS.find((c) => c.name === first);
    if (!known) {
      throw new ConfigError(
        `unknown command "${first}": expected ${COMMANDS.map((c) => c.name).join(', ')} (see --help)`,
      );
    }
    command = known.name;
    rest = positionals.slice(1);
  }

  const config: Record<string, unknown> = {};
  for (const f of TABLE) {
    const flagValue = values[f.name];
    const envValue = env[f.env];
    let value: unknown = command === 'demo' && f.key in DEMO_DEFAULTS ? DEMO_DEFAULTS[f.key] : f.spec.default;
    if (flagValue !== undefined) {
      // parseArgs gives booleans for boolean flags; `parse` converts strings (and env values).
      value = typeof flagValue === 'string' ? convert(f, flagValue, `--${f.name}`) : flagValue;
    } else if (envValue !== undefined && envValue !== '') {
      // An empty variable counts as unset, as manifests often template them in empty.
      value = convert(f, envValue, `${f.env} (--${f.name})`);
    }
    if (value !== undefined) config[f.key] = value;
  }
  // Every field was filled from a parser or a default of the field's own type (see FLAGS).
  const cfg = config as unknown as Config;
  // In a pod, resolv.conf names the cluster DNS: what ingress-nginx resolves ExternalName with.
  if (cfg.resolver === undefined) cfg.resolver = resolvConfNameservers(system.resolvConf ?? '');

  if (cfg.maxDelayMs < cfg.debounceMs) {
    throw new ConfigError(
      `--max-delay-ms (${cfg.maxDelayMs}) must be at least --debounce-ms (${cfg.debounceMs})`,
      '--max-delay-ms',
    );
  }
  // The Kubernetes source's flags are an error where manifest files are served instead: they
  // would be ignored, and the operator would believe the API was watched.
  if ((command === 'run' && cfg.watchDir !== undefined) || command === 'demo') {
    const flag =
      cfg.kubeconfig !== undefined
        ? '--kubeconfig'
        : cfg.namespace !== undefined
          ? '--namespace'
          : cfg.publishService !== undefined
            ? '--publish-service'
            : cfg.publishAddress !== undefined
              ? '--publish-address'
              : undefined;
    if (flag) {
      const files = command === 'demo' ? 'demo serves examples/local' : '--watch-dir serves manifest files';
      throw new ConfigError(`${flag} is for the Kubernetes API source, but ${files}: give one or the other`, flag);
    }
  }
  if (cfg.httpsPort === cfg.httpPort) {
    throw new ConfigError(
      `--https-port and --http-port are both ${cfg.httpPort}: nginx cannot serve both on one port`,
      '--https-port',
    );
  }
  if (cfg.publishService !== undefined && cfg.publishAddress !== undefined) {
    throw new ConfigError('--publish-service and --publish-address are alternatives: give one', '--publish-address');
  }
  if (command === 'render' && cfg.file === undefined) {
    throw new ConfigError('render needs --file (-f): a manifest file or a directory of them', '--file');
  }
  return {
    kind: 'ok',
    command,
    config: cfg,
    rest,
    kubeEnv: kubeEnvironment(env),
    pod: podIdentity(env),
    searchPath: env['PATH'] ?? '',
  };
}

/** Who this replica is, from the Downward API variables the Deployment sets. */
export interface PodIdentity {
  /** POD_NAME, else the host name (a pod's host name is its name). */
  name: string;
  /** POD_NAMESPACE; the caller falls back to the service account's namespace file. */
  namespace?: string;
  /** NODE_NAME, for the Events' source.host. */
  nodeName?: string;
}

function podIdentity(env: Record<string, string | undefined>): PodIdentity {
  const id: PodIdentity = { name: env['POD_NAME'] || os.hostname() };
  if (env['POD_NAMESPACE']) id.namespace = env['POD_NAMESPACE'];
  if (env['NODE_NAME']) id.nodeName = env['NODE_NAME'];
  return id;
}

/** The variables the Kubernetes client's credentials come from (not INGRESS_SIDECAR_* settings). */
function kubeEnvironment(env: Record<string, string | undefined>): KubeEnvironment {
  const out: KubeEnvironment = {};
  const set = (key: keyof KubeEnvironment, value: string | undefined) => {
    if (value !== undefined && value !== '') out[key] = value;
  };
  set('kubeconfigPath', env['KUBECONFIG']);
  set('home', env['HOME']);
  set('serviceHost', env['KUBERNETES_SERVICE_HOST']);
  set('servicePort', env['KUBERNETES_SERVICE_PORT']);
  return out;
}

function convert(f: Flag, raw: string, where: string): unknown {
  try {
    return f.spec.parse(raw);
  } catch (err) {
    throw new ConfigError(`invalid ${where}: ${JSON.stringify(raw)} ${(err as Error).message}`, `--${f.name}`);
  }
}

/** parseArgs' messages, shortened to name the flag; the first line otherwise. */
function argvError(err: unknown): ConfigError {
  const e = err as Error & { code?: string };
  // parseArgs names a flag with an alias as '-f, --file <value>'; a short flag alone as '-f'.
  const m = /'(-[^' ,]+)(?:, (--[^' ]+))?/.exec(e.message);
  const short = TABLE.find((f) => f.spec.short !== undefined && m?.[1] === `-${f.spec.short}`);
  const flag = m?.[2] ?? (short ? `--${short.name}` : m?.[1]);
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag)
    return new ConfigError(`unknown flag ${flag} (see --help)`, flag);
  if (/argument missing/.test(e.message) && flag) return new ConfigError(`${flag} needs a value`, flag);
  if (/ambiguous/.test(e.message) && flag) {
    return new ConfigError(`${flag} needs a value (for one starting with "-", write ${flag}=VALUE)`, flag);
  }
  return new ConfigError(`${e.message.split('\n')[0]} (see --help)`, flag);
}

/**
 * `--flag=VALUE` of a boolean flag as `--flag` or `--no-flag`: parseArgs refuses a value there,
 * and `--update-status=false` is how ingress-nginx's flags (Go's flag package) are written.
 */
function booleanValues(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return argv.map((arg, i) => {
    const m = end !== -1 && i >= end ? null : /^--([a-z0-9-]+)=(.*)$/s.exec(arg);
    const f = m ? TABLE.find((t) => t.boolean && t.name === m[1]) : undefined;
    if (!m || !f) return arg;
    return convert(f, m[2]!, `--${f.name}`) === true ? `--${f.name}` : `--no-${f.name}`;
  });
}

function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** The settings translation takes, from one place for every command. */
export function translateOptions(c: Config): TranslateOptions {
  return {
    ingressClass: c.ingressClass,
    watchIngressWithoutClass: c.watchIngressWithoutClass,
    httpPort: c.httpPort,
    ipv6: c.ipv6,
    accessLog: c.accessLog,
    allowSnippets: c.allowSnippetAnnotations,
    allowCrossNamespaceCanary: c.allowCrossNamespaceCanary,
    allowCrossNamespaceHosts: c.allowCrossNamespaceHosts,
    resolver: c.resolver ?? [],
    ...(c.defaultBackendService !== undefined ? { defaultBackendService: c.defaultBackendService } : {}),
  };
}
