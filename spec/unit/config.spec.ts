import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TABLE } from '../../src/config-flags.ts';
import { ConfigError, helpText, parseConfig, translateOptions, type Config } from '../../src/config.ts';

const DIR = ['--watch-dir', '/manifests'];

/** Parses argv + env and expects a config (not help). */
function ok(argv: string[], env: Record<string, string | undefined> = {}) {
  const r = parseConfig(argv, env);
  assert.equal(r.kind, 'ok');
  if (r.kind !== 'ok') throw new Error('unreachable');
  return r;
}

/** Expects a ConfigError whose message matches every pattern. */
function fails(argv: string[], env: Record<string, string | undefined>, ...patterns: RegExp[]): ConfigError {
  let caught: unknown;
  try {
    parseConfig(argv, env);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

describe('parseConfig', () => {
  it('has the documented defaults', () => {
    const r = ok(DIR);
    const expected: Config = {
      watchDir: '/manifests',
      nginxCheck: true,
      confDir: '/etc/nginx/conf.d',
      httpPort: 80,
      httpsPort: 443,
      httpsRedirectPort: 443,
      nginxBinary: 'nginx',
      ingressClass: 'nginx',
      watchIngressWithoutClass: false,
      debounceMs: 100,
      maxDelayMs: 1000,
      maxDrainingGenerations: 2,
      maxDrainWaitMs: 10_000,
      maxReloadShare: 50,
      reloadTimeoutMs: 5000,
      ipv6: true,
      logLevel: 'info',
      logFormat: 'json',
      listen: '0.0.0.0:10254',
      updateStatus: true,
      accessLog: '/dev/stdout',
      allowSnippetAnnotations: false,
      allowCrossNamespaceCanary: false,
      allowCrossNamespaceHosts: false,
      endpointsMode: 'auto',
      dnsPort: 10053,
      unavailablePort: 10503,
      once: false,
      electionId: 'ingress-sidecar-leader',
      // No resolv.conf was given to parseConfig.
      resolver: [],
    };
    assert.deepEqual(r.config, expected);
    assert.equal(r.config.nginxPidFile, undefined);
    assert.equal(r.command, 'run');
    assert.deepEqual(r.rest, []);
  });

  it('takes --resolver from the nameservers of resolv.conf when neither the flag nor its variable is given', () => {
    const resolvConf = [
      "# a pod's",
      'search default.svc.cluster.local svc.cluster.local cluster.local',
      'nameserver 10.96.0.10',
      'nameserver fe80::1%eth0',
      'nameserver  fd00::10 ',
      'nameserver 10.96.0.10',
      'options ndots:5',
    ].join('\n');
    const parse = (argv: string[], env: Record<string, string> = {}) => {
      const r = parseConfig([...DIR, ...argv], env, { resolvConf });
      if (r.kind !== 'ok') throw new Error('unreachable');
      return r.config.resolver;
    };
    assert.deepEqual(parse([]), ['10.96.0.10', '[fd00::10]']);
    assert.deepEqual(parse(['--resolver', '10.0.0.2:53']), ['10.0.0.2:53']);
    assert.deepEqual(parse([], { INGRESS_SIDECAR_RESOLVER: '10.0.0.3' }), ['10.0.0.3']);
    assert.deepEqual(translateOptions(ok(DIR).config).resolver, []);
    for (const bad of ['dns.example.com', '10.0.0.1:0', '10.0.0.1:', 'fd00::1:53x', '[fd00::1', '010.0.0.1', ''])
      fails([...DIR, `--resolver=${bad}`], {}, /--resolver/);
  });

  it("takes --nginx-version as the serving nginx's MAJOR.MINOR.PATCH, unset by default (detected)", () => {
    assert.equal(ok(DIR).config.nginxVersion, undefined);
    assert.equal(ok([...DIR, '--nginx-version', '1.27.3']).config.nginxVersion, '1.27.3');
    // As nginx -v prints it, and from the environment.
    assert.equal(ok([...DIR, '--nginx-version=nginx/1.30.4']).config.nginxVersion, '1.30.4');
    assert.equal(ok(DIR, { INGRESS_SIDECAR_NGINX_VERSION: '1.22.1' }).config.nginxVersion, '1.22.1');
    for (const bad of ['1.30', '1.30.4.1', 'v1.30.4', '1.30.4 ', 'latest', '1.30.x', 'openresty/1.25.3', ''])
      fails([...DIR, `--nginx-version=${bad}`], {}, /--nginx-version/, /MAJOR\.MINOR\.PATCH/);
  });

  it('reads every flag', () => {
    // render: the one command that takes --watch-dir next to the Kubernetes source's flags.
    const r = ok([
      'render',
      ...DIR,
      '--kubeconfig',
      '/etc/kube/config',
      '--namespace',
      'team-a',
      '--file',
      '/m.yaml',
      '--no-nginx-check',
      '--conf-dir',
      '/c',
      '--http-port',
      '8080',
      '--https-port=8443',
      '--https-redirect-port',
      '443',
      '--default-ssl-certificate',
      'ingress-sidecar/wildcard-tls',
      '--nginx-pid-file',
      '/run/nginx.pid',
      '--nginx-binary',
      '/usr/sbin/nginx',
      '--nginx-version',
      '1.30.4',
      '--ingress-class',
      'internal.example.com',
      '--watch-ingress-without-class',
      '--debounce-ms',
      '0',
      '--max-delay-ms',
      '0',
      '--max-draining-generations',
      '0',
      '--max-drain-wait-ms',
      '30000',
      '--max-reload-share',
      '100',
      '--reload-timeout-ms',
      '250',
      '--no-ipv6',
      '--log-level',
      'debug',
      '--log-format',
      'text',
      '--listen',
      '[::1]:9000',
      '--access-log',
      '/var/log/nginx/ingress.json',
      '--no-update-status',
      '--publish-service',
      'ingress-sidecar/edge',
      '--election-id',
      'edge-leader',
      '--allow-snippet-annotations',
      '--allow-cross-namespace-canary',
      '--allow-cross-namespace-hosts',
      '--resolver',
      '10.96.0.10, [fd00::A]:5353',
      '--endpoints-mode',
      'reload',
      '--dns-port',
      '5300',
      '--unavailable-port',
      '5400',
      '--once',
    ]);
    assert.deepEqual(r.config, {
      kubeconfig: '/etc/kube/config',
      namespace: 'team-a',
      watchDir: '/manifests',
      file: '/m.yaml',
      nginxCheck: false,
      confDir: '/c',
      httpPort: 8080,
      httpsPort: 8443,
      httpsRedirectPort: 443,
      defaultSslCertificate: 'ingress-sidecar/wildcard-tls',
      nginxPidFile: '/run/nginx.pid',
      nginxBinary: '/usr/sbin/nginx',
      nginxVersion: '1.30.4',
      ingressClass: 'internal.example.com',
      watchIngressWithoutClass: true,
      debounceMs: 0,
      maxDelayMs: 0,
      maxDrainingGenerations: 0,
      maxDrainWaitMs: 30_000,
      maxReloadShare: 100,
      reloadTimeoutMs: 250,
      resolver: ['10.96.0.10', '[fd00::a]:5353'],
      endpointsMode: 'reload',
      dnsPort: 5300,
      unavailablePort: 5400,
      ipv6: false,
      logLevel: 'debug',
      logFormat: 'text',
      listen: '[::1]:9000',
      accessLog: '/var/log/nginx/ingress.json',
      allowSnippetAnnotations: true,
      allowCrossNamespaceCanary: true,
      allowCrossNamespaceHosts: true,
      once: true,
      updateStatus: false,
      publishService: { namespace: 'ingress-sidecar', name: 'edge' },
      electionId: 'edge-leader',
    });
  });

  it('reads INGRESS_SIDECAR_* environment variables', () => {
    const r = ok([], {
      INGRESS_SIDECAR_WATCH_DIR: '/from-env',
      INGRESS_SIDECAR_FILE: '/from-env.yaml',
      INGRESS_SIDECAR_NGINX_CHECK: 'false',
      INGRESS_SIDECAR_HTTP_PORT: '8080',
      INGRESS_SIDECAR_NGINX_PID_FILE: '/run/nginx.pid',
      INGRESS_SIDECAR_MAX_DELAY_MS: '2000',
      INGRESS_SIDECAR_IPV6: 'false',
      INGRESS_SIDECAR_LOG_FORMAT: 'text',
    });
    assert.equal(r.config.watchDir, '/from-env');
    assert.equal(r.config.file, '/from-env.yaml');
    assert.equal(r.config.nginxCheck, false);
    assert.equal(r.config.httpPort, 8080);
    assert.equal(r.config.nginxPidFile, '/run/nginx.pid');
    assert.equal(r.config.maxDelayMs, 2000);
    assert.equal(r.config.ipv6, false);
    assert.equal(r.config.logFormat, 'text');
  });

  it('lets a flag win over the environment', () => {
    const env = { INGRESS_SIDECAR_WATCH_DIR: '/env', INGRESS_SIDECAR_HTTP_PORT: '8080', INGRESS_SIDECAR_IPV6: 'false' };
    const r = ok(['--watch-dir', '/flag', '--http-port', '9090', '--ipv6'], env);
    assert.equal(r.config.watchDir, '/flag');
    assert.equal(r.config.httpPort, 9090);
    assert.equal(r.config.ipv6, true);
  });

  it('treats an empty environment variable as unset', () => {
    const r = ok(DIR, { INGRESS_SIDECAR_NGINX_PID_FILE: '', INGRESS_SIDECAR_HTTP_PORT: '' });
    assert.equal(r.config.nginxPidFile, undefined);
    assert.equal(r.config.httpPort, 80);
  });

  it('accepts the usual spellings of booleans in the environment', () => {
    for (const [v, want] of [
      ['true', true],
      ['1', true],
      ['YES', true],
      ['on', true],
      ['false', false],
      ['0', false],
      ['No', false],
      ['off', false],
    ] as const) {
      assert.equal(ok(DIR, { INGRESS_SIDECAR_IPV6: v }).config.ipv6, want, v);
    }
  });

  describe('bad values give a ConfigError naming the flag and the value', () => {
    const cases: Array<[string, string[], Record<string, string>, RegExp[]]> = [
      ['non-integer port', ['--http-port', 'eighty'], {}, [/--http-port/, /"eighty"/]],
      ['port 0', ['--http-port', '0'], {}, [/--http-port/, /"0"/, /1 to 65535/]],
      [
        'HTTPS on the HTTP port',
        ['--http-port', '8080', '--https-port', '8080'],
        {},
        [/--https-port and --http-port are both 8080/],
      ],
      ['port too large', ['--http-port', '65536'], {}, [/--http-port/, /"65536"/]],
      ['port with junk', ['--http-port', '80abc'], {}, [/--http-port/, /"80abc"/]],
      ['fractional ms', ['--debounce-ms', '1.5'], {}, [/--debounce-ms/, /"1\.5"/]],
      ['negative ms', ['--reload-timeout-ms=-1'], {}, [/--reload-timeout-ms/, /"-1"/]],
      ['reload share 0', ['--max-reload-share', '0'], {}, [/--max-reload-share/, /"0"/, /1 to 100/]],
      ['reload share over 100', ['--max-reload-share', '101'], {}, [/--max-reload-share/, /"101"/]],
      ['negative generations', ['--max-draining-generations=-1'], {}, [/--max-draining-generations/, /"-1"/]],
      ['ms beyond setTimeout', ['--reload-timeout-ms', '2147483648'], {}, [/--reload-timeout-ms/, /"2147483648"/]],
      ['bad ingress class', ['--ingress-class', 'Nginx_Public'], {}, [/--ingress-class/, /"Nginx_Public"/, /DNS-1123/]],
      ['ingress class too long', ['--ingress-class', 'a'.repeat(254)], {}, [/--ingress-class/, /DNS-1123/]],
      ['bad log level', ['--log-level', 'verbose'], {}, [/--log-level/, /"verbose"/, /error, warn, info, debug/]],
      ['bad log format', ['--log-format', 'xml'], {}, [/--log-format/, /"xml"/]],
      ['empty conf dir', ['--conf-dir', ''], {}, [/--conf-dir/, /empty/]],
      ['bad env port', [], { INGRESS_SIDECAR_HTTP_PORT: 'x' }, [/INGRESS_SIDECAR_HTTP_PORT/, /--http-port/, /"x"/]],
      ['bad env boolean', [], { INGRESS_SIDECAR_IPV6: 'maybe' }, [/INGRESS_SIDECAR_IPV6/, /--ipv6/, /"maybe"/]],
      [
        'max delay below debounce',
        ['--debounce-ms', '500', '--max-delay-ms', '200'],
        {},
        [/--max-delay-ms \(200\)/, /--debounce-ms \(500\)/],
      ],
      ['unknown flag', ['--watchdir', '/x'], {}, [/unknown flag --watchdir/]],
      ['missing value', ['--http-port'], {}, [/--http-port needs a value/]],
      ['missing value of a short flag, named by its long name', ['-f'], {}, [/^--file needs a value$/]],
      ['dash value of a short flag', ['-f', '-x'], {}, [/--file needs a value/, /--file=VALUE/]],
      ['empty file', ['--file', ''], {}, [/--file/, /empty/]],
      ['bad value for a boolean', ['--ipv6=maybe'], {}, [/^invalid --ipv6: "maybe" is not a boolean/]],
      ['value for a negated boolean', ['--no-ipv6=true'], {}, [/--ipv6/, /does not take an argument/]],
      ['namespace not a DNS label', ['--namespace', 'Team_A'], {}, [/--namespace/, /"Team_A"/, /DNS-1123 label/]],
      ['namespace with a dot', ['--namespace', 'a.b'], {}, [/--namespace/, /"a\.b"/]],
      ['namespace too long', ['--namespace', 'a'.repeat(64)], {}, [/--namespace/, /at most 63/]],
      ['empty kubeconfig', ['--kubeconfig='], {}, [/--kubeconfig/, /empty/]],
    ];
    for (const [what, argv, env, patterns] of cases) {
      it(what, () => {
        fails([...DIR, ...argv], env, ...patterns);
      });
    }

    it('records the flag on the error', () => {
      assert.equal(fails([...DIR, '--http-port', 'x'], {}).flag, '--http-port');
      assert.equal(fails([...DIR], { INGRESS_SIDECAR_LOG_LEVEL: 'loud' }).flag, '--log-level');
      assert.equal(fails([...DIR, '-f'], {}).flag, '--file');
    });
  });

  describe('commands', () => {
    it('defaults to run, which watches the Kubernetes API unless --watch-dir is given', () => {
      assert.equal(ok(DIR).command, 'run');
      assert.equal(ok(['run', ...DIR]).command, 'run');
      const api = ok([]);
      assert.equal(api.command, 'run');
      assert.equal(api.config.watchDir, undefined);
      const scoped = ok(['run', '--kubeconfig', '/kc', '--namespace', 'team-a']);
      assert.equal(scoped.config.kubeconfig, '/kc');
      assert.equal(scoped.config.namespace, 'team-a');
      assert.equal(ok([], { INGRESS_SIDECAR_NAMESPACE: 'from-env' }).config.namespace, 'from-env');
    });

    it('refuses the Kubernetes source flags where manifest files are served instead', () => {
      const e = fails(
        [...DIR, '--namespace', 'team-a'],
        {},
        /^--namespace is for the Kubernetes API source, but --watch-dir serves manifest files/,
      );
      assert.equal(e.flag, '--namespace');
      fails(DIR, { INGRESS_SIDECAR_KUBECONFIG: '/kc' }, /^--kubeconfig is for the Kubernetes API source/);
      fails(
        ['demo', '--kubeconfig', '/kc'],
        {},
        /--kubeconfig is for the Kubernetes API source, but demo serves examples\/local/,
      );
    });

    it('passes the Kubernetes client its own environment variables, and only those', () => {
      const r = ok([], {
        KUBECONFIG: '/a:/b',
        HOME: '/home/me',
        KUBERNETES_SERVICE_HOST: '10.96.0.1',
        KUBERNETES_SERVICE_PORT: '443',
        INGRESS_SIDECAR_HTTP_PORT: '8080',
        UNRELATED: 'x',
      });
      assert.deepEqual(r.kubeEnv, {
        kubeconfigPath: '/a:/b',
        home: '/home/me',
        serviceHost: '10.96.0.1',
        servicePort: '443',
      });
      assert.deepEqual(ok([], { KUBECONFIG: '' }).kubeEnv, {});
    });

    it('passes on PATH, where the nginx binary is looked up, so that nothing else reads the environment', () => {
      assert.equal(ok([], { PATH: '/usr/bin:/bin' }).searchPath, '/usr/bin:/bin');
      assert.equal(ok([]).searchPath, '');
    });

    it('takes demo and render from the first positional, with the other positionals as rest', () => {
      const demo = ok(['demo']);
      assert.equal(demo.command, 'demo');
      assert.equal(demo.config.watchDir, undefined);
      const render = ok(['--http-port', '8080', 'render', '-f', 'dir', 'a.yaml', '--', '--not-a-flag']);
      assert.equal(render.command, 'render');
      assert.deepEqual(render.rest, ['a.yaml', '--not-a-flag']);
      assert.equal(render.config.httpPort, 8080);
      assert.equal(render.config.file, 'dir');
    });

    it('render needs --file (-f, or INGRESS_SIDECAR_FILE); run and demo do not', () => {
      const e = fails(['render'], {}, /^render needs --file \(-f\): a manifest file or a directory of them$/);
      assert.equal(e.flag, '--file');
      assert.equal(ok(['render', '-f', 'm.yaml']).config.file, 'm.yaml');
      assert.equal(ok(['render', '-fm.yaml']).config.file, 'm.yaml');
      assert.equal(ok(['render', '--file=m.yaml']).config.file, 'm.yaml');
      assert.equal(ok(['render'], { INGRESS_SIDECAR_FILE: '/env' }).config.file, '/env');
      assert.equal(ok(['render', '-f', '/flag'], { INGRESS_SIDECAR_FILE: '/env' }).config.file, '/flag');
      assert.equal(ok(DIR).config.file, undefined);
      assert.equal(ok(['demo']).config.file, undefined);
    });

    it('rejects an unknown command rather than running', () => {
      fails(['rnu', ...DIR], {}, /unknown command "rnu"/, /run, demo, render/);
    });
  });

  describe('--help', () => {
    it('returns the help text for --help and -h, even next to a bad flag', () => {
      for (const argv of [['--help'], ['-h'], ['demo', '-h'], ['--bogus', '--help'], ['--http-port', 'x', '-h']]) {
        const r = parseConfig(argv, {});
        assert.deepEqual(r, { kind: 'help', text: helpText() }, argv.join(' '));
      }
    });

    it('lists the usage, the commands, and every flag with its environment variable and default', () => {
      const text = helpText();
      assert.match(text, /^Usage: ingress-sidecar \[run\|demo\|render\] \[flags\]/);
      for (const c of ['run', 'demo', 'render']) assert.match(text, new RegExp(`^  ${c} +\\S`, 'm'));
      const rows: Array<[string, string, string]> = [
        ['--kubeconfig FILE', 'INGRESS_SIDECAR_KUBECONFIG', '(in-cluster)'],
        ['--namespace NS', 'INGRESS_SIDECAR_NAMESPACE', '(all)'],
        ['--watch-dir DIR', 'INGRESS_SIDECAR_WATCH_DIR', '(none: the API)'],
        ['-f, --file FILE|DIR', 'INGRESS_SIDECAR_FILE', '(required for render)'],
        ['--conf-dir DIR', 'INGRESS_SIDECAR_CONF_DIR', '/etc/nginx/conf.d'],
        ['--http-port N', 'INGRESS_SIDECAR_HTTP_PORT', '80 (demo: 8080)'],
        ['--https-port N', 'INGRESS_SIDECAR_HTTPS_PORT', '443 (demo: 8443)'],
        ['--https-redirect-port N', 'INGRESS_SIDECAR_HTTPS_REDIRECT_PORT', '443 (demo: 8443)'],
        ['--default-ssl-certificate NS/NAME', 'INGRESS_SIDECAR_DEFAULT_SSL_CERTIFICATE', '(self-signed)'],
        ['--default-backend-service NS/NAME', 'INGRESS_SIDECAR_DEFAULT_BACKEND_SERVICE', '(404)'],
        ['--nginx-pid-file FILE', 'INGRESS_SIDECAR_NGINX_PID_FILE', '(none)'],
        ['--nginx-binary PATH', 'INGRESS_SIDECAR_NGINX_BINARY', 'nginx'],
        ['--nginx-version VERSION', 'INGRESS_SIDECAR_NGINX_VERSION', "(read from the master's binary)"],
        ['--ingress-class NAME', 'INGRESS_SIDECAR_INGRESS_CLASS', 'nginx'],
        ['--[no-]watch-ingress-without-class', 'INGRESS_SIDECAR_WATCH_INGRESS_WITHOUT_CLASS', 'false'],
        ['--debounce-ms N', 'INGRESS_SIDECAR_DEBOUNCE_MS', '100'],
        ['--max-delay-ms N', 'INGRESS_SIDECAR_MAX_DELAY_MS', '1000'],
        ['--max-draining-generations N', 'INGRESS_SIDECAR_MAX_DRAINING_GENERATIONS', '2'],
        ['--max-drain-wait-ms N', 'INGRESS_SIDECAR_MAX_DRAIN_WAIT_MS', '10000'],
        ['--max-reload-share PERCENT', 'INGRESS_SIDECAR_MAX_RELOAD_SHARE', '50'],
        ['--reload-timeout-ms N', 'INGRESS_SIDECAR_RELOAD_TIMEOUT_MS', '5000'],
        ['--[no-]ipv6', 'INGRESS_SIDECAR_IPV6', 'true'],
        ['--log-level LEVEL', 'INGRESS_SIDECAR_LOG_LEVEL', 'info'],
        ['--log-format FORMAT', 'INGRESS_SIDECAR_LOG_FORMAT', 'json'],
        ['--listen HOST:PORT', 'INGRESS_SIDECAR_LISTEN', '0.0.0.0:10254 (demo: 127.0.0.1:10254)'],
        ['--access-log PATH', 'INGRESS_SIDECAR_ACCESS_LOG', '/dev/stdout'],
        ['--[no-]allow-snippet-annotations', 'INGRESS_SIDECAR_ALLOW_SNIPPET_ANNOTATIONS', 'false'],
        ['--[no-]allow-cross-namespace-canary', 'INGRESS_SIDECAR_ALLOW_CROSS_NAMESPACE_CANARY', 'false'],
        ['--[no-]allow-cross-namespace-hosts', 'INGRESS_SIDECAR_ALLOW_CROSS_NAMESPACE_HOSTS', 'false'],
        [
          '--resolver ADDR[,ADDR]',
          'INGRESS_SIDECAR_RESOLVER',
          '(the nameservers of /etc/resolv.conf: the cluster DNS in a pod)',
        ],
        ['--endpoints-mode MODE', 'INGRESS_SIDECAR_ENDPOINTS_MODE', 'auto'],
        ['--dns-port N', 'INGRESS_SIDECAR_DNS_PORT', '10053'],
        ['--unavailable-port N', 'INGRESS_SIDECAR_UNAVAILABLE_PORT', '10503'],
        ['--[no-]once', 'INGRESS_SIDECAR_ONCE', 'false'],
        ['--[no-]update-status', 'INGRESS_SIDECAR_UPDATE_STATUS', 'true'],
        ['--publish-service NS/NAME', 'INGRESS_SIDECAR_PUBLISH_SERVICE', '(none)'],
        ['--publish-address ADDR[,ADDR]', 'INGRESS_SIDECAR_PUBLISH_ADDRESS', '(none)'],
        ['--election-id NAME', 'INGRESS_SIDECAR_ELECTION_ID', 'ingress-sidecar-leader'],
      ];
      const lines = text.split('\n');
      const envColumn = new Set<number>();
      for (const [flag, env, dflt] of rows) {
        const line = lines.find((l) => l.trimStart().startsWith(flag + ' '));
        assert.ok(line, `no help line for ${flag}`);
        const cells = line.trim().split(/ {2,}/);
        assert.deepEqual(cells.slice(0, 3), [flag, env, dflt], line);
        envColumn.add(line.indexOf(env));
      }
      assert.equal(envColumn.size, 1, 'the environment column is aligned');
      assert.match(text, /-h, --help +show this help/);
    });

    it('documents exactly the flags the parser accepts, and each env var works', () => {
      const text = helpText();
      // Flags with a one-letter alias are listed as `-f, --file FILE|DIR`; -h, --help is not a setting.
      const flags = [...text.matchAll(/^ {2}(?:-[a-z], )?--(?:\[no-\])?([a-z0-9-]+)/gm)]
        .map((m) => m[1]!)
        .filter((f) => f !== 'help');
      assert.equal(flags.length, 39);
      for (const name of flags) {
        const env = 'INGRESS_SIDECAR_' + name.toUpperCase().replace(/-/g, '_');
        assert.match(text, new RegExp(`--(\\[no-\\])?${name}\\b.*${env}`), name);
        // An invalid value through the env var is rejected naming the flag (where anything can be
        // invalid): proves the parser knows this flag under this variable.
        if (!['kubeconfig', 'watch-dir', 'file', 'conf-dir', 'nginx-pid-file', 'nginx-binary'].includes(name)) {
          fails(DIR, { [env]: '!bad!' }, new RegExp(`${env} \\(--${name}\\)`));
        }
      }
    });
  });
});

describe('config: docs/operating.md', () => {
  it('has a row for exactly the flags the parser accepts, each with its environment variable', () => {
    const doc = readFileSync(path.resolve(import.meta.dirname, '../../docs/operating.md'), 'utf8');
    // Rows look like | `--[no-]ipv6` | `INGRESS_SIDECAR_IPV6` | ... (a short alias first: `-f, --file FILE\|DIR`).
    const rows = [...doc.matchAll(/^\| `(?:-[a-z], )?--(?:\[no-\])?([a-z0-9-]+)[^`]*` \| `([A-Z0-9_]+)` \|/gm)].map(
      (m) => [m[1]!, m[2]!],
    );
    assert.deepEqual(
      rows.map(([flag]) => flag).sort(),
      TABLE.map((f) => f.name).sort(),
      'docs/operating.md lists other flags than src/config-flags.ts',
    );
    for (const [flag, env] of rows) assert.equal(env, TABLE.find((f) => f.name === flag)?.env, flag);
  });
});

describe('config: the demo command', () => {
  it('defaults nginx to port 8080 so it runs without root, unless a port is given', () => {
    const demo = parseConfig(['demo'], {});
    assert.ok(demo.kind === 'ok');
    assert.equal(demo.config.httpPort, 8080);
    const given = parseConfig(['demo', '--http-port', '9000'], {});
    assert.ok(given.kind === 'ok');
    assert.equal(given.config.httpPort, 9000);
    const run = parseConfig(['run', '--watch-dir', '/tmp'], {});
    assert.ok(run.kind === 'ok');
    assert.equal(run.config.httpPort, 80);
  });
});

describe('config: operability flags', () => {
  it('takes --access-log off to leave access logging to nginx.conf, and refuses paths that could carry nginx syntax', () => {
    const off = parseConfig(['run', '--watch-dir', '/m', '--access-log', 'off'], {});
    assert.ok(off.kind === 'ok');
    assert.equal(off.config.accessLog, null);
    for (const bad of ['relative.log', '/var/log/x;load_module y', '/tmp/a b', '/var/log/$host']) {
      assert.throws(
        () => parseConfig(['run', '--watch-dir', '/m', '--access-log', bad], {}),
        (e: unknown) => e instanceof ConfigError && /--access-log/.test(e.message),
      );
    }
  });

  it('refuses a --listen that is not HOST:PORT', () => {
    for (const bad of ['10254', 'localhost', ':x', 'host:70000']) {
      assert.throws(() => parseConfig(['run', '--watch-dir', '/m', '--listen', bad], {}), ConfigError);
    }
  });
});

describe('config: Ingress status publishing', () => {
  it('takes a Service or a list of addresses, not both, and not with --watch-dir', () => {
    const svc = parseConfig(['run', '--publish-service', 'ingress-sidecar/lb'], {});
    assert.ok(svc.kind === 'ok');
    assert.deepEqual(svc.config.publishService, { namespace: 'ingress-sidecar', name: 'lb' });
    const addrs = parseConfig(['run'], { INGRESS_SIDECAR_PUBLISH_ADDRESS: '203.0.113.7,lb.example.com' });
    assert.ok(addrs.kind === 'ok');
    assert.deepEqual(addrs.config.publishAddress, [{ ip: '203.0.113.7' }, { hostname: 'lb.example.com' }]);
    assert.throws(
      () => parseConfig(['run', '--publish-service', 'a/b', '--publish-address', '1.2.3.4'], {}),
      /alternatives/,
    );
    assert.throws(
      () => parseConfig(['run', '--watch-dir', '/m', '--publish-service', 'a/b'], {}),
      /--publish-service is for the Kubernetes API source/,
    );
    assert.throws(() => parseConfig(['run', '--publish-service', 'no-slash'], {}), ConfigError);
  });

  it('knows the pod from the Downward API variables', () => {
    const r = parseConfig(['run'], { POD_NAME: 'edge-7d9f', POD_NAMESPACE: 'ingress-sidecar', NODE_NAME: 'node-1' });
    assert.ok(r.kind === 'ok');
    assert.deepEqual(r.pod, { name: 'edge-7d9f', namespace: 'ingress-sidecar', nodeName: 'node-1' });
  });
});

describe('config: TLS', () => {
  it('serves HTTP only with --https-port 0, and takes the default certificate as NAMESPACE/NAME', () => {
    const off = parseConfig(['run', '--https-port', '0'], {});
    assert.ok(off.kind === 'ok');
    assert.equal(off.config.httpsPort, 0);
    for (const bad of ['just-a-name', 'a/b/c', 'Bad/name', '/x']) {
      assert.throws(() => parseConfig(['run', '--default-ssl-certificate', bad], {}), /--default-ssl-certificate/);
    }
  });
});

describe('config: the conf dir reaches nginx.conf', () => {
  it('refuses a --conf-dir that could carry nginx syntax or variables', () => {
    for (const bad of ['/etc/nginx/conf.d;x', '/tmp/$host', '/a b', '../up']) {
      assert.throws(() => parseConfig(['run', '--conf-dir', bad], {}), /--conf-dir/);
    }
    const ok = parseConfig(['run', '--conf-dir', 'relative/conf.d'], {});
    assert.ok(ok.kind === 'ok');
  });
});

describe('config: snippet annotations', () => {
  it('refuses snippets unless --allow-snippet-annotations (or its variable) is given, and passes the choice to translate', () => {
    assert.equal(ok(DIR).config.allowSnippetAnnotations, false);
    assert.equal(translateOptions(ok(DIR).config).allowSnippets, false);
    assert.equal(ok([...DIR, '--allow-snippet-annotations']).config.allowSnippetAnnotations, true);
    assert.equal(translateOptions(ok([...DIR, '--allow-snippet-annotations']).config).allowSnippets, true);
    assert.equal(ok(DIR, { INGRESS_SIDECAR_ALLOW_SNIPPET_ANNOTATIONS: 'true' }).config.allowSnippetAnnotations, true);
    assert.equal(ok(DIR, { INGRESS_SIDECAR_ALLOW_SNIPPET_ANNOTATIONS: '' }).config.allowSnippetAnnotations, false);
    // The flag wins over the environment, both ways.
    const env = { INGRESS_SIDECAR_ALLOW_SNIPPET_ANNOTATIONS: 'true' };
    assert.equal(ok([...DIR, '--no-allow-snippet-annotations'], env).config.allowSnippetAnnotations, false);
    fails(
      DIR,
      { INGRESS_SIDECAR_ALLOW_SNIPPET_ANNOTATIONS: 'sometimes' },
      /INGRESS_SIDECAR_ALLOW_SNIPPET_ANNOTATIONS/,
      /--allow-snippet-annotations/,
      /"sometimes"/,
    );
    fails([...DIR, '--allow-snippet-annotations=sometimes'], {}, /--allow-snippet-annotations/, /"sometimes"/);
  });
});

describe('config: booleans with a value, and the switches for running beside ingress-nginx', () => {
  it('takes --flag=VALUE for every boolean flag, as Go flags are written (--update-status=false)', () => {
    assert.equal(ok([...DIR, '--update-status=false']).config.updateStatus, false);
    assert.equal(ok([...DIR, '--update-status=true']).config.updateStatus, true);
    assert.equal(ok([...DIR, '--no-update-status']).config.updateStatus, false);
    assert.equal(ok([...DIR, '--ipv6=False']).config.ipv6, false);
    assert.equal(ok([...DIR, '--allow-snippet-annotations=1']).config.allowSnippetAnnotations, true);
    // The flag wins over the environment, both ways, whichever spelling.
    assert.equal(
      ok([...DIR, '--update-status=false'], { INGRESS_SIDECAR_UPDATE_STATUS: 'true' }).config.updateStatus,
      false,
    );
    assert.equal(
      ok([...DIR, '--update-status=true'], { INGRESS_SIDECAR_UPDATE_STATUS: 'false' }).config.updateStatus,
      true,
    );
    assert.equal(ok([...DIR], { INGRESS_SIDECAR_UPDATE_STATUS: 'false' }).config.updateStatus, false);
    // After `--` nothing is a flag.
    assert.deepEqual(ok(['run', ...DIR, '--', '--ipv6=false']).rest, ['--ipv6=false']);
    assert.equal(ok(['run', ...DIR, '--', '--ipv6=false']).config.ipv6, true);
  });

  it('--watch-ingress-without-class (or its variable) reaches translate; off by default', () => {
    assert.equal(translateOptions(ok(DIR).config).watchIngressWithoutClass, false);
    assert.equal(translateOptions(ok([...DIR, '--watch-ingress-without-class']).config).watchIngressWithoutClass, true);
    assert.equal(
      translateOptions(ok([...DIR, '--watch-ingress-without-class=true']).config).watchIngressWithoutClass,
      true,
    );
    assert.equal(
      translateOptions(ok(DIR, { INGRESS_SIDECAR_WATCH_INGRESS_WITHOUT_CLASS: 'true' }).config)
        .watchIngressWithoutClass,
      true,
    );
  });
});

describe('config: cross-namespace canaries', () => {
  it('keeps canaries in their own namespace unless --allow-cross-namespace-canary (or its variable) is given, and passes the choice to translate', () => {
    assert.equal(translateOptions(ok(DIR).config).allowCrossNamespaceCanary, false);
    assert.equal(
      translateOptions(ok([...DIR, '--allow-cross-namespace-canary']).config).allowCrossNamespaceCanary,
      true,
    );
    assert.equal(
      ok(DIR, { INGRESS_SIDECAR_ALLOW_CROSS_NAMESPACE_CANARY: 'true' }).config.allowCrossNamespaceCanary,
      true,
    );
    assert.equal(
      ok([...DIR, '--no-allow-cross-namespace-canary'], { INGRESS_SIDECAR_ALLOW_CROSS_NAMESPACE_CANARY: 'true' }).config
        .allowCrossNamespaceCanary,
      false,
    );
  });

  it('passes --default-backend-service (or its variable) to translate as NAMESPACE/NAME, and refuses other forms', () => {
    assert.equal(translateOptions(ok(DIR).config).defaultBackendService, undefined);
    assert.equal(
      translateOptions(ok([...DIR, '--default-backend-service', 'edge/fallback']).config).defaultBackendService,
      'edge/fallback',
    );
    assert.equal(
      ok(DIR, { INGRESS_SIDECAR_DEFAULT_BACKEND_SERVICE: 'edge/fallback' }).config.defaultBackendService,
      'edge/fallback',
    );
    assert.throws(() => parseConfig([...DIR, '--default-backend-service', 'fallback'], {}), /must be NAMESPACE\/NAME/);
  });

  it('serves a host from one namespace unless --allow-cross-namespace-hosts (or its variable) is given, and passes the choice to translate', () => {
    assert.equal(translateOptions(ok(DIR).config).allowCrossNamespaceHosts, false);
    assert.equal(translateOptions(ok([...DIR, '--allow-cross-namespace-hosts']).config).allowCrossNamespaceHosts, true);
    assert.equal(
      ok(DIR, { INGRESS_SIDECAR_ALLOW_CROSS_NAMESPACE_HOSTS: 'true' }).config.allowCrossNamespaceHosts,
      true,
    );
  });
});
