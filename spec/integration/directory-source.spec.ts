// DirectorySource against real temp directories and a real chokidar watcher.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { DirectorySource } from '../../src/sources/directory.ts';
import { readManifests } from '../../src/sources/read-manifests.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import type { Snapshot } from '../../src/sources/snapshot.ts';

const WAIT_MS = 5000;

/** Polls `predicate` until it holds; fails after a bounded wait. */
async function waitFor(what: string, predicate: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const ingress = (name: string, host: string, extra = ''): string => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
${extra}spec:
  rules:
  - host: ${host}
`;

const service = (name: string, namespace?: string): string => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
${namespace ? `  namespace: ${namespace}\n` : ''}spec:
  ports:
  - port: 80
`;

/**
 * A Service whose annotations hold a billion-laughs: nine levels of nine aliases, 387 million
 * strings (over 2 GB of JSON) once expanded, in 444 bytes.
 */
const billionLaughs = (name: string): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  annotations:\n` +
  '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' +
  'bcdefghi'
    .split('')
    .map(
      (c, i) =>
        `    ${c}: &${c} [${Array(9)
          .fill('*' + 'abcdefghi'[i])
          .join(',')}]\n`,
    )
    .join('');

/** A Service with an alias chain: each level nests the last 90 deep, 18,000 levels in all. */
const deepChain = (name: string): string => {
  let text = `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  annotations:\n    a0: &a0 [x]\n`;
  for (let i = 1; i < 200; i++) text += `    a${i}: &a${i} ${'['.repeat(90)}*a${i - 1}${']'.repeat(90)}\n`;
  return text;
};

/** An alias inside the node it names: js-yaml builds a cyclic object, which JSON.stringify refuses. */
const aliasCycle = (name: string): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  annotations:\n    a: &a [*a]\n`;

const names = (objs: Array<{ metadata?: { name?: string; namespace?: string } }>): string[] =>
  objs.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`);

describe('DirectorySource', () => {
  let dir: string;
  let source: DirectorySource | undefined;
  let mem: ReturnType<typeof createMemoryLogger>;
  let changes: number;
  /** The kinds each onChange named, in order. */
  let fields: Array<string | undefined> = [];

  const write = (rel: string, text: string): Promise<void> => writeFile(path.join(dir, rel), text);
  const logged = (level: string, pattern: RegExp) =>
    mem.entries.filter((e) => e['level'] === level && pattern.test(String(e['message'])));

  /** Starts a source on `dir`; onChange counts calls. */
  async function start(): Promise<DirectorySource> {
    source = new DirectorySource({ dir, logger: mem.logger });
    fields = [];
    await source.start((field) => {
      changes++;
      fields.push(field);
    });
    return source;
  }

  /** Runs `action` and waits for the onChange it causes, then returns the snapshot. */
  async function changeAfter(what: string, action: () => Promise<void>): Promise<Snapshot> {
    const before = changes;
    await action();
    await waitFor(what, () => changes > before);
    return source!.snapshot();
  }

  /** Waits until the source has read `rel` and logged whether its objects changed. */
  async function readSettled(rel: string, after: number): Promise<Record<string, unknown>> {
    const file = path.join(dir, rel);
    let entry: Record<string, unknown> | undefined;
    await waitFor(`a read of ${rel}`, () => {
      entry = mem.entries.slice(after).find((e) => e['file'] === file && 'changed' in e);
      return entry !== undefined;
    });
    return entry!;
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'directory-source-'));
    mem = createMemoryLogger();
    changes = 0;
    source = undefined;
  });

  afterEach(async () => {
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects a missing directory with a clear error', async () => {
    const missing = path.join(dir, 'nope');
    const s = new DirectorySource({ dir: missing, logger: mem.logger });
    await assert.rejects(
      s.start(() => {}),
      (err: Error) => err.message.includes(missing) && /watch directory/.test(err.message),
    );
  });

  it('has read every file when start() resolves: multi-document YAML, JSON, Lists, subdirectories', async () => {
    await write(
      'a.yaml',
      `# leading comment\n---\n${ingress('web', 'a.example', '  creationTimestamp: 2024-01-02T03:04:05Z\n')}---\n` +
        `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n---\n${service('web', 'shop')}---\n`,
    );
    await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
    await write(
      'sub/list.json',
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'IngressClass',
            metadata: { name: 'nginx', namespace: 'ignored' },
          },
          {
            apiVersion: 'discovery.k8s.io/v1',
            kind: 'EndpointSlice',
            metadata: { name: 'web-abc' },
            addressType: 'IPv4',
            endpoints: [],
          },
          { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web', namespace: 'shop' } },
        ],
      }),
    );
    // A typed list whose items omit apiVersion and kind, as API list responses do.
    await write(
      'sub/deeper/services.yml',
      'apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: api}\n- metadata: {name: aaa}\n',
    );
    await write(
      'sub/secret.yaml',
      'apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\nstringData: {tls.crt: hello}\n',
    );
    // Not manifests: dotfiles, dot-directories and other extensions.
    await write('.hidden.yaml', service('hidden'));
    await mkdir(path.join(dir, '.git'));
    await write('.git/x.yaml', service('in-dot-dir'));
    await write('README.md', service('readme'));

    await start();
    const s = source!.snapshot();

    assert.deepEqual(names(s.ingresses), ['default/web']);
    const ing = s.ingresses[0]!;
    assert.ok(ing.metadata?.creationTimestamp instanceof Date);
    assert.equal(ing.metadata.creationTimestamp.toISOString(), '2024-01-02T03:04:05.000Z');
    assert.equal(ing.spec?.rules?.[0]?.host, 'a.example');
    // Sorted by namespace, then name; namespace defaults to `default`.
    assert.deepEqual(names(s.services), ['default/aaa', 'default/api', 'shop/web']);
    assert.equal(s.services[0]!.metadata?.creationTimestamp, undefined);
    // IngressClass is cluster-scoped: no namespace, even if a file gives one.
    assert.deepEqual(names(s.ingressClasses), ['/nginx']);
    assert.deepEqual(names(s.endpointSlices), ['default/web-abc']);
    assert.deepEqual(names(s.endpoints), ['shop/web']);
    assert.deepEqual(names(s.secrets), ['default/tls']);
    // stringData lands base64-encoded in data, as the API server stores it.
    assert.deepEqual(s.secrets[0]!.data, { 'tls.crt': Buffer.from('hello').toString('base64') });
    assert.equal(changes, 0, 'the initial read does not call onChange');
    assert.equal(logged('debug', /ignoring v1 ConfigMap ignored/).length, 1);
  });

  it('warns about each v1beta1 Ingress with what to change, and takes what kubectl writes quietly', async () => {
    await write(
      'old.yaml',
      'apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: legacy, namespace: shop}\nspec:\n  backend: {serviceName: web, servicePort: 80}\n---\n' +
        'apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: older}\nspec: {}\n',
    );
    // As `kubectl create ingress ... --dry-run=client -o yaml` and `kubectl get -o yaml` write them.
    await write(
      'kubectl.yaml',
      ingress(
        'web',
        'a.example',
        '  creationTimestamp: null\n  resourceVersion: "4711"\n  uid: 0b6c7c1e-1111-2222-3333-444455556666\n  generation: 2\n' +
          '  managedFields:\n  - {apiVersion: networking.k8s.io/v1, fieldsType: FieldsV1, fieldsV1: {"f:spec": {}}, manager: kubectl, operation: Update, time: "2024-01-01T00:00:00Z"}\n',
      ) + 'status: {loadBalancer: {}}\n',
    );
    await start();
    assert.deepEqual(names(source!.snapshot().ingresses), ['default/web']);
    assert.equal(source!.snapshot().ingresses[0]!.metadata?.creationTimestamp, undefined);
    const outdated = logged('warn', /v1beta1/).map((e) => String(e['message']));
    assert.deepEqual(outdated, [
      `${path.join(dir, 'old.yaml')}: Ingress shop/legacy is extensions/v1beta1, which is not read: convert to networking.k8s.io/v1: spec.backend -> spec.defaultBackend, serviceName/servicePort -> service.name/service.port.number|name, add pathType`,
      `${path.join(dir, 'old.yaml')}: Ingress default/older is networking.k8s.io/v1beta1, which is not read: convert to networking.k8s.io/v1: spec.backend -> spec.defaultBackend, serviceName/servicePort -> service.name/service.port.number|name, add pathType`,
    ]);
    assert.deepEqual(
      mem.entries.filter((e) => e['level'] === 'warn' && !/v1beta1/.test(String(e['message']))),
      [],
      'nothing else is warned about',
    );
  });

  it('picks up files added, changed and removed after start', async () => {
    await write('a.yaml', service('a'));
    await start();
    assert.deepEqual(names(source!.snapshot().services), ['default/a']);

    let s = await changeAfter('an added file', () => write('b.yaml', service('b')));
    assert.deepEqual(names(s.services), ['default/a', 'default/b']);

    s = await changeAfter('a changed file', () => write('b.yaml', service('b2')));
    assert.deepEqual(names(s.services), ['default/a', 'default/b2']);

    // Saves in quick succession: the last one is what counts. (chokidar drops a second 'change'
    // within 50 ms of the first unless told to await write finish.)
    await changeAfter('a first quick save', () => write('b.yaml', service('quick1')));
    await write('b.yaml', service('quick2'));
    await waitFor('the second quick save', () =>
      source!.snapshot().services.some((o) => o.metadata?.name === 'quick2'),
    );
    s = await changeAfter('a changed file', () => write('b.yaml', service('b2')));
    assert.deepEqual(names(s.services), ['default/a', 'default/b2']);

    await mkdir(path.join(dir, 'new'));
    s = await changeAfter('a file in a new directory', () =>
      write('new/c.json', JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c' } })),
    );
    assert.deepEqual(names(s.services), ['default/a', 'default/b2', 'default/c']);

    s = await changeAfter('a removed file', () => unlink(path.join(dir, 'b.yaml')));
    assert.deepEqual(names(s.services), ['default/a', 'default/c']);

    s = await changeAfter('a removed directory', () => rm(path.join(dir, 'new'), { recursive: true }));
    assert.deepEqual(names(s.services), ['default/a']);
  });

  it("ends with the last of several saves within chokidar's throttle windows, however they are made", async () => {
    await write('a.yaml', service('a'));
    await start();
    const file = path.join(dir, 'a.yaml');
    const servicesAre =
      (...want: string[]) =>
      () =>
        names(source!.snapshot().services).join() === want.join();

    // Three rewrites back to back: chokidar emits the first and drops the others (50 ms throttle).
    await write('a.yaml', service('s1'));
    await write('a.yaml', service('s2'));
    await write('a.yaml', service('s3'));
    await waitFor('the third save', servicesAre('default/s3'));

    // Removed, re-created and removed again within 100 ms: chokidar reports the first removal and
    // the re-creation as one change, and drops the second removal (100 ms throttle), here more
    // than 60 ms after the change it did report.
    await unlink(file);
    await new Promise((r) => setTimeout(r, 5));
    await write('a.yaml', service('back'));
    await new Promise((r) => setTimeout(r, 75));
    await unlink(file);
    await waitFor('the second removal', servicesAre());
    // Nothing comes back later.
    await new Promise((r) => setTimeout(r, 250));
    assert.ok(servicesAre()());
  });

  it('does not drop the objects of a file that reads empty for a moment (a save between truncation and write)', async () => {
    await write('a.yaml', service('a'));
    await start();
    const mark = mem.entries.length;
    const file = path.join(dir, 'a.yaml');
    const t0 = Date.now();
    await write('a.yaml', '');
    await waitFor('a read of the empty file', () =>
      mem.entries
        .slice(mark)
        .some((e) => e['file'] === file && ('changed' in e || /reads empty/.test(String(e['message'])))),
    );
    await write('a.yaml', service('a'));
    const emptyFor = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(names(source!.snapshot().services), ['default/a']);
    // "A moment" is shorter than the last re-read (110 ms after the event). On a machine so busy
    // that the test itself took longer, the empty file was rightly taken as final for a while.
    if (emptyFor < 90) {
      assert.equal(changes, 0);
      assert.ok(mem.entries.slice(mark).every((e) => e['changed'] !== true));
    }

    // A file that stays empty is taken as empty.
    const s = await changeAfter('the emptied file', () => write('a.yaml', ''));
    assert.deepEqual(s.services, []);
  });

  it('takes a burst of files, each read once it is written, into one up-to-date snapshot', async () => {
    await start();
    const n = 60;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        write(`s${String(i).padStart(2, '0')}.yaml`, service(`s${String(i).padStart(2, '0')}`)),
      ),
    );
    await waitFor('every file', () => source!.snapshot().services.length === n);
    assert.deepEqual(
      names(source!.snapshot().services),
      Array.from({ length: n }, (_, i) => `default/s${String(i).padStart(2, '0')}`),
    );
  });

  it("takes an editor's atomic save (write a temp file, rename it over) as one change", async () => {
    await write('a.yaml', service('a'));
    await start();
    const s = await changeAfter('the renamed file', async () => {
      await write('.a.yaml.swp', service('renamed'));
      await rename(path.join(dir, '.a.yaml.swp'), path.join(dir, 'a.yaml'));
    });
    assert.deepEqual(names(s.services), ['default/renamed']);
  });

  it('reports a file that does not parse, with its path and line, and serves the others', async () => {
    await write('good.yaml', service('good'));
    await write('bad.yaml', `${service('bad')}---\nkind: Service\nmetadata: [unclosed\n`);
    await start();

    assert.deepEqual(names(source!.snapshot().services), ['default/good']);
    const errors = logged('error', /cannot parse/);
    assert.equal(errors.length, 1);
    const e = errors[0]!;
    assert.equal(e['file'], path.join(dir, 'bad.yaml'));
    assert.match(String(e['message']), new RegExp(`${path.join(dir, 'bad.yaml')}.*line \\d+`));
    assert.equal(typeof e['line'], 'number');
    assert.ok((e['line'] as number) >= 9, `line ${String(e['line'])} is within the second document`);
    assert.match(String(e['message']), /skipping it/);
  });

  it('keeps the last good objects of a file that breaks, and drops them when it is removed', async () => {
    await write('a.yaml', service('a') + '---\n' + service('a2'));
    await start();
    assert.deepEqual(names(source!.snapshot().services), ['default/a', 'default/a2']);

    const mark = mem.entries.length;
    await write('a.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: [half-writ');
    await waitFor('the parse error', () => logged('error', /cannot parse/).length > 0);
    const err = logged('error', /cannot parse/)[0]!;
    assert.equal(err['file'], path.join(dir, 'a.yaml'));
    assert.match(String(err['message']), /keeping its last good objects \(2\)/);
    assert.ok(mem.entries.slice(mark).every((e) => !('changed' in e)));
    assert.deepEqual(names(source!.snapshot().services), ['default/a', 'default/a2']);
    assert.equal(changes, 0);

    // A document that parses but is not a whole object (no kind) counts as broken too.
    await write('a.yaml', 'apiVersion: v1\nkind:\n');
    await waitFor('the second error', () => logged('error', /cannot parse/).length > 1);
    assert.match(String(logged('error', /cannot parse/)[1]!['message']), /no apiVersion and kind.*keeping/);
    assert.deepEqual(names(source!.snapshot().services), ['default/a', 'default/a2']);

    let s = await changeAfter('the repaired file', () => write('a.yaml', service('fixed')));
    assert.deepEqual(names(s.services), ['default/fixed']);
    assert.equal(logged('info', /parses again/).length, 1);

    s = await changeAfter('the removed file', () => unlink(path.join(dir, 'a.yaml')));
    assert.deepEqual(s.services, []);
  });

  it('serves an object defined in two files from the file whose path sorts first, and warns once', async () => {
    await write(
      'b.yaml',
      service('dup') + '---\n' + 'apiVersion: v1\nkind: Service\nmetadata: {name: dup}\nspec: {type: NodePort}\n',
    );
    await write('a.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: dup}\nspec: {type: ClusterIP}\n');
    await start();

    const s = source!.snapshot();
    assert.equal(s.services.length, 1);
    assert.equal(s.services[0]!.spec?.type, 'ClusterIP');
    const warns = logged('warn', /Service\/default\/dup is defined in both/);
    assert.equal(warns.length, 1);
    assert.match(
      String(warns[0]!['message']),
      new RegExp(`${path.join(dir, 'a.yaml')} and ${path.join(dir, 'b.yaml')}`),
    );
    // b.yaml itself defines it twice: the first document wins there, with its own warning.
    assert.equal(logged('warn', /b\.yaml defines Service\/default\/dup more than once/).length, 1);

    // Another change rebuilds the union; the same duplicate is not reported again.
    await changeAfter('an unrelated file', () => write('c.yaml', service('other')));
    assert.equal(logged('warn', /is defined in both/).length, 1);

    // Once a.yaml goes, b.yaml's object is served.
    const after = await changeAfter('the removed winner', () => unlink(path.join(dir, 'a.yaml')));
    assert.deepEqual(
      after.services.map((svc) => [svc.metadata?.name, svc.spec?.type]),
      [
        ['dup', undefined],
        ['other', undefined],
      ],
    );
  });

  it('names the kind of objects that changed (an endpoint change alone is answered without a render)', async () => {
    const slice = (ip: string) =>
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a-1, labels: {kubernetes.io/service-name: a}}\naddressType: IPv4\nendpoints: [{addresses: ["${ip}"]}]\n`;
    await write('a.yaml', `${service('a')}---\n${slice('10.0.0.1')}`);
    await start();
    await changeAfter('a new endpoint', () => write('a.yaml', `${service('a')}---\n${slice('10.0.0.2')}`));
    assert.deepEqual(fields, ['endpointSlices']);
    fields = [];
    await changeAfter('the file removed', () => rm(path.join(dir, 'a.yaml')));
    assert.deepEqual([...fields].sort(), ['endpointSlices', 'services']);
  });

  it('does not call onChange when a rewrite leaves the objects the same', async () => {
    await write('a.yaml', service('a'));
    await start();

    // Different text (a comment, other flow style, an ignored kind), same objects.
    let mark = mem.entries.length;
    await write(
      'a.yaml',
      '# reformatted\n' +
        'apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n',
    );
    assert.equal((await readSettled('a.yaml', mark))['changed'], false);
    assert.equal(changes, 0);

    // A change to the objects does call it.
    mark = mem.entries.length;
    await changeAfter('a real change', () => write('a.yaml', service('a', 'other')));
    assert.equal((await readSettled('a.yaml', mark))['changed'], true);
    assert.equal(changes, 1);
  });

  it('returns fresh arrays from snapshot() and stops calling onChange after stop()', async () => {
    await write('a.yaml', service('a'));
    const s = await start();
    const one = s.snapshot();
    one.services.length = 0;
    assert.equal(s.snapshot().services.length, 1);
    assert.notEqual(s.snapshot().services, s.snapshot().services);

    await s.stop();
    await write('b.yaml', service('b'));
    // Nothing is watching any more: give a stray event time to show up (negative check, so a wait).
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(changes, 0);
  });

  describe('hostile files', () => {
    const errorsFor = (rel: string) => logged('error', /./).filter((e) => e['file'] === path.join(dir, rel));

    it('refuses a billion-laughs, a deep alias chain and an alias cycle present at start, and serves the other files', async () => {
      await write('good.yaml', service('good'));
      await write('lol.yaml', billionLaughs('lol'));
      await write('deep.yaml', deepChain('deep'));
      await write('cycle.yaml', aliasCycle('cycle'));
      await start();
      assert.deepEqual(names(source!.snapshot().services), ['default/good']);
      assert.match(
        String(errorsFor('lol.yaml')[0]?.['message']),
        /cannot parse .*lol\.yaml: document at line 1 expands, through YAML aliases, past \d+ nodes and characters.*skipping it/,
      );
      assert.match(
        String(errorsFor('deep.yaml')[0]?.['message']),
        /cannot parse .*deep\.yaml: document at line 1 nests deeper than 100 levels once its YAML aliases are expanded/,
      );
      assert.match(String(errorsFor('cycle.yaml')[0]?.['message']), /cannot parse .*cycle\.yaml: .*a cycle/);

      // Still running: a later change is taken.
      const s = await changeAfter('a new file', () => write('more.yaml', service('more')));
      assert.deepEqual(names(s.services), ['default/good', 'default/more']);
    });

    it('refuses them written while running: a file that turns hostile keeps its last good objects', async () => {
      await write('a.yaml', service('a'));
      await write('b.yaml', service('b'));
      await start();
      let n = 0;
      for (const [what, text] of [
        ['a billion-laughs', billionLaughs('a')],
        ['a deep chain', deepChain('a')],
        ['a cycle', aliasCycle('a')],
      ] as const) {
        // Renamed into place: a plain rewrite may be read empty in between on a busy machine,
        // which rightly drops the objects (see the test on saves read empty for a moment).
        await write('.a.yaml.tmp', text);
        await rename(path.join(dir, '.a.yaml.tmp'), path.join(dir, 'a.yaml'));
        await waitFor(`the error for ${what}`, () => errorsFor('a.yaml').length > n);
        n = errorsFor('a.yaml').length;
        assert.match(String(errorsFor('a.yaml').at(-1)!['message']), /keeping its last good objects \(1\)/);
        await write('new.yaml', billionLaughs('new'));
      }
      assert.deepEqual(names(source!.snapshot().services), ['default/a', 'default/b']);
      const s = await changeAfter('another file', () => write('b.yaml', service('b2')));
      assert.deepEqual(names(s.services), ['default/a', 'default/b2']);
      assert.ok(errorsFor('new.yaml').length > 0, 'the new hostile file is reported');
    });

    it('refuses a Secret whose stringData value is a mapping, with the reason, and keeps the others', async () => {
      await write('good.yaml', service('good'));
      await write(
        'secret.yaml',
        'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  auth: {toString: 1}\n',
      );
      await start();
      assert.deepEqual(names(source!.snapshot().services), ['default/good']);
      assert.deepEqual(source!.snapshot().secrets, []);
      assert.match(
        String(errorsFor('secret.yaml')[0]?.['message']),
        /cannot parse .*secret\.yaml: document at line 1: Secret stringData\.auth is not a string; skipping it/,
      );
    });

    it('does not hang on a FIFO named like a manifest: it is reported, the others are served', async () => {
      await write('good.yaml', service('good'));
      await execa('mkfifo', [path.join(dir, 'pipe.yaml')]);
      await start();
      assert.deepEqual(names(source!.snapshot().services), ['default/good']);
      assert.match(
        String(errorsFor('pipe.yaml')[0]?.['message']),
        /not reading .*pipe\.yaml: it is not a regular file; skipping it/,
      );
    });

    it('refuses a file over the size limit and keeps the others', async () => {
      await write('good.yaml', service('good'));
      // 17 MiB of comments: parsing it would not hurt, reading files without bound would.
      await write(
        'huge.yaml',
        service('huge') +
          '#'
            .padEnd(1023, 'x')
            .concat('\n')
            .repeat(17 * 1024),
      );
      await start();
      assert.deepEqual(names(source!.snapshot().services), ['default/good']);
      assert.match(
        String(errorsFor('huge.yaml')[0]?.['message']),
        /not reading .*huge\.yaml: it is \d+ bytes, over the limit of 16777216; skipping it/,
      );
    });

    it('serves a kubelet ConfigMap layout (..data links) and picks up its atomic ..data swap', async () => {
      // What kubelet writes for a ConfigMap volume: a timestamped directory, `..data` linking to
      // it, and each key a link through `..data`. An update writes a new directory and renames a
      // new `..data` link over the old one.
      await mkdir(path.join(dir, '..2026_12_03_14_00_00.000000001'));
      await writeFile(path.join(dir, '..2026_12_03_14_00_00.000000001', 'svc.yaml'), service('v1'));
      await symlink('..2026_12_03_14_00_00.000000001', path.join(dir, '..data'));
      await symlink('..data/svc.yaml', path.join(dir, 'svc.yaml'));
      await start();
      assert.deepEqual(names(source!.snapshot().services), ['default/v1']);

      const s = await changeAfter('the ..data swap', async () => {
        await mkdir(path.join(dir, '..2026_12_03_14_05_00.000000002'));
        await writeFile(path.join(dir, '..2026_12_03_14_05_00.000000002', 'svc.yaml'), service('v2'));
        await symlink('..2026_12_03_14_05_00.000000002', path.join(dir, '..data_tmp'));
        await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
        await rm(path.join(dir, '..2026_12_03_14_00_00.000000001'), { recursive: true });
      });
      assert.deepEqual(names(s.services), ['default/v2']);
      assert.deepEqual(logged('error', /./), []);
    });

    it('does not follow links that resolve outside the watched directory, and reports them', async () => {
      const outside = await mkdtemp(path.join(os.tmpdir(), 'directory-source-outside-'));
      try {
        await writeFile(path.join(outside, 'theirs.yaml'), service('outside'));
        await writeFile(path.join(outside, 'shadow.yaml'), 'root:$6$secret-hash:19000:0:99999:7:::\n');
        await write('good.yaml', service('good'));
        await symlink(path.join(outside, 'theirs.yaml'), path.join(dir, 'theirs.yaml'));
        await symlink(path.join(outside, 'shadow.yaml'), path.join(dir, 'shadow.yaml'));
        await symlink(outside, path.join(dir, 'linked-dir'));
        await start();
        assert.deepEqual(names(source!.snapshot().services), ['default/good']);
        const real = await realpath(outside);
        assert.match(
          String(errorsFor('theirs.yaml')[0]?.['message']),
          new RegExp(`not reading .*theirs\\.yaml: it resolves to ${real}/theirs\\.yaml, outside `),
        );
        assert.match(
          String(errorsFor('shadow.yaml')[0]?.['message']),
          /not reading .*shadow\.yaml: it resolves to .*, outside /,
        );
        assert.match(
          String(errorsFor('linked-dir')[0]?.['message']),
          /not reading .*linked-dir: it resolves to .*, outside /,
        );
        assert.ok(
          mem.entries.every((e) => !JSON.stringify(e).includes('secret-hash')),
          'nothing of the outside file is logged',
        );

        // One made while running is refused too.
        await symlink(path.join(outside, 'theirs.yaml'), path.join(dir, 'later.yaml'));
        await waitFor('the error for later.yaml', () => errorsFor('later.yaml').length > 0);
        assert.deepEqual(names(source!.snapshot().services), ['default/good']);

        // The one-shot read (render) does the same.
        const read = await readManifests(dir);
        assert.deepEqual(names(read.snapshot.services), ['default/good']);
        assert.deepEqual(
          read.errors.map((e) => [path.basename(e.file), e.message.replace(/ it resolves to .*/, '')]).sort(),
          [
            ['later.yaml', 'not read:'],
            ['linked-dir', 'not read:'],
            ['shadow.yaml', 'not read:'],
            ['theirs.yaml', 'not read:'],
          ],
        );
      } finally {
        await rm(outside, { recursive: true, force: true });
      }
    });

    it('escapes a file name with a newline in logs and in render, so it cannot forge lines', async () => {
      const evil = 'x.yaml\nerror: forged line\u2028.yaml';
      await write('good.yaml', service('good'));
      await write(evil, 'apiVersion: v1\nkind: Service\nmetadata: [unclosed\n');
      await start();
      const e = errorsFor(evil)[0];
      assert.ok(e, 'the broken file is reported');
      assert.doesNotMatch(String(e['message']), /[\n\r\u2028]/);
      assert.ok(
        String(e['message']).includes(
          JSON.stringify(path.join(dir, 'x.yaml\nerror: forged line')).slice(0, -1) + '\\u2028.yaml"',
        ),
        String(e['message']),
      );

      const result = await execa(
        path.resolve(import.meta.dirname, '../../bin/ingress-sidecar'),
        ['render', '--no-nginx-check', '-f', dir],
        {
          env: { PATH: `${path.resolve(import.meta.dirname, '../../node_modules/.bin')}:${process.env.PATH ?? ''}` },
          reject: false,
          timeout: 30_000,
        },
      );
      assert.equal(result.exitCode, 1, result.stderr);
      assert.doesNotMatch(result.stderr, /^error: forged line/m);
      assert.match(result.stderr, /^error: ".*x\.yaml\\nerror: forged line\\u2028\.yaml": /m);
    });
  });
});
