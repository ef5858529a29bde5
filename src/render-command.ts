// `ingress-sidecar render -f FILE|DIR`: the nginx configuration that manifests produce, printed
// once, with what was rejected. For people checking a change and for CI pipelines; it never runs
// nginx and never writes a file.
//
// stdout: every rendered file, each after a line `# ---- <file name> ----` (the file's bytes
// follow unchanged, so the output splits back into the exact files).
// stderr: one readable line per problem: files that did not parse, Ingresses rejected or only
// partly served, and the directory source's warnings; then a one-line summary.
// Exit code: 0 when nothing was rejected (partly served Ingresses and warnings are reported but
// do not fail: a Service missing from the manifests is normal when only Ingresses are checked),
// 1 when an Ingress was rejected or a file failed to parse, 2 when the input cannot be read.
import type { Config } from './config.ts';
import { findExecutable } from './nginx-process.ts';
import { runtimeTranslateOptions } from './translate-options.ts';
import { renderModel } from './render.ts';
import { readManifests, type ManifestRead } from './sources/directory.ts';
import { translate } from './translate.ts';

export interface RenderStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const RENDER_OK = 0;
export const RENDER_REJECTED = 1;
export const RENDER_USAGE = 2;

export async function renderCommand(config: Config, streams: RenderStreams): Promise<number> {
  if (config.file === undefined) {
    await write(streams.stderr, 'ingress-sidecar: render needs --file (-f): a manifest file or a directory of them\n');
    return RENDER_USAGE;
  }
  let read: ManifestRead;
  try {
    read = await readManifests(config.file);
  } catch (err) {
    await write(streams.stderr, `ingress-sidecar: ${err instanceof Error ? err.message : String(err)}\n`);
    return RENDER_USAGE;
  }

  // A throwaway self-signed default certificate: render writes nothing, not even that.
  const options = await runtimeTranslateOptions(config, { nginxBinary: findExecutable(config.nginxBinary), keepDefaultCertificate: false });
  const model = translate(read.snapshot, { ...options, now: new Date() });
  let out = '';
  for (const [name, text] of renderModel(model)) out += `# ---- ${name} ----\n${text}`;
  await write(streams.stdout, out);

  const lines: string[] = [];
  for (const e of read.errors) lines.push(`error: ${e.file}: ${e.message}`);
  for (const w of read.warnings) lines.push(`warning: ${w.message}`);
  for (const w of model.warnings) lines.push(`warning: ${w}`);
  for (const r of model.rejections) lines.push(`${r.severity}: Ingress ${r.ingress}: ${r.reason}`);
  const rejected = new Set(model.rejections.filter((r) => r.severity === 'rejected').map((r) => r.ingress)).size;
  const partial = new Set(model.rejections.filter((r) => r.severity === 'partial').map((r) => r.ingress)).size;
  const summary = [
    `${count(model.served.length, 'Ingress', 'Ingresses')} served`,
    `${rejected} rejected`,
    `${partial} partly served`,
    `${count(read.errors.length, 'file', 'files')} not parsed`,
  ];
  lines.push(`ingress-sidecar render: ${summary.join(', ')}`);
  await write(streams.stderr, lines.join('\n') + '\n');

  return rejected > 0 || read.errors.length > 0 ? RENDER_REJECTED : RENDER_OK;
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
