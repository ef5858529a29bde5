// readManifests() reads a file or a directory tree once, through the same parsing and merging
// code as DirectorySource, for one-shot uses (the `render` command, golden tests).
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Stats } from 'node:fs';
import type { Snapshot } from './snapshot.ts';
import {
  errorMessage,
  manifestFiles,
  readManifestText,
  RefusedFile,
  showPath,
  type ManifestProblem,
} from './manifest-files.ts';
import { duplicateMessage, mergeFiles, parseManifestFile, type Entry } from './manifest-parse.ts';

export type { ManifestProblem } from './manifest-files.ts';

export interface ManifestRead {
  snapshot: Snapshot;
  /** Files that could not be read or parsed; none of their objects is in the snapshot. */
  errors: ManifestProblem[];
  /**
   * Objects left out or adjusted while the rest was used: an object defined twice (the first,
   * by path, wins), an invalid creationTimestamp. Each message names the file(s) itself.
   */
  warnings: ManifestProblem[];
  /** Ingresses of a removed API version (v1beta1), left out, each with what to change. */
  outdated: ManifestProblem[];
}

/**
 * Reads a manifest file, or every manifest (`*.yaml`, `*.yml`, `*.json`, dot-paths skipped) under
 * a directory, once, with DirectorySource's parsing and merging. A file named explicitly is read
 * whatever its extension. A file that does not parse is reported in `errors` and contributes
 * nothing (there is no "last good" version to keep). Throws only when the path itself cannot be
 * read.
 */
export async function readManifests(pathToFileOrDir: string): Promise<ManifestRead> {
  const root = path.resolve(pathToFileOrDir);
  let st: Stats;
  try {
    st = await stat(root);
  } catch (err) {
    throw new Error(`${showPath(root)} cannot be read: ${errorMessage(err)}`, { cause: err });
  }
  const errors: ManifestProblem[] = [];
  // Files under a directory must resolve inside it; a file named explicitly is read wherever it is.
  const rootReal = st.isDirectory() ? await realpath(root) : undefined;
  const files = rootReal !== undefined ? await manifestFiles(root, rootReal, errors) : [root];
  const warnings: ManifestProblem[] = [];
  const outdated: ManifestProblem[] = [];
  const parsed = new Map<string, Entry[]>();
  for (const file of files) {
    let text: string;
    try {
      text = await readManifestText(file, rootReal);
    } catch (err) {
      errors.push({
        file,
        message: err instanceof RefusedFile ? `not read: ${err.message}` : `cannot be read: ${errorMessage(err)}`,
      });
      continue;
    }
    try {
      parsed.set(
        file,
        parseManifestFile(file, text, {
          warn: (message) => warnings.push({ file, message }),
          outdated: (message) => outdated.push({ file, message }),
          debug: () => {},
        }),
      );
    } catch (err) {
      errors.push({ file, message: errorMessage(err) });
    }
  }
  const snapshot = mergeFiles(parsed, ({ key, used, ignored }) =>
    warnings.push({ file: ignored, message: duplicateMessage({ key, used, ignored }) }),
  );
  return { snapshot, errors, warnings, outdated };
}
