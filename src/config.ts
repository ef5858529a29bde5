// Configuration from flags and environment. The only module that reads process.env and argv
// (main passes them in, so this stays a pure function).
//
// Every setting is described once, in FLAGS below. Parsing, the environment variable names,
// validation and the help text are all derived from that table, so they cannot drift apart.
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { LogFormat } from './ops/log.ts';
import { DEFAULT_ELECTION_ID, parsePublishAddresses, parsePublishService, type LoadBalancerAddress } from './cluster/publish.ts';
import type { KubeEnvironment } from './sources/kube-credentials.ts';
import { isDnsSubdomain } from './grammar.ts';
import type { TranslateOptions } from './translate/index.ts';

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
  nginxPidFile?: string;
  nginxBinary: string;
  ingressClass: string;
  /** Also serve Ingresses that name no class, as ingress-nginx's --watch-ingress-without-class. */
  watchIngressWithoutClass: boolean;
  debounceMs: number;
  maxDelayMs: number;
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
  once: boolean;
}

export type ParseResult =
  | { kind: 'help'; text: string }
  | { kind: 'ok'; command: Command; config: Config; rest: string[]; kubeEnv: KubeEnvironment; pod: PodIdentity };

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

const PROGRAM = 'ingress-sidecar';
const ENV_PREFIX = 'INGRESS_SIDECAR_';

const COMMANDS: ReadonlyArray<{ name: Command; help: string }> = [
  { name: 'run', help: 'watch the Kubernetes API (or --watch-dir) and keep nginx configured and reloaded (default)' },
  { name: 'demo', help: 'start a local nginx and echo backends, and serve examples/local (edit it live)' },
  { name: 'render', help: 'print the nginx config the --file manifests produce and what they get rejected for, then exit' },
];

interface FlagSpec<K extends keyof Config> {
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
const FLAGS: { [K in keyof Config]-?: FlagSpec<K> } = {
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
  confDir: { arg: 'DIR', help: "nginx's conf.d: the sidecar owns the files in it", default: '/etc/nginx/conf.d', parse: plainPath },
  httpPort: { arg: 'N', help: 'port nginx listens on for HTTP', default: 80, parse: port },
  httpsPort: { arg: 'N', help: 'port nginx listens on for HTTPS; 0 serves HTTP only', default: 443, parse: portOrZero },
  httpsRedirectPort: { arg: 'N', help: 'the HTTPS port clients see, for HTTP -> HTTPS redirects', default: 443, parse: port },
  defaultSslCertificate: {
    arg: 'NS/NAME',
    help: 'kubernetes.io/tls Secret for unknown names and unusable Secrets (else self-signed)',
    default: undefined,
    defaultText: '(self-signed)',
    parse: namespacedName,
  },
  nginxPidFile: { arg: 'FILE', help: "the nginx master's pid file", default: undefined, defaultText: '(none)', parse: nonEmpty },
  nginxBinary: { arg: 'PATH', help: 'nginx binary used to check configurations', default: 'nginx', parse: nonEmpty },
  ingressClass: { arg: 'NAME', help: 'serve Ingresses of this IngressClass', default: 'nginx', parse: dns1123Subdomain },
  watchIngressWithoutClass: { help: 'also serve Ingresses that name no class (no ingressClassName, no kubernetes.io/ingress.class)', default: false, parse: boolean },
  debounceMs: { arg: 'N', help: 'quiet time (ms) after a change before syncing', default: 100, parse: milliseconds },
  maxDelayMs: { arg: 'N', help: 'longest wait (ms) to sync while changes keep coming; also the least time between passes after a burst of two', default: 1000, parse: milliseconds },
  reloadTimeoutMs: { arg: 'N', help: 'how long (ms) to wait for nginx to reload', default: 5000, parse: milliseconds },
  ipv6: { help: 'also listen on [::]', default: true, parse: boolean },
  logLevel: { arg: 'LEVEL', help: 'error, warn, info or debug', default: 'info', parse: oneOf(['error', 'warn', 'info', 'debug']) },
  logFormat: { arg: 'FORMAT', help: 'json or text', default: 'json', parse: oneOf(['json', 'text']) },
  listen: { arg: 'HOST:PORT', help: 'serve /healthz, /readyz, /metrics and /routes here', default: '0.0.0.0:10254', parse: hostPort },
  updateStatus: { help: "write our Ingresses' status (off: never written, and no Lease is used)", default: true, parse: boolean },
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
  once: { help: 'run: render, apply, and exit (for an init container)', default: false, parse: boolean },
};

/**
 * `demo` runs everything on this machine as an unprivileged user might: nginx on a high port, and
 * the sidecar's own state directory (`.run/`) instead of /etc/nginx/conf.d.
 */
const DEMO_DEFAULTS: Partial<Config> = { httpPort: 8080, httpsPort: 8443, httpsRedirectPort: 8443, listen: '127.0.0.1:10254' };

interface Flag {
  key: keyof Config;
  /** Long flag name without dashes, e.g. `http-port`. */
  name: string;
  env: string;
  boolean: boolean;
  spec: FlagSpec<keyof Config>;
}

const TABLE: readonly Flag[] = (Object.keys(FLAGS) as Array<keyof Config>).map((key) => {
  const name = key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
  const spec = FLAGS[key] as FlagSpec<keyof Config>;
  return { key, name, env: ENV_PREFIX + name.toUpperCase().replace(/-/g, '_'), boolean: spec.arg === undefined, spec };
});

export function parseConfig(argv: string[], env: Record<string, string | undefined>): ParseResult {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const f of TABLE) {
    options[f.name] = { type: f.boolean ? 'boolean' : 'string', ...(f.spec.short !== undefined ? { short: f.spec.short } : {}) };
  }

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: booleanValues(argv), options, allowPositionals: true, allowNegative: true, strict: true });
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
      throw new ConfigError(`unknown command "${first}": expected ${COMMANDS.map((c) => c.name).join(', ')} (see --help)`);
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
      cfg.kubeconfig !== undefined ? '--kubeconfig'
      : cfg.namespace !== undefined ? '--namespace'
      : cfg.publishService !== undefined ? '--publish-service'
      : cfg.publishAddress !== undefined ? '--publish-address'
      : undefined;
    if (flag) {
      const files = command === 'demo' ? 'demo serves examples/local' : '--watch-dir serves manifest files';
      throw new ConfigError(`${flag} is for the Kubernetes API source, but ${files}: give one or the other`, flag);
    }
  }
  if (cfg.httpsPort === cfg.httpPort) {
    throw new ConfigError(`--https-port and --http-port are both ${cfg.httpPort}: nginx cannot serve both on one port`, '--https-port');
  }
  if (cfg.publishService !== undefined && cfg.publishAddress !== undefined) {
    throw new ConfigError('--publish-service and --publish-address are alternatives: give one', '--publish-address');
  }
  if (command === 'render' && cfg.file === undefined) {
    throw new ConfigError('render needs --file (-f): a manifest file or a directory of them', '--file');
  }
  return { kind: 'ok', command, config: cfg, rest, kubeEnv: kubeEnvironment(env), pod: podIdentity(env) };
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

export function helpText(): string {
  const rows: string[][] = [['FLAG', 'ENVIRONMENT', 'DEFAULT', 'DESCRIPTION']];
  for (const f of TABLE) {
    const long = f.boolean ? `--[no-]${f.name}` : `--${f.name} ${f.spec.arg}`;
    const flag = f.spec.short !== undefined ? `-${f.spec.short}, ${long}` : long;
    const demo = DEMO_DEFAULTS[f.key];
    const dflt = (f.spec.defaultText ?? String(f.spec.default)) + (demo !== undefined ? ` (demo: ${String(demo)})` : '');
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
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return new ConfigError(`unknown flag ${flag} (see --help)`, flag);
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

// ---- value parsers: each throws an Error completing the sentence `"<value>" ...` ----

function portOrZero(raw: string): number {
  return raw.trim() === '0' ? 0 : port(raw);
}

function namespacedName(raw: string): string {
  const [ns, name, ...rest] = raw.split('/');
  if (rest.length > 0 || !ns || !name || !DNS1123_LABEL.test(ns) || ns.length > 63 || !isDnsSubdomain(name)) {
    throw new Error('must be NAMESPACE/NAME');
  }
  return raw;
}

function hostPort(raw: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(raw);
  if (!m || Number(m[2]) > 65535) throw new Error('must be HOST:PORT, e.g. 0.0.0.0:10254 or [::]:10254');
  return raw;
}

/** The path reaches nginx.conf: a narrow grammar, no quoting tricks needed. */
function accessLogPath(raw: string): string | null {
  if (raw === 'off') return null;
  if (!/^\/[A-Za-z0-9._/-]+$/.test(raw) || raw.includes('/../')) throw new Error('must be off or an absolute path of letters, digits, ".", "_", "-" and "/"');
  return raw;
}

/**
 * Paths under the conf dir reach nginx.conf (certificate and htpasswd files), in directives that
 * interpolate `$variables`: a narrow grammar, as for --access-log.
 */
function plainPath(raw: string): string {
  nonEmpty(raw);
  if (!/^[A-Za-z0-9._/-]+$/.test(raw) || raw.split('/').includes('..')) {
    throw new Error('must be a path of letters, digits, ".", "_", "-" and "/" (it is written into nginx.conf)');
  }
  return raw;
}

function nonEmpty(raw: string): string {
  if (raw === '') throw new Error('must not be empty');
  return raw;
}

function integer(raw: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`is not ${what}`);
  return Number(raw);
}

function port(raw: string): number {
  return integer(raw, 1, 65535, 'a port number (an integer from 1 to 65535)');
}

function milliseconds(raw: string): number {
  // The ceiling is setTimeout's: longer delays fire at once.
  return integer(raw, 0, 2 ** 31 - 1, 'a non-negative integer number of milliseconds (at most 2147483647)');
}

function boolean(raw: string): boolean {
  const v = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new Error('is not a boolean (true or false)');
}

function oneOf<T extends string>(allowed: readonly T[]): (raw: string) => T {
  return (raw) => {
    const found = allowed.find((a) => a === raw);
    if (found === undefined) throw new Error(`is not one of ${allowed.join(', ')}`);
    return found;
  };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dns1123Label(raw: string): string {
  if (raw.length > 63 || !DNS1123_LABEL.test(raw)) {
    throw new Error('is not a DNS-1123 label (a namespace name: lower-case letters, digits and "-", at most 63 characters)');
  }
  return raw;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function dns1123Subdomain(raw: string): string {
  if (raw.length > 253 || !DNS1123_SUBDOMAIN.test(raw)) {
    throw new Error('is not a DNS-1123 subdomain (lower-case letters, digits, "-" and ".", at most 253 characters)');
  }
  return raw;
}

/** The settings translation takes, from one place for every command. */
export function translateOptions(c: Config): TranslateOptions {
  return { ingressClass: c.ingressClass, watchIngressWithoutClass: c.watchIngressWithoutClass, httpPort: c.httpPort, ipv6: c.ipv6, accessLog: c.accessLog, allowSnippets: c.allowSnippetAnnotations, allowCrossNamespaceCanary: c.allowCrossNamespaceCanary, allowCrossNamespaceHosts: c.allowCrossNamespaceHosts };
}
