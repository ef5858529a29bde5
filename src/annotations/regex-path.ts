// Regular-expression paths (use-regex): the subset of PCRE that nginx and JavaScript read alike,
// and literals escaped for a PCRE pattern.

import { InvalidValue } from '../grammar.ts';
import { shown } from './values.ts';

/**
 * An ImplementationSpecific path of an Ingress with use-regex (or rewrite-target): a regular
 * expression that nginx anchors at the start and matches case-insensitively, as ingress-nginx's
 * `location ~* "^PATH"`. A narrow subset of PCRE that JavaScript parses the same way: no `(?`
 * (named groups would set nginx variables; no inline options or lookaround), no backslash
 * escapes beyond \d \w \s \b and escaped punctuation, no POSIX classes, bounded repetition.
 */
export function parseRegexPath(raw: string): string {
  const why = (reason: string) => new InvalidValue(`path ${shown(raw)} (a regular expression: use-regex): ${reason}`);
  if (!raw.startsWith('/')) throw why('must start with "/"');
  if (raw.length > 1024) throw why('is longer than 1024 characters');
  if (raw.includes('(?'))
    throw why('must not contain "(?": named groups, inline options and lookaround are not allowed');
  if (!/^[A-Za-z0-9\-._~!&'*+,;=:@%/()[\]{}|?^$\\]+$/.test(raw))
    throw why('may contain only URL path characters and ( ) [ ] { } | ? ^ $ \\');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '\\') continue;
    const next = raw[i + 1];
    if (next === undefined || !/[dDwWsSbB.\-/()[\]{}|?*+^$\\]/.test(next))
      throw why('may escape only punctuation and d, D, w, W, s, S, b, B with "\\"');
    i++;
  }
  if (/\[\^?\]/.test(raw)) throw why('has an empty character class');
  if (/\[([.:=])[^\]]*\1\]/.test(raw)) throw why('must not use POSIX classes ([:alpha:] and the like)');
  for (const m of raw.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
    if (Number(m[1]) > 1000 || (m[2] !== undefined && m[2] !== '' && Number(m[2]) > 1000))
      throw why('repeats more than 1000 times');
  }
  try {
    new RegExp(raw);
  } catch (err) {
    throw why(
      `is not a valid regular expression (${(err as Error).message.replace(/^Invalid regular expression: /, '').slice(0, 100)})`,
    );
  }
  checkPcre(raw, why);
  return raw;
}

// PCRE2 compiles a pattern into at most 64K code units (the default LINK_SIZE); beyond that nginx
// refuses the whole config ("regular expression is too large"). This is an estimate in those
// units, on the high side (measured with nginx -t: ((ab){70}){70} compiles, ((ab){80}){80} does not).
const MAX_PCRE_UNITS = 40_000;

/**
 * Throws `why(reason)` where PCRE2 (which nginx compiles the regex with) reads a pattern that
 * JavaScript's RegExp accepts differently or not at all: a class range with a class escape as an
 * endpoint ("[\d-z]": a literal "-" to JavaScript, "invalid range in character class" to PCRE2),
 * \B in a class, a "{" or "}" that is not part of a complete {n}, {n,} or {n,m} ("{,3}" is a
 * quantifier in PCRE2 10.43 and later, a literal to JavaScript), and group repetitions that
 * compile too large. The one npm PCRE2 binding found (`pcre2` 0.1.1, a single release, a native
 * addon to build against libpcre2) is not one to depend on, so the subset is narrowed to what both
 * engines read alike.
 */
function checkPcre(raw: string, why: (reason: string) => InvalidValue): void {
  type Frame = { size: number; last: number };
  const stack: Frame[] = [{ size: 0, last: 0 }];
  const top = () => stack[stack.length - 1]!;
  const atom = (units: number) => {
    top().size += units;
    top().last = units;
  };
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\\') {
      i++;
      atom(2);
    } else if (c === '[') {
      // A class: items are single characters, escapes, or ranges between two of them.
      let j = i + 1;
      if (raw[j] === '^') j++;
      // A "-" first in the class is a literal ("[]" and "[^]" were refused before).
      const itemsStart = j;
      let prevClassEscape = false;
      for (; j < raw.length && raw[j] !== ']'; j++) {
        const d = raw[j]!;
        if (d === '\\') {
          const e = raw[j + 1] ?? '';
          if (e === 'B') throw why('uses \\B in a character class, which PCRE2 refuses');
          const classEscape = /[dDwWsS]/.test(e);
          if (classEscape && raw[j - 1] === '-' && j - 1 > itemsStart) {
            throw why(
              'has a range in a character class ending in \\d, \\w or \\s ("[a-\\d]"), which PCRE2 refuses; put "-" first or last in the class',
            );
          }
          prevClassEscape = classEscape;
          j++;
          continue;
        }
        if (d === '-' && prevClassEscape && raw[j + 1] !== ']') {
          throw why(
            'has a range in a character class starting at \\d, \\w or \\s ("[\\d-z]"), which PCRE2 refuses; put "-" first or last in the class',
          );
        }
        prevClassEscape = false;
      }
      i = j;
      atom(2);
    } else if (c === '(') {
      stack.push({ size: 6, last: 0 });
    } else if (c === ')') {
      const f = stack.length > 1 ? stack.pop()! : top();
      atom(f.size);
    } else if (c === '|') {
      top().size += 3;
      top().last = 0;
    } else if (c === '{') {
      const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(raw.slice(i));
      if (!m || top().last === 0)
        throw why(
          'has a "{" that does not start a repetition {n}, {n,} or {n,m} after something to repeat; escape it as "\\{"',
        );
      const n = Number(m[1]);
      const copies = m[2] === undefined ? n : m[3] === '' ? n + 1 : Math.max(n, Number(m[3]));
      const f = top();
      // A single character or class repeats in one instruction; a group is copied.
      if (f.last > 2) f.size += f.last * (Math.max(copies, 1) - 1);
      f.size += 2;
      f.last = 0;
      i += m[0].length - 1;
    } else if (c === '}') {
      throw why('has a "}" that does not end a repetition; escape it as "\\}"');
    } else if (c === '*' || c === '+' || c === '?') {
      top().size += 2;
    } else {
      atom(2);
    }
    if (top().size > MAX_PCRE_UNITS) throw why('repeats its groups so often that PCRE2 would refuse it as too large');
  }
  let total = 0;
  for (const f of stack) total += f.size;
  if (total > MAX_PCRE_UNITS) throw why('repeats its groups so often that PCRE2 would refuse it as too large');
}

/** A literal as a PCRE pattern: every ASCII character but letters, digits, "/", "_" and "-" escaped. */
export function regexLiteral(text: string): string {
  return text.replace(/[^A-Za-z0-9/_-]/g, (c) => (c.charCodeAt(0) < 0x80 ? `\\${c}` : c));
}
