// The docs stay true to the tree: every relative link in README.md and docs/*.md points at a file or
// folder that exists, every #anchor at a heading of the file it names (GitHub's heading ids), and
// every repository path the docs name in backticks exists, so that moving a file or renaming a
// heading cannot leave a dead reference behind. docs/benchmarks.md is exempt from the path check
// only: it records runs of older commits, under the paths of their day.

import { deepStrictEqual } from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const docs = [
  'README.md',
  ...readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

/** The lines outside fenced code blocks: links and headings in code are not links and headings. */
const prose = (text: string) => {
  let fenced = false;
  return text.split('\n').filter((line) => {
    if (/^\s*```/.test(line)) fenced = !fenced;
    else return !fenced;
    return false;
  });
};

/** GitHub's id for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
const anchors = (file: string) => {
  const seen = new Map<string, number>();
  const ids = new Set<string>();
  for (const line of prose(read(file))) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n === 0 ? base : `${base}-${n}`);
  }
  return ids;
};

/** Every `](target)` of a file, outside code. */
const links = (file: string) =>
  prose(read(file)).flatMap((line) =>
    [...line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!),
  );

describe('docs: links and paths', () => {
  it('every relative link points at an existing file, and every #anchor at a heading of it', () => {
    const dead: string[] = [];
    for (const file of docs) {
      for (const target of links(file)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [rel, anchor] = target.split('#', 2) as [string, string | undefined];
        const to = rel === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), decodeURI(rel)));
        const abs = path.join(root, to);
        if (to.startsWith('../') || !existsSync(abs)) {
          dead.push(`${file}: ${target} (no ${to})`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!statSync(abs).isFile() || !to.endsWith('.md'))
          dead.push(`${file}: ${target} (an anchor into ${to}, not a markdown file)`);
        else if (!anchors(to).has(anchor)) dead.push(`${file}: ${target} (${to} has no heading #${anchor})`);
      }
    }
    deepStrictEqual(dead, []);
  });

  it('every repository path named in backticks exists', () => {
    const missing: string[] = [];
    for (const file of docs.filter((f) => f !== 'docs/benchmarks.md')) {
      for (const line of prose(read(file))) {
        for (const m of line.matchAll(
          /`((?:src|spec|bench|manifests|examples|scripts|nginx|bin|docs|\.ci)\/[^`\s]*)`/g,
        )) {
          const p = m[1]!;
          if (/[*<>{}]/.test(p)) continue; // a pattern (`nginx/*.mustache`), not a path
          if (!existsSync(path.join(root, p))) missing.push(`${file}: ${p}`);
        }
      }
    }
    deepStrictEqual(missing, []);
  });
});
