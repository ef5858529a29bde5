// The shipping contract, checked on the files a platform engineer applies: the kustomize base,
// the component that adds the sidecar to an existing Deployment, the Dockerfile and compose file.
// (No Docker engine runs on these machines: images and compose are parsed and checked, not run.)
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadAllYaml, loadYaml, type V1Container, type V1Deployment } from '@kubernetes/client-node';
import { execa } from 'execa';
import { parseNginxVersion, versionAtLeast } from '../../src/nginx/version.ts';
import { applyManifests, kubectlOk, startApiServer, type ApiServer } from '../helpers/apiserver.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * The oldest nginx the shipped files may pin: 1.30.1 fixed CVE-2026-42945 (a heap overflow in
 * `rewrite` with unnamed captures, which rewrite-target renders), 1.30.2 and 1.30.3 further
 * `rewrite` CVEs.
 */
const MIN_NGINX: [number, number, number] = [1, 30, 4];

function assertPatchedNginx(image: string | undefined, where: string): void {
  const tag = /^(?:nginxinc\/nginx-unprivileged|nginx):(\d+\.\d+\.\d+)(?:-[a-z0-9.-]+)?$/.exec(image ?? '')?.[1];
  assert.ok(tag, `${where}: ${image} is pinned to an nginx version`);
  assert.ok(
    versionAtLeast(parseNginxVersion(tag)!, MIN_NGINX),
    `${where}: ${image} is older than nginx ${MIN_NGINX.join('.')}`,
  );
}

async function kustomize(dir: string): Promise<Array<Record<string, any>>> {
  const out = await execa('kubectl', ['kustomize', dir]);
  return loadAllYaml(out.stdout) as Array<Record<string, any>>;
}

function mounts(c: V1Container): Record<string, string> {
  return Object.fromEntries((c.volumeMounts ?? []).map((m) => [m.mountPath, m.name]));
}

describe('manifests/ (kustomize base)', () => {
  let objects: Array<Record<string, any>>;
  let deployment: V1Deployment;
  let nginx: V1Container;
  let sidecar: V1Container;

  before(async () => {
    objects = await kustomize(path.join(ROOT, 'manifests'));
    deployment = objects.find((o) => o.kind === 'Deployment') as V1Deployment;
    const containers = deployment.spec!.template.spec!.containers;
    nginx = containers.find((c) => c.name === 'nginx')!;
    sidecar = containers.find((c) => c.name === 'ingress-sidecar')!;
  });

  it('holds the namespace, ServiceAccount, RBAC, IngressClass, Deployment, PDB and LoadBalancer Service', () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    for (const k of [
      'Namespace/ingress-sidecar',
      'ServiceAccount/ingress-sidecar',
      'IngressClass/nginx',
      'Deployment/ingress-sidecar',
      'PodDisruptionBudget/ingress-sidecar',
      'Service/ingress-sidecar',
    ]) {
      assert.ok(kinds.includes(k), `${k} in ${kinds.join(', ')}`);
    }
    assert.ok(
      kinds.some((k) => k.startsWith('ClusterRole/')) && kinds.some((k) => k.startsWith('ClusterRoleBinding/')),
    );
    assert.equal(objects.find((o) => o.kind === 'Service')!.spec.type, 'LoadBalancer');
    const ic = objects.find((o) => o.kind === 'IngressClass')!;
    assert.equal(
      ic.metadata.annotations?.['ingressclass.kubernetes.io/is-default-class'],
      undefined,
      'default-class marking is opt-in',
    );
  });

  it('runs the stock nginx-unprivileged image, pinned, and the sidecar in one PID namespace', () => {
    assert.match(nginx.image!, /^nginxinc\/nginx-unprivileged:\d+\.\d+\.\d+(-alpine)?$/);
    assertPatchedNginx(nginx.image, 'manifests/deployment.yaml');
    assert.match(sidecar.image!, /:\d+\.\d+\.\d+$/);
    const pod = deployment.spec!.template.spec!;
    assert.equal(pod.shareProcessNamespace, true);
    assert.equal(deployment.spec!.replicas, 2);
    assert.ok(pod.affinity?.podAntiAffinity, 'replicas spread by anti-affinity');
  });

  it('shares conf.d and /tmp as emptyDirs, both containers as UID 101, locked down', () => {
    const pod = deployment.spec!.template.spec!;
    for (const c of [nginx, sidecar]) {
      assert.deepEqual(mounts(c)['/etc/nginx/conf.d'], 'conf-d', c.name);
      assert.deepEqual(mounts(c)['/tmp'], 'tmp', c.name);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
      assert.ok(c.resources?.requests && c.resources.limits, `${c.name} has requests and limits`);
      assert.ok(c.livenessProbe && c.readinessProbe, `${c.name} has probes`);
    }
    for (const v of ['conf-d', 'tmp']) assert.ok(pod.volumes!.find((x) => x.name === v)?.emptyDir, v);
    assert.equal(pod.securityContext?.runAsUser, 101);
    assert.equal(pod.securityContext?.runAsNonRoot, true);
  });

  it('keeps nginx unready until the sidecar has synced, and drains within the grace period', () => {
    assert.deepEqual([nginx.readinessProbe?.httpGet?.path, nginx.readinessProbe?.httpGet?.port], ['/readyz', 10254]);
    const args = (nginx.args ?? []).join(' ');
    const drain = Number(/worker_shutdown_timeout (\d+)s/.exec(args)?.[1]);
    const pause = Number(/sleep (\d+)/.exec((nginx.lifecycle?.preStop?.exec?.command ?? []).join(' '))?.[1]);
    assert.ok(drain > 0 && pause > 0, 'worker_shutdown_timeout and a preStop pause are set');
    assert.ok(deployment.spec!.template.spec!.terminationGracePeriodSeconds! >= drain + pause);
  });

  it('points the sidecar at the pid file, the shared conf.d and the LoadBalancer Service it publishes', () => {
    const args = sidecar.args!;
    for (const a of [
      '--conf-dir=/etc/nginx/conf.d',
      '--nginx-pid-file=/tmp/nginx.pid',
      '--publish-service=ingress-sidecar/ingress-sidecar',
    ]) {
      assert.ok(args.includes(a), `${a} in ${args.join(' ')}`);
    }
    const ports = nginx.ports!.map((p) => p.containerPort);
    assert.ok(args.includes(`--http-port=${ports[0]}`) && args.includes(`--https-port=${ports[1]}`));
  });
});

describe('manifests/components/sidecar (add to an existing nginx Deployment)', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'deploy-spec-'));
    await cp(path.join(ROOT, 'manifests', 'components'), path.join(work, 'components'), { recursive: true });
  });
  after(() => rm(work, { recursive: true, force: true }));

  async function build(image: string, rootNginx: boolean): Promise<V1Deployment> {
    const dir = await mkdtemp(path.join(work, 'app-'));
    await writeFile(
      path.join(dir, 'deploy.yaml'),
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {ingress-sidecar.dev/inject: "true"}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "${image}", ports: [{containerPort: 8080}]}]
`,
    );
    await writeFile(
      path.join(dir, 'kustomization.yaml'),
      `resources: [deploy.yaml]
components: [../components/sidecar${rootNginx ? ', ../components/root-nginx' : ''}]
`,
    );
    return (await kustomize(dir)).find((o) => o.kind === 'Deployment') as V1Deployment;
  }

  it('adds the sidecar, the shared PID namespace and volumes to nginx-unprivileged, as UID 101', async () => {
    const d = await build('nginxinc/nginx-unprivileged:1.30.4-alpine', false);
    const pod = d.spec!.template.spec!;
    assert.equal(pod.shareProcessNamespace, true);
    const [nginx, sidecar] = [
      pod.containers.find((c) => c.name === 'nginx')!,
      pod.containers.find((c) => c.name === 'ingress-sidecar')!,
    ];
    assert.equal(nginx.image, 'nginxinc/nginx-unprivileged:1.30.4-alpine', 'the existing container is kept');
    for (const c of [nginx, sidecar]) assert.equal(mounts(c)['/etc/nginx/conf.d'], 'ingress-sidecar-conf-d');
    assert.equal(sidecar.securityContext?.runAsUser, 101);
    assert.ok(sidecar.args!.includes('--nginx-pid-file=/tmp/nginx.pid'));
  });

  it('for the official nginx image (root master), runs the sidecar with CAP_KILL only and its pid file', async () => {
    const d = await build('nginx:1.30.4', true);
    const sidecar = d.spec!.template.spec!.containers.find((c) => c.name === 'ingress-sidecar')!;
    const caps = sidecar.securityContext?.capabilities;
    assert.deepEqual([caps?.add, caps?.drop], [['KILL'], ['ALL']]);
    assert.ok(sidecar.args!.includes('--nginx-pid-file=/var/run/nginx.pid'));
    assert.equal(mounts(sidecar)['/var/run'], 'ingress-sidecar-run');
  });
});

describe('Dockerfile.sidecar and docker-compose.yml', () => {
  it('builds a small non-root image with OCI labels and an nginx from the data plane image line', async () => {
    const text = await readFile(path.join(ROOT, 'Dockerfile.sidecar'), 'utf8');
    const lines = text.split('\n').filter((l) => !l.startsWith('#'));
    assert.ok(lines.filter((l) => l.startsWith('FROM ')).length >= 3, 'multi-stage');
    assert.match(text, /^ARG NODE_IMAGE=node:24-(alpine|bookworm-slim)$/m);
    assert.match(text, /npm ci --omit=dev/);
    assert.match(text, /^USER 101:101$/m);
    for (const label of ['title', 'version', 'source', 'licenses'])
      assert.match(text, new RegExp(`org\\.opencontainers\\.image\\.${label}=`));
    const nginxImage = /^ARG NGINX_IMAGE=(\S+)$/m.exec(text)?.[1];
    const deployment = (await kustomize(path.join(ROOT, 'manifests'))).find(
      (o) => o.kind === 'Deployment',
    ) as V1Deployment;
    const dataPlane = deployment.spec!.template.spec!.containers.find((c) => c.name === 'nginx')!.image;
    assert.equal(nginxImage, dataPlane, 'nginx -t runs the same nginx as the data plane');
    assertPatchedNginx(nginxImage, 'Dockerfile.sidecar');
    assert.match(text, /COPY --from=nginx \/usr\/sbin\/nginx/);
  });

  it('shares the PID namespace and conf.d with a stock nginx, with a kind profile and a directory profile', async () => {
    const compose = loadYaml(await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as Record<string, any>;
    const services = compose.services as Record<string, any>;
    assert.match(services.nginx.image, /^nginxinc\/nginx-unprivileged:/);
    assertPatchedNginx(services.nginx.image, 'docker-compose.yml');
    const deployment = (await kustomize(path.join(ROOT, 'manifests'))).find(
      (o) => o.kind === 'Deployment',
    ) as V1Deployment;
    assert.equal(
      services.nginx.image,
      deployment.spec!.template.spec!.containers.find((c) => c.name === 'nginx')!.image,
      'compose runs the nginx of the manifests',
    );
    const sidecars = Object.entries(services).filter(([, s]) => s.build?.dockerfile === 'Dockerfile.sidecar');
    assert.deepEqual(sidecars.map(([, s]) => s.profiles[0]).sort(), ['kind', 'local']);
    for (const [name, s] of sidecars) {
      assert.equal(s.pid, 'service:nginx', name);
      assert.equal(s.user, '101:101', name);
      assert.ok(s.volumes.includes('conf-d:/etc/nginx/conf.d') && s.volumes.includes('run-nginx:/tmp'), name);
      assert.ok(s.command.includes('--nginx-pid-file=/tmp/nginx.pid'), name);
    }
    const byProfile = Object.fromEntries(sidecars.map(([, s]) => [s.profiles[0], s]));
    assert.ok(byProfile.kind.command.includes('--kubeconfig=/kubeconfig'));
    assert.ok(byProfile.kind.networks.includes('kind'));
    assert.ok(byProfile.local.command.includes('--watch-dir=/manifests'));
    // The local profile's manifests render cleanly.
    const render = await execa(
      path.join(ROOT, 'bin/ingress-sidecar'),
      ['render', '-f', path.join(ROOT, 'examples/compose')],
      { reject: false },
    );
    assert.equal(render.exitCode, 0, render.stderr);
    assert.match(render.stdout, /server_name demo\.local;/);
    assert.match(render.stdout, /server 172\.28\.0\.10:80;/);
  });
});

describe('every manifest, applied to a real Kubernetes API server', function () {
  this.timeout(120_000);
  let api: ApiServer;
  let work: string;
  before(async () => {
    api = await startApiServer();
    work = await mkdtemp(path.join(os.tmpdir(), 'deploy-apply-'));
  });
  after(async () => {
    await api?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('accepts the kustomize base, the examples, and a Deployment with the component added', async () => {
    await applyManifests(api.adminKubeconfig);
    const base = await kubectlOk(api.adminKubeconfig, [
      'get',
      'deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget',
      '-n',
      'ingress-sidecar',
      '-o',
      'name',
    ]);
    for (const o of [
      'deployment.apps/ingress-sidecar',
      'service/ingress-sidecar',
      'serviceaccount/ingress-sidecar',
      'poddisruptionbudget.policy/ingress-sidecar',
    ]) {
      assert.ok(base.includes(o), `${o} in ${base}`);
    }
    for (const f of ['app.yaml', 'ingress-plain.yaml', 'ingress-tls.yaml', 'ingress-annotations.yaml'])
      await kubectlOk(api.adminKubeconfig, ['apply', '-f', path.join(ROOT, 'examples/cluster', f)]);
    assert.match(
      await kubectlOk(api.adminKubeconfig, ['get', 'ingress', '-n', 'demo', '-o', 'name']),
      /ingress.networking.k8s.io\/whoami/,
    );

    await cp(path.join(ROOT, 'manifests', 'components'), path.join(work, 'components'), { recursive: true });
    await mkdir(path.join(work, 'app'));
    await writeFile(
      path.join(work, 'app', 'deploy.yaml'),
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ingress-sidecar, labels: {ingress-sidecar.dev/inject: "true"}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: ingress-sidecar
      containers: [{name: nginx, image: "nginxinc/nginx-unprivileged:1.30.4-alpine"}]
`,
    );
    await writeFile(
      path.join(work, 'app', 'kustomization.yaml'),
      'resources: [deploy.yaml]\ncomponents: [../components/sidecar]\n',
    );
    const built = (await execa('kubectl', ['kustomize', path.join(work, 'app')])).stdout;
    await kubectlOk(api.adminKubeconfig, ['apply', '-f', '-'], built);
    const pod = JSON.parse(
      await kubectlOk(api.adminKubeconfig, ['get', 'deployment', 'web', '-n', 'ingress-sidecar', '-o', 'json']),
    ) as V1Deployment;
    assert.equal(pod.spec?.template.spec?.shareProcessNamespace, true);
    assert.deepEqual(
      pod.spec?.template.spec?.containers.map((c) => c.name),
      ['nginx', 'ingress-sidecar'],
    );
  });
});
