// `ingress-sidecar render -f FILE|DIR`: the nginx configuration that manifests produce, printed
// once, with what was rejected. For people checking a change and for CI pipelines. It checks the
// files with `nginx -t` as `run` does, and sets aside what nginx refuses the same way (settle.ts),
// but in a temporary directory: it never touches --conf-dir or a running nginx.
//
// stdout: every rendered file, each after a line `# ---- <file name> ----` (the file's bytes
// follow unchanged, so the output splits back into the exact files).
// stderr: one readable line per problem: files that did not parse, Ingresses rejected or only
// partly served, and the directory source's warnings; then a one-line summary.
// Exit code: 0 when nothing was rejected (partly served Ingresses and warnings are reported but
// do not fail: a Service missing from the manifests is normal when only Ingresses are checked),
// 1 when an Ingress was rejected or a file failed to parse, 2 when the input cannot be read.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Applier } from '../nginx/apply.ts';
import { CertStore, certDirFor } from '../nginx/cert-store.ts';
import type { Config } from '../config.ts';
import { createMemoryLogger } from '../ops/log.ts';
import type { Rejection } from '../model.ts';
import { findExecutable } from '../nginx/process.ts';
import { runtimeTranslateOptions } from '../sync/translate-options.ts';
import { Renderer } from '../nginx/render.ts';
import { closedIngresses, settle, UnsettledError, withoutQuarantined, type Quarantined } from '../sync/settle.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { readManifests, type ManifestRead } from '../sources/read-manifests.ts';
import { showPath } from '../sources/manifest-files.ts';
import { translate, type TranslateOptions } from '../translate/index.ts';
import { describe } from '../errors.ts';

export interface RenderStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const RENDER_OK = 0;
export const RENDER_REJECTED = 1;
export const RENDER_USAGE = 2;

export async function renderCommand(config: Config, searchPath: string, streams: RenderStreams): Promise<number> {
  if (config.file === undefined) {
    await write(streams.stderr, 'ingress-sidecar: render needs --file (-f): a manifest file or a directory of them\n');
    return RENDER_USAGE;
  }
  let read: ManifestRead;
  try {
    read = await readManifests(config.file);
  } catch (err) {
    await write(streams.stderr, `ingress-sidecar: ${describe(err)}\n`);
    return RENDER_USAGE;
  }

  const lines: string[] = [];
  const nginxBinary = findExecutable(config.nginxBinary, searchPath);
  if (config.nginxCheck && !nginxBinary)
    lines.push(
      `warning: nginx binary ${JSON.stringify(config.nginxBinary)} not found; rendered without the nginx -t check`,
    );
  // A throwaway self-signed default certificate: render writes nothing, not even that.
  const options = await runtimeTranslateOptions(config, { nginxBinary, keepDefaultCertificate: false });
  const now = new Date();
  const quarantine = new Map<string, Quarantined>();
  const refusedCertificates = new Map<string, string>();
  const renderer = new Renderer();
  let unsettled: UnsettledError | null = null;
  if (config.nginxCheck && nginxBinary) {
    try {
      await checkWithNginx(read.snapshot, options, now, nginxBinary, config.confDir, {
        renderer,
        quarantine,
        refusedCertificates,
      });
    } catch (err) {
      if (!(err instanceof UnsettledError)) throw err;
      unsettled = err;
    }
  }
  // What run would serve: the check's outcome, translated for the real --conf-dir's paths.
  const model = translate(
    withoutQuarantined(read.snapshot, quarantine),
    withRefused({ ...options, now, closed: closedIngresses(quarantine) }, refusedCertificates),
  );
  let out = '';
  for (const [name, text] of renderer.render(model).files) out += `# ---- ${name} ----\n${text}`;
  await write(streams.stdout, out);

  const rejections: Rejection[] = [
    ...model.rejections,
    ...[...quarantine].map(([ingress, q]) => ({ ingress, severity: 'rejected' as const, reason: q.reason })),
  ];
  for (const e of read.errors) lines.push(`error: ${showPath(e.file)}: ${e.message}`);
  for (const o of read.outdated) lines.push(`error: ${o.message}`);
  if (unsettled) lines.push(`error: nginx -t refuses the configuration even without any Ingress: ${unsettled.summary}`);
  for (const w of read.warnings) lines.push(`warning: ${w.message}`);
  for (const w of model.warnings) lines.push(`warning: ${w}`);
  for (const r of rejections) lines.push(`${r.severity}: Ingress ${r.ingress}: ${r.reason}`);
  const rejected = new Set(rejections.filter((r) => r.severity === 'rejected').map((r) => r.ingress)).size;
  const partial = new Set(rejections.filter((r) => r.severity === 'partial').map((r) => r.ingress)).size;
  const summary = [
    `${count(model.served.length, 'Ingress', 'Ingresses')} served`,
    `${rejected} rejected`,
    `${partial} partly served`,
    `${count(read.errors.length, 'file', 'files')} not parsed`,
    ...(read.outdated.length > 0
      ? [`${count(read.outdated.length, 'Ingress', 'Ingresses')} of a removed API version not read`]
      : []),
  ];
  lines.push(`ingress-sidecar render: ${summary.join(', ')}`);
  await write(streams.stderr, lines.join('\n') + '\n');

  return rejected > 0 || read.errors.length > 0 || read.outdated.length > 0 || unsettled ? RENDER_REJECTED : RENDER_OK;
}

/**
 * run's pass, with `nginx -t` in place of the swap and reload, in a temporary conf dir (its own
 * certificate directory too, since nginx -t opens the files the config names). Fills
 * `quarantine` and `refusedCertificates` as run would; throws UnsettledError as run would.
 */
async function checkWithNginx(
  snapshot: Snapshot,
  options: Omit<TranslateOptions, 'now'>,
  now: Date,
  nginxBinary: string,
  realConfDir: string,
  state: { renderer: Renderer; quarantine: Map<string, Quarantined>; refusedCertificates: Map<string, string> },
): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-render-'));
  try {
    const confDir = path.join(tmp, 'conf.d');
    await mkdir(confDir);
    const privateDir = certDirFor(confDir);
    const checkOptions = {
      ...options,
      ...(options.tls ? { tls: { ...options.tls, certDir: privateDir } } : {}),
      ...(options.privateDir !== undefined ? { privateDir } : {}),
    };
    // Its log lines say what the rejections below say; render reports those instead.
    const { logger } = createMemoryLogger();
    const applier = new Applier({ confDir, nginxBinary, reloadTimeoutMs: 0, logger, stateDir: tmp });
    const certStore = new CertStore({ dir: privateDir });
    const settled = settle(snapshot, {
      translate: (s) =>
        translate(
          s,
          withRefused({ ...checkOptions, now, closed: closedIngresses(state.quarantine) }, state.refusedCertificates),
        ),
      prepare: (model) => certStore.write(model.certificates),
      apply: (files) => applier.check(files),
      check: (files) => applier.check(files),
      renderer: state.renderer,
      quarantine: state.quarantine,
      refusedCertificates: state.refusedCertificates,
      logger,
    });
    try {
      await settled;
    } finally {
      // nginx named the files here; users know them by --conf-dir.
      for (const q of state.quarantine.values())
        q.reason = q.reason.split(confDir + path.sep).join(path.resolve(realConfDir) + path.sep);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The options with the certificate files nginx refused, which translate treats as unusable. */
function withRefused(options: TranslateOptions, refusedCertificates: Map<string, string>): TranslateOptions {
  return options.tls ? { ...options, tls: { ...options.tls, refusedCertificates } } : options;
}

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Resolves once the stream has taken the text, so that exiting right after loses nothing. */
function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
