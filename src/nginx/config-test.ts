// `nginx -t` of a desired file set as nginx's `include conf.d/*.conf` would load it, next to the
// user's own files, in a throwaway prefix; and which of our files and lines nginx blamed.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../ops/log.ts';
import { OWNED, byteOrder, writeFiles, type Files } from './conf-files.ts';

const NGINX_TEST_TIMEOUT_MS = 30_000;

/** `nginx -t` rejected the desired files; nothing in confDir was touched. */
export class NginxConfigError extends Error {
  /** Basename of our file that nginx blamed, when the error is in one of ours. */
  file?: string;
  line?: number;
  nginxOutput: string;
  /** nginx's complaint alone (`unknown "x" variable in FILE:LINE`), paths as users know them. */
  summary: string;

  constructor(message: string, nginxOutput: string, file?: string, line?: number, summary?: string) {
    super(message);
    this.name = 'NginxConfigError';
    this.nginxOutput = nginxOutput;
    this.summary = summary ?? nginxOutput.trim();
    if (file !== undefined) this.file = file;
    if (line !== undefined) this.line = line;
  }
}

export interface ConfigTestOptions {
  confDir: string;
  nginxBinary: string;
  /** Where staging directories go; os.tmpdir() when absent. */
  stateDir?: string;
  logger: Logger;
}

/**
 * Runs `nginx -t` on the complete desired set plus the user's own files, in a throwaway prefix.
 * Only the files that differ from `previous` (what confDir holds) are staged; the others are
 * included from confDir itself, where they are byte-identical. So a pass that changes one file
 * of 1,000 writes one file, not 1,000 (and deletes one).
 */
export async function testConfig(opts: ConfigTestOptions, previous: Files, desired: Files): Promise<void> {
  const { nginxBinary, confDir, stateDir, logger } = opts;
  // Absolute, because nginx resolves relative include paths against the harness's directory.
  const live = path.resolve(confDir);
  const tmp = path.resolve(await mkdtemp(path.join(stateDir ?? os.tmpdir(), 'ingress-sidecar-stage-')));
  try {
    const staging = path.join(tmp, 'staging');
    const changed = [...desired].filter(([name, content]) => previous.get(name) !== content);
    await writeFiles(staging, changed);
    // Files that nginx's `include conf.d/*.conf` would load next to ours: a clash (a duplicate
    // default_server, a port taken by two listen options) only shows when they are tested
    // together. They come first, so that nginx blames such a clash on our file, which the
    // sidecar can set aside, rather than on the user's.
    const foreign = (await readdir(confDir, { withFileTypes: true }))
      .filter((e) => e.name.endsWith('.conf') && !e.name.startsWith('.') && !OWNED.test(e.name))
      .map((e) => path.join(live, e.name))
      .sort(byteOrder);
    // Ours one by one, in the order nginx's glob gives them (byte order: nginx never sets a
    // locale), because order matters (a log_format must precede its use): changed ones from
    // staging, unchanged ones from confDir; removed ones are left out.
    const ours = [...desired.keys()]
      .sort(byteOrder)
      .map((name) => path.join(previous.get(name) === desired.get(name) ? live : staging, name));
    const harness = path.join(tmp, 'harness.conf');
    await writeFile(
      harness,
      [
        `pid ${quote(path.join(tmp, 'nginx.pid'))};`,
        'error_log stderr;',
        'events {}',
        'http {',
        // Not the compiled-in default log path, which a non-root sidecar cannot open.
        '    access_log off;',
        ...foreign.map((f) => `    include ${quote(f)};`),
        ...ours.map((f) => `    include ${quote(f)};`),
        '}',
        '',
      ].join('\n'),
    );

    const result = await execa(nginxBinary, ['-t', '-p', tmp + '/', '-e', 'stderr', '-c', harness], {
      reject: false,
      all: true,
      // nginx -t opens every log file; /dev/stdout must then be a file it can open, and
      // execa's default stdout is a socket, which cannot be opened by path (ENXIO).
      stdout: 'ignore',
      timeout: NGINX_TEST_TIMEOUT_MS,
    });
    const output = result.all ?? '';
    if (result.exitCode === undefined) {
      throw new Error(`could not run ${nginxBinary} -t: ${result.shortMessage}`);
    }
    if (result.exitCode !== 0) throw configError(output, staging, confDir, desired);
    if (output.includes('[warn]')) logger.warn('nginx -t warnings', { output: readable(output, staging, confDir) });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

function quote(p: string): string {
  return `"${p.replace(/[\\"]/g, '\\$&')}"`;
}

/** nginx names the staged copy; users know the file by its confDir path. */
function readable(output: string, staging: string, confDir: string): string {
  return output.split(staging + path.sep).join(path.resolve(confDir) + path.sep);
}

/**
 * nginx's complaint, attributed to our file when the line it names is in one: a staged copy, or an
 * unchanged file of ours included from confDir (never a foreign file there).
 */
function configError(output: string, staging: string, confDir: string, desired: Files): NginxConfigError {
  const emerg = output.split('\n').find((l) => l.includes('[emerg]')) ?? output.split('\n')[0] ?? '';
  const summary = emerg.replace(/^.*?\[emerg\]\s+(\d+#\d+:\s+)?/, '');
  const where = / in (\/.*?):(\d+)\s*$/.exec(emerg);
  let file: string | undefined;
  let line: number | undefined;
  if (where?.[1] !== undefined) {
    const dir = path.dirname(where[1]);
    const name = path.basename(where[1]);
    if (dir === staging || (dir === path.resolve(confDir) && OWNED.test(name) && desired.has(name))) {
      file = name;
      line = Number(where[2]);
    }
  }
  const text = readable(summary, staging, confDir).trim();
  return new NginxConfigError(`nginx -t rejected the configuration: ${text}`, output, file, line, text);
}
