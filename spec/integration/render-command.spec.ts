// `ingress-sidecar render` as a user (or a CI pipeline) runs it: the real CLI in a subprocess.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { backendYaml, ingressYaml } from '../helpers/sidecar.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/ingress-sidecar');
const ENV = { PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };

function render(args: string[], env: Record<string, string> = {}) {
  return execa(BIN, ['render', ...args], {
    env: { ...ENV, ...env },
    reject: false,
    stripFinalNewline: false,
    timeout: 30_000,
  });
}

/** Splits render's stdout back into files at its `# ---- name ----` lines. */
function splitFiles(stdout: string): Map<string, string> {
  const files = new Map<string, string>();
  const parts = stdout.split(/^# ---- (\S+) ----\n/m);
  assert.equal(parts[0], '', 'stdout starts with a file header');
  for (let i = 1; i < parts.length; i += 2) files.set(parts[i]!, parts[i + 1]!);
  return files;
}

describe('bin/ingress-sidecar render', function () {
  this.timeout(60_000);
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'render-command-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the good Ingress, names the rejected one and why on stderr, and exits 1', async () => {
    await writeFile(path.join(dir, 'backend.yaml'), backendYaml('web', 9000));
    await writeFile(
      path.join(dir, 'good.yaml'),
      ingressYaml('good', [{ host: 'good.test', paths: [['/', 'Prefix', 'web']] }]),
    );
    await writeFile(
      path.join(dir, 'bad.yaml'),
      ingressYaml('bad', [{ host: 'Bad.Test', paths: [['/', 'Prefix', 'web']] }]),
    );

    const result = await render(['-f', dir]);
    assert.equal(result.exitCode, 1, result.stderr);
    const files = splitFiles(result.stdout);
    assert.deepEqual(
      [...files.keys()],
      ['ingress-sidecar-00-main.conf', 'ingress-sidecar-upstreams.conf', 'ingress-sidecar-server-good.test.conf'],
    );
    const server = files.get('ingress-sidecar-server-good.test.conf')!;
    assert.match(server, /^server \{$/m);
    assert.match(server, /^ {4}server_name good\.test;$/m);
    assert.match(server, /^ {4}listen 80;$/m);
    assert.match(server, /proxy_pass http:\/\/[0-9a-f]{8}_default_web_80;/);
    assert.match(files.get('ingress-sidecar-upstreams.conf')!, /server 127\.0\.0\.1:9000;/);
    assert.doesNotMatch(result.stdout, /bad/i);
    assert.match(
      result.stderr,
      /^rejected: Ingress default\/bad: host "Bad\.Test": must be a lowercase RFC 1123 DNS name/m,
    );
    assert.match(result.stderr, /1 Ingress served, 1 rejected/);
  });

  it('exits 0 with only good Ingresses, takes the translate flags, and touches no conf dir', async () => {
    await writeFile(
      path.join(dir, 'all.yaml'),
      backendYaml('web', 9000) +
        '---\n' +
        ingressYaml('edge', [{ host: 'edge.test', paths: [['/', 'Prefix', 'web']] }], { className: 'edge' }),
    );
    const confDir = path.join(dir, 'conf.d');

    const result = await render([
      '--file',
      path.join(dir, 'all.yaml'),
      '--ingress-class',
      'edge',
      '--http-port',
      '8080',
      '--no-ipv6',
      '--conf-dir',
      confDir,
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    const server = splitFiles(result.stdout).get('ingress-sidecar-server-edge.test.conf');
    assert.ok(server, result.stdout);
    assert.match(server, /^ {4}listen 8080;$/m);
    assert.doesNotMatch(result.stdout, /listen \[::\]/);
    assert.doesNotMatch(result.stderr, /^(rejected|partial|error|warning):/m);
    assert.match(result.stderr, /1 Ingress served, 0 rejected, 0 partly served, 0 files not parsed/);
    assert.ok(!existsSync(confDir), 'render writes nothing');
    assert.deepEqual((await readdir(dir)).sort(), ['all.yaml']);

    // The same through the environment.
    const viaEnv = await render([], {
      INGRESS_SIDECAR_FILE: path.join(dir, 'all.yaml'),
      INGRESS_SIDECAR_INGRESS_CLASS: 'edge',
    });
    assert.equal(viaEnv.exitCode, 0, viaEnv.stderr);
    assert.match(viaEnv.stdout, /server_name edge\.test;/);
  });

  it('prints exactly the rendered files: a golden case splits back into its expected/', async () => {
    // The basic case is rendered without TLS (its options.json), as --https-port 0 renders.
    const golden = path.join(ROOT, 'spec/golden/basic');
    const result = await render(['-f', path.join(golden, 'input.yaml'), '--https-port', '0']);
    assert.equal(result.exitCode, 0, result.stderr);
    const files = splitFiles(result.stdout);
    const names = (await readdir(path.join(golden, 'expected'))).sort();
    assert.deepEqual([...files.keys()].sort(), names);
    for (const name of names)
      assert.equal(files.get(name), await readFile(path.join(golden, 'expected', name), 'utf8'), name);
  });

  it('reports a file that does not parse, renders the rest, and exits 1', async () => {
    await writeFile(
      path.join(dir, 'good.yaml'),
      backendYaml('web', 9000) +
        '---\n' +
        ingressYaml('good', [{ host: 'good.test', paths: [['/', 'Prefix', 'web']] }]),
    );
    await writeFile(path.join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: [unclosed\n');

    const result = await render(['-f', dir]);
    assert.equal(result.exitCode, 1);
    assert.match(result.stdout, /server_name good\.test;/);
    assert.match(result.stderr, new RegExp(`^error: ${path.join(dir, 'broken.yaml')}: .*line \\d+`, 'm'));
    assert.match(result.stderr, /1 file not parsed/);
  });

  it('reads a directory as the directory source does: subdirectories, manifests only, no dot-paths, first file wins', async () => {
    await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
    await mkdir(path.join(dir, '.git'));
    await writeFile(path.join(dir, 'a-backend.yaml'), backendYaml('web', 9000));
    await writeFile(
      path.join(dir, 'sub', 'deeper', 'app.yml'),
      ingressYaml('app', [{ host: 'app.test', paths: [['/', 'Prefix', 'web']] }]),
    );
    // The same Service again, later by path: ignored with a warning, which does not fail the run.
    await writeFile(path.join(dir, 'b-backend.yaml'), backendYaml('web', 9999));
    // Not manifests, or hidden: never read (each would be rejected or fail to parse if it were).
    const bad = ingressYaml('hidden', [{ host: 'Hidden.Test', paths: [['/', 'Prefix', 'web']] }]);
    await writeFile(path.join(dir, '.hidden.yaml'), bad);
    await writeFile(path.join(dir, '.git', 'x.yaml'), bad);
    await writeFile(path.join(dir, 'README.md'), '# not: [yaml\n');

    const result = await render(['-f', dir]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /server_name app\.test;/);
    assert.match(result.stdout, /server 127\.0\.0\.1:9000;/);
    assert.doesNotMatch(result.stdout, /9999|hidden/i);
    assert.match(
      result.stderr,
      new RegExp(
        `^warning: Service/default/web is defined in both ${path.join(dir, 'a-backend.yaml')} and ${path.join(dir, 'b-backend.yaml')}`,
        'm',
      ),
    );
    assert.doesNotMatch(result.stderr, /^(rejected|error):/m);
  });

  describe('the nginx -t check', () => {
    const SNIPPET = 'nginx.ingress.kubernetes.io/configuration-snippet';
    const snippetIngress = (name: string, snippet: string) =>
      ingressYaml(name, [{ host: `${name}.test`, paths: [['/', 'Prefix', 'web']] }], {
        annotations: { [SNIPPET]: snippet },
      });

    beforeEach(async () => {
      await writeFile(path.join(dir, 'backend.yaml'), backendYaml('web', 9000));
      await writeFile(
        path.join(dir, 'good.yaml'),
        ingressYaml('good', [{ host: 'good.test', paths: [['/', 'Prefix', 'web']] }]),
      );
      // nginx names no line for an unknown variable; it does for a bad value (a snippet may not use
      // an unknown directive at all: src/annotations/snippets.ts's allowlist refuses it before nginx sees it).
      await writeFile(
        path.join(dir, 'linkerd.yaml'),
        snippetIngress('linkerd', 'proxy_set_header l5d-dst-override $svc_name.$svc_namespace.svc.cluster.local:80;'),
      );
      await writeFile(path.join(dir, 'more.yaml'), snippetIngress('more', 'proxy_http_version 3.0;'));
    });

    it('rejects what nginx refuses, as run would, renders its paths as 503 without its snippets, and exits 1', async () => {
      const confDir = path.join(dir, 'conf.d');
      const result = await render(['-f', dir, '--allow-snippet-annotations', '--conf-dir', confDir]);
      assert.equal(result.exitCode, 1, result.stderr);
      const files = splitFiles(result.stdout);
      assert.deepEqual(
        [...files.keys()],
        [
          'ingress-sidecar-00-main.conf',
          'ingress-sidecar-upstreams.conf',
          'ingress-sidecar-server-good.test.conf',
          'ingress-sidecar-server-linkerd.test.conf',
          'ingress-sidecar-server-more.test.conf',
        ],
      );
      for (const f of ['ingress-sidecar-server-linkerd.test.conf', 'ingress-sidecar-server-more.test.conf']) {
        assert.match(files.get(f)!, /return 503;/, f);
        assert.doesNotMatch(files.get(f)!, /svc_name|proxy_http_version 3|proxy_pass/, f);
      }
      assert.match(
        result.stderr,
        /^rejected: Ingress default\/linkerd: nginx rejected its configuration: unknown "svc_name" variable$/m,
      );
      // The file is named by the --conf-dir it would be in, not the temporary directory.
      assert.match(
        result.stderr,
        new RegExp(
          `^rejected: Ingress default/more: nginx rejected its configuration: invalid value "3\\.0" in ${confDir}/ingress-sidecar-server-more\\.test\\.conf:\\d+$`,
          'm',
        ),
      );
      assert.match(result.stderr, /1 Ingress served, 2 rejected/);
      assert.ok(!existsSync(confDir), 'render writes nothing in --conf-dir');
    });

    it('is skipped with --no-nginx-check (or INGRESS_SIDECAR_NGINX_CHECK=false)', async () => {
      for (const [args, env] of [
        [['--no-nginx-check'], {}],
        [[], { INGRESS_SIDECAR_NGINX_CHECK: 'false' }],
      ] as const) {
        const result = await render(['-f', dir, '--allow-snippet-annotations', ...args], env);
        assert.equal(result.exitCode, 0, result.stderr);
        assert.match(result.stdout, /server_name linkerd\.test;/);
        assert.match(result.stderr, /^ingress-sidecar render: 3 Ingresses served, 0 rejected/m);
        assert.doesNotMatch(result.stderr, /nginx/);
      }
    });

    it('says on one line that no nginx binary was found, and renders without the check', async () => {
      const result = await render([
        '-f',
        dir,
        '--allow-snippet-annotations',
        '--nginx-binary',
        path.join(dir, 'no-such-nginx'),
      ]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.deepEqual(
        result.stderr.split('\n').filter((l) => /nginx/.test(l)),
        [
          `warning: nginx binary ${JSON.stringify(path.join(dir, 'no-such-nginx'))} not found; rendered without the nginx -t check`,
        ],
      );
      assert.match(result.stderr, /3 Ingresses served, 0 rejected/);
    });
  });

  it('reports each v1beta1 Ingress with what to change, and exits 1', async () => {
    await writeFile(path.join(dir, 'backend.yaml'), backendYaml('web', 9000));
    await writeFile(
      path.join(dir, 'good.yaml'),
      ingressYaml('good', [{ host: 'good.test', paths: [['/', 'Prefix', 'web']] }]),
    );
    await writeFile(
      path.join(dir, 'old.yaml'),
      'apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: legacy, namespace: shop}\nspec:\n  backend: {serviceName: web, servicePort: 80}\n---\n' +
        'apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: older}\nspec:\n  rules: [{host: old.test, http: {paths: [{path: /, backend: {serviceName: web, servicePort: 80}}]}}]\n',
    );
    const result = await render(['-f', dir]);
    assert.equal(result.exitCode, 1, result.stderr);
    assert.match(result.stdout, /server_name good\.test;/);
    const fix =
      'convert to networking.k8s.io/v1: spec.backend -> spec.defaultBackend, serviceName/servicePort -> service.name/service.port.number|name, add pathType';
    const old = path.join(dir, 'old.yaml');
    assert.ok(
      result.stderr.includes(`error: ${old}: Ingress shop/legacy is extensions/v1beta1, which is not read: ${fix}\n`),
      result.stderr,
    );
    assert.ok(
      result.stderr.includes(
        `error: ${old}: Ingress default/older is networking.k8s.io/v1beta1, which is not read: ${fix}\n`,
      ),
      result.stderr,
    );
    assert.match(
      result.stderr,
      /1 Ingress served, 0 rejected, 0 partly served, 0 files not parsed, 2 Ingresses of a removed API version not read$/m,
    );
  });

  it('takes what kubectl writes (creationTimestamp: null, status, managedFields, ...) without a warning', async () => {
    // `kubectl create ingress web --rule=web.test/*=web:80 --dry-run=client -o yaml`, and a
    // Service as `kubectl get -o yaml` prints it.
    await writeFile(
      path.join(dir, 'kubectl.yaml'),
      `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  creationTimestamp: null
  name: web
spec:
  ingressClassName: nginx
  rules:
  - host: web.test
    http:
      paths:
      - backend:
          service:
            name: web
            port:
              number: 80
        path: /
        pathType: Prefix
status:
  loadBalancer: {}
---
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: "2024-05-01T10:00:00Z"
  name: web
  namespace: default
  resourceVersion: "4711"
  uid: 0b6c7c1e-1111-2222-3333-444455556666
  generation: 1
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1: {"f:spec": {"f:ports": {}}}
    manager: kubectl-create
    operation: Update
    time: "2024-05-01T10:00:00Z"
spec:
  ports: [{name: http, port: 80, targetPort: 9000}]
status:
  loadBalancer: {}
`,
    );
    const result = await render(['-f', dir]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /server_name web\.test;/);
    assert.doesNotMatch(result.stderr, /^(warning|error|rejected|partial):/m);
  });

  it('exits 2 with a message when -f is missing, or names nothing readable', async () => {
    const missing = await render([]);
    assert.equal(missing.exitCode, 2);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /render needs --file \(-f\)/);

    const noValue = await render(['-f']);
    assert.equal(noValue.exitCode, 2);
    assert.match(noValue.stderr, /--file needs a value/);

    const positional = await render(['-f', dir, 'extra.yaml']);
    assert.equal(positional.exitCode, 2);
    assert.match(positional.stderr, /render takes no arguments \(got "extra\.yaml"\)/);

    const nowhere = path.join(dir, 'nope');
    const unreadable = await render(['-f', nowhere]);
    assert.equal(unreadable.exitCode, 2);
    assert.equal(unreadable.stdout, '');
    assert.match(unreadable.stderr, new RegExp(`${nowhere} cannot be read`));
  });
});
