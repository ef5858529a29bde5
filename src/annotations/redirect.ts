// Redirects and rewrites: ssl-redirect, force-ssl-redirect, preserve-trailing-slash, use-regex,
// rewrite-target, app-root, x-forwarded-prefix, permanent-redirect and temporal-redirect (and
// their codes).

import { isIP } from 'node:net';
import { isDnsSubdomain } from '../grammar.ts';
import { annotation, fail, type GroupInput } from './values.ts';

export const SSL_REDIRECT_ANNOTATION = annotation('ssl-redirect');
export const FORCE_SSL_REDIRECT_ANNOTATION = annotation('force-ssl-redirect');
export const PRESERVE_TRAILING_SLASH = annotation('preserve-trailing-slash');
export const USE_REGEX = annotation('use-regex');
export const REWRITE_TARGET = annotation('rewrite-target');
export const APP_ROOT = annotation('app-root');
export const X_FORWARDED_PREFIX = annotation('x-forwarded-prefix');
export const PERMANENT_REDIRECT = annotation('permanent-redirect');
export const PERMANENT_REDIRECT_CODE = annotation('permanent-redirect-code');
export const TEMPORAL_REDIRECT = annotation('temporal-redirect');
export const TEMPORAL_REDIRECT_CODE = annotation('temporal-redirect-code');

export const REDIRECT_ANNOTATIONS = [
  SSL_REDIRECT_ANNOTATION,
  FORCE_SSL_REDIRECT_ANNOTATION,
  PRESERVE_TRAILING_SLASH,
  USE_REGEX,
  REWRITE_TARGET,
  APP_ROOT,
  X_FORWARDED_PREFIX,
  PERMANENT_REDIRECT,
  PERMANENT_REDIRECT_CODE,
  TEMPORAL_REDIRECT,
  TEMPORAL_REDIRECT_CODE,
];

/** nginx `return` codes that send a Location header. */
export type RedirectCode = 301 | 302 | 303 | 307 | 308;

/**
 * A rewrite-target: literal text and regex capture references ($1-$9), in order. When the first
 * text is an origin (`https://host[:port]`), nginx answers with a 302 redirect to the result
 * instead of rewriting the URI, as it does for ingress-nginx's identical `rewrite` directive.
 */
export type RewriteTarget = Array<{ text: string } | { capture: number }>;

/** Variables a redirect URL may use: none of them can carry a CR or LF into the Location header. */
export const REDIRECT_VARIABLES = ['request_uri', 'host', 'scheme', 'args', 'is_args'] as const;
export type RedirectVariable = (typeof REDIRECT_VARIABLES)[number];
export type RedirectUrl = Array<{ text: string } | { variable: RedirectVariable }>;

export interface RedirectAnnotations {
  /** ssl-redirect, when set. */
  sslRedirect: boolean | null;
  forceSslRedirect: boolean;
  /** preserve-trailing-slash: HTTPS redirects keep a trailing "/" of the request URI (ingress-nginx strips it). */
  preserveTrailingSlash: boolean;
  /** use-regex, or implied by rewrite-target: ImplementationSpecific paths are regular expressions. */
  useRegex: boolean;
  rewriteTarget: RewriteTarget | null;
  appRoot: string | null;
  xForwardedPrefix: string | null;
  redirect: { code: RedirectCode; url: RedirectUrl } | null;
}

export const NO_REDIRECT_ANNOTATIONS: Readonly<RedirectAnnotations> = Object.freeze({
  sslRedirect: null,
  forceSslRedirect: false,
  preserveTrailingSlash: false,
  useRegex: false,
  rewriteTarget: null,
  appRoot: null,
  xForwardedPrefix: null,
  redirect: null,
});

/** ssl-redirect, force-ssl-redirect and preserve-trailing-slash: they act only with TLS. */
export function parseSslRedirect({
  r,
  noEffect,
  tlsEnabled,
}: GroupInput): Pick<RedirectAnnotations, 'sslRedirect' | 'forceSslRedirect' | 'preserveTrailingSlash'> {
  const out = {
    sslRedirect: r.bool(SSL_REDIRECT_ANNOTATION) ?? null,
    forceSslRedirect: r.bool(FORCE_SSL_REDIRECT_ANNOTATION) ?? false,
    preserveTrailingSlash: r.bool(PRESERVE_TRAILING_SLASH) ?? false,
  };
  if (!tlsEnabled) {
    noEffect(SSL_REDIRECT_ANNOTATION, 'TLS is not enabled in this sidecar');
    noEffect(FORCE_SSL_REDIRECT_ANNOTATION, 'TLS is not enabled in this sidecar');
    noEffect(PRESERVE_TRAILING_SLASH, 'TLS is not enabled in this sidecar');
  }
  return out;
}

/** rewrite-target, use-regex, app-root, x-forwarded-prefix and the redirects. */
export function parseRewrite({
  r,
  noEffect,
}: GroupInput): Pick<RedirectAnnotations, 'useRegex' | 'rewriteTarget' | 'appRoot' | 'xForwardedPrefix' | 'redirect'> {
  const target = r.string(REWRITE_TARGET);
  const rewriteTarget = target === undefined ? null : parseRewriteTarget(REWRITE_TARGET, target);
  // ingress-nginx: rewrite-target implies use-regex.
  const useRegex = (r.bool(USE_REGEX) ?? false) || rewriteTarget !== null;
  const root = r.string(APP_ROOT);
  const appRoot = root === undefined ? null : parseRedirectPath(APP_ROOT, root);
  let xForwardedPrefix: string | null = null;
  const prefix = r.string(X_FORWARDED_PREFIX);
  if (prefix !== undefined) {
    // ingress-nginx's grammar for it (BasicCharsRegex); it becomes a request header's value.
    if (!/^[A-Za-z0-9\-._~:/]{1,1024}$/.test(prefix))
      throw fail(X_FORWARDED_PREFIX, prefix, 'may contain only letters, digits, "-", ".", "_", "~", ":" and "/"');
    xForwardedPrefix = prefix;
  }

  // ingress-nginx: temporal-redirect wins over permanent-redirect.
  let redirect: RedirectAnnotations['redirect'] = null;
  const temporal = r.string(TEMPORAL_REDIRECT);
  const permanent = r.string(PERMANENT_REDIRECT);
  const temporalCode = r.string(TEMPORAL_REDIRECT_CODE);
  const permanentCode = r.string(PERMANENT_REDIRECT_CODE);
  const notes: Array<[string, string]> = [];
  const note = (n: string, why: string) => notes.push([n, why]);
  const tCode =
    temporalCode === undefined ? 302 : parseRedirectCode(TEMPORAL_REDIRECT_CODE, temporalCode, 302, 307, note);
  const pCode =
    permanentCode === undefined ? 301 : parseRedirectCode(PERMANENT_REDIRECT_CODE, permanentCode, 301, 308, note);
  const tUrl = temporal === undefined ? null : parseRedirectUrl(TEMPORAL_REDIRECT, temporal);
  const pUrl = permanent === undefined ? null : parseRedirectUrl(PERMANENT_REDIRECT, permanent);
  if (tUrl) {
    redirect = { code: tCode, url: tUrl };
    for (const [n, why] of notes) if (n === TEMPORAL_REDIRECT_CODE) noEffect(n, why);
    noEffect(PERMANENT_REDIRECT, `${TEMPORAL_REDIRECT} takes precedence, as in ingress-nginx`);
    noEffect(PERMANENT_REDIRECT_CODE, `${TEMPORAL_REDIRECT} takes precedence, as in ingress-nginx`);
  } else if (pUrl) {
    redirect = { code: pCode, url: pUrl };
    for (const [n, why] of notes) if (n === PERMANENT_REDIRECT_CODE) noEffect(n, why);
    noEffect(TEMPORAL_REDIRECT_CODE, `${TEMPORAL_REDIRECT} is not set`);
  } else {
    noEffect(TEMPORAL_REDIRECT_CODE, `${TEMPORAL_REDIRECT} is not set`);
    noEffect(PERMANENT_REDIRECT_CODE, `${PERMANENT_REDIRECT} is not set`);
  }
  return { useRegex, rewriteTarget, appRoot, xForwardedPrefix, redirect };
}

// Characters of a URL path that need no thought: RFC 3986 pchar without "$" (nginx would read a
// variable) and "%" (checked separately, as escapes), plus "/".
const PATH_LITERAL = /^[A-Za-z0-9\-._~!&'()*+,;=:@/]$/;

/** The variables a redirect may carry, as the message lists them. */
const REDIRECT_VARIABLE_LIST = REDIRECT_VARIABLES.map((v) => `$${v}`).join(', ');

/**
 * app-root: an absolute URL path (and optional query) with valid percent-escapes, and `$` only for
 * the redirect variables ($request_uri, $host, $scheme, $args, $is_args, or `${name}`), as
 * ingress-nginx users write `/login$is_args$args`. Returned with each variable written `${name}`,
 * so that text after it cannot extend its name.
 */
export function parseRedirectPath(name: string, value: string): string {
  if (!value.startsWith('/') || value.startsWith('//'))
    throw fail(name, value, 'must be an absolute path starting with a single "/"');
  if (value.length > 1024) throw fail(name, value, 'is longer than 1024 characters');
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '%' && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      out += value.slice(i, i + 3);
      i += 2;
    } else if (c === '$') {
      const m = /^\$(?:([A-Za-z0-9_]+)|\{([A-Za-z0-9_]+)\})/.exec(value.slice(i));
      const v = m ? (m[1] ?? m[2]!) : '';
      if (!(REDIRECT_VARIABLES as readonly string[]).includes(v))
        throw fail(
          name,
          value,
          m
            ? `uses $${v.slice(0, 40)}; only ${REDIRECT_VARIABLE_LIST} may appear in app-root`
            : `has a "$" that does not start one of the variables ${REDIRECT_VARIABLE_LIST}`,
        );
      out += `\${${v}}`;
      i += m![0].length - 1;
    } else if (PATH_LITERAL.test(c) || c === '?') {
      out += c;
    } else {
      throw fail(name, value, `may contain only URL path characters (not ${JSON.stringify(c)})`);
    }
  }
  return out;
}

// A rewrite-target's origin: http(s)://, a host (a DNS name, a dotted quad or a bracketed IPv6
// address; no capture, so that a request cannot choose where it is sent) and an optional port.
const REWRITE_ORIGIN = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?=[/$]|$)/;
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The origin an absolute rewrite-target starts with (`https://host[:port]`), or null when it is a path. */
function rewriteOrigin(name: string, value: string): string | null {
  if (!/^https?:/i.test(value)) return null;
  // nginx redirects only for a lowercase scheme: with "HTTPS://" it would rewrite the URI to that text.
  if (!/^https?:/.test(value)) throw fail(name, value, 'must write its scheme in lowercase (http:// or https://)');
  const m = REWRITE_ORIGIN.exec(value);
  if (!m) throw fail(name, value, 'must be http(s)://HOST[:PORT] followed by nothing or a path starting with "/"');
  const host = m[2]!.toLowerCase();
  const bare = host.startsWith('[') ? host.slice(1, -1) : null;
  const labels = host.split('.');
  const ok =
    bare !== null
      ? host.endsWith(']') && isIP(bare) === 6
      : DOTTED_QUAD.test(host) || (isDnsSubdomain(host) && !/^(0x[0-9a-f]*|\d+)$/.test(labels[labels.length - 1]!));
  if (!ok)
    throw fail(
      name,
      value,
      'must name a DNS host, a dotted-quad IPv4 address or a bracketed IPv6 address after http(s)://',
    );
  if (m[3] !== undefined && !(Number(m[3]) >= 1 && Number(m[3]) <= 65535))
    throw fail(name, value, 'has a port outside 1-65535');
  if (value[m[0].length] === '$')
    throw fail(name, value, 'must have "/" between the host and a capture group (a capture could extend the host)');
  return m[0];
}

/**
 * rewrite-target: ingress-nginx's grammar (letters, digits, "-._~:/") and $1-$9 or ${1}-${9}; it
 * may start with http(s)://HOST[:PORT], which nginx answers as a 302 redirect.
 */
export function parseRewriteTarget(name: string, value: string): RewriteTarget {
  if (value.length > 1024) throw fail(name, value, 'is longer than 1024 characters');
  const origin = rewriteOrigin(name, value);
  const out: RewriteTarget = origin === null ? [] : [{ text: origin }];
  const re = /\$(?:([1-9])|\{([1-9])\})|([A-Za-z0-9\-._~:/]+)/y;
  let at = origin?.length ?? 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m)
      throw fail(
        name,
        value,
        'may contain only letters, digits, "-", ".", "_", "~", ":", "/" and the capture groups $1 to $9 (after an optional http(s)://HOST[:PORT])',
      );
    if (m[3] !== undefined) out.push({ text: m[3] });
    else out.push({ capture: Number(m[1] ?? m[2]) });
    at = re.lastIndex;
  }
  const first = out[0];
  if (origin === null && (!first || ('text' in first && !first.text.startsWith('/'))))
    throw fail(name, value, 'must start with "/", a capture group or http(s)://HOST');
  // Adjacent texts (the origin and its path) are one text.
  return out.reduce<RewriteTarget>((acc, p) => {
    const last = acc[acc.length - 1];
    if (last && 'text' in last && 'text' in p) acc[acc.length - 1] = { text: last.text + p.text };
    else acc.push(p);
    return acc;
  }, []);
}

/** A redirect URL: http(s), URL characters only, and "$" only for a few variables that cannot carry CR or LF. */
export function parseRedirectUrl(name: string, value: string): RedirectUrl {
  if (value.length > 2048) throw fail(name, value, 'is longer than 2048 characters');
  if (!/^https?:\/\/[^/?#$]/i.test(value)) throw fail(name, value, 'must be an absolute http:// or https:// URL');
  const out: RedirectUrl = [];
  // RFC 3986 characters (reserved and unreserved), percent-escapes, and the allowed variables.
  const re = /\$(?:([a-z_]+)|\{([a-z_]+)\})|((?:[A-Za-z0-9\-._~:/?#[\]@!&'()*+,;=]|%[0-9A-Fa-f]{2})+)/y;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m)
      throw fail(
        name,
        value,
        'may contain only URL characters and the variables $request_uri, $host, $scheme, $args and $is_args',
      );
    if (m[3] !== undefined) out.push({ text: m[3] });
    else {
      const v = m[1] ?? m[2] ?? '';
      if (!(REDIRECT_VARIABLES as readonly string[]).includes(v)) {
        throw fail(
          name,
          value,
          `uses $${v.slice(0, 40)}; only $request_uri, $host, $scheme, $args and $is_args may appear in a redirect URL`,
        );
      }
      out.push({ variable: v as RedirectVariable });
    }
    at = re.lastIndex;
  }
  return out;
}

/**
 * A redirect code as ingress-nginx reads it: outside 300 to `max` (307 for temporal-redirect-code,
 * 308 for permanent-redirect-code) it uses its default code, and so does this (noted). Within
 * that range only the codes with which nginx's `return` sends a Location are accepted.
 */
function parseRedirectCode(
  name: string,
  value: string,
  fallback: RedirectCode,
  max: 307 | 308,
  note: (name: string, why: string) => void,
): RedirectCode {
  const n = /^[+-]?\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (Number.isNaN(n)) throw fail(name, value, 'is not a whole number (a redirect status: 301, 302, 303, 307 or 308)');
  if (n < 300 || n > max) {
    note(name, `${JSON.stringify(value)} is outside 300-${max}, so ${fallback} is used, as in ingress-nginx`);
    return fallback;
  }
  if (n === 301 || n === 302 || n === 303 || n === 307 || n === 308) return n;
  // nginx's `return` sends a Location header with these codes only; others would send the URL as a body.
  throw fail(
    name,
    value,
    "is not a redirect status nginx sends a Location with: 301, 302, 303, 307 or 308 (ingress-nginx's 300, 304, 305 and 306 answer without one)",
  );
}

export interface RedirectSettings {
  /**
   * `rewrite REGEX REPLACEMENT break;`: the regex is built by translate from a validated path; the
   * replacement is URL path text whose only `$` are the captures `$1` to `$9`, optionally after an
   * origin `http(s)://HOST[:PORT]` (then nginx answers 302 with the result as Location).
   */
  rewrite: { regex: string; replacement: string } | null;
  /** The X-Forwarded-Prefix request header: letters, digits, "-._~:/". */
  xForwardedPrefix: string | null;
  /**
   * app-root: a path and query whose only `$` start `${request_uri}`, `${host}`, `${scheme}`,
   * `${args}` or `${is_args}`; a request for `/` is answered 302 to it.
   */
  appRoot: string | null;
  /**
   * permanent-redirect or temporal-redirect: every request is answered with this status and URL.
   * The URL is URL text whose only `$` start `${request_uri}`, `${host}`, `${scheme}`,
   * `${args}` or `${is_args}`.
   */
  redirect: { code: RedirectCode; url: string } | null;
  /** preserve-trailing-slash: the HTTPS redirect keeps a trailing "/" of the request URI; else it is cut, as ingress-nginx does. */
  preserveTrailingSlash: boolean;
}

/** The settings of an Ingress's locations; `rewrite` is per location (RewriteTarget applies to its path's regex). */
export function redirectSettings(a: RedirectAnnotations): Omit<RedirectSettings, 'rewrite'> {
  return {
    preserveTrailingSlash: a.preserveTrailingSlash,
    xForwardedPrefix: a.xForwardedPrefix,
    appRoot: a.appRoot,
    redirect: a.redirect ? { code: a.redirect.code, url: redirectUrl(a.redirect.url) } : null,
  };
}

export function rewriteReplacement(t: RewriteTarget): string {
  return t.map((p) => ('text' in p ? p.text : `$${p.capture}`)).join('');
}

function redirectUrl(u: RedirectUrl): string {
  return u.map((p) => ('text' in p ? p.text : `\${${p.variable}}`)).join('');
}

/** Whether nginx answers a rewrite's replacement with a redirect (it starts with a lowercase http:// or https://). */
export const isRedirectReplacement = (replacement: string) => /^https?:\/\//.test(replacement);

export function redirectView(s: RedirectSettings) {
  // An absolute rewrite-target comes before the HTTPS redirect: ingress-nginx's is Lua, run after
  // the location's rewrite directives, so the target's 302 is what an http:// request gets there.
  const redirecting = s.rewrite !== null && isRedirectReplacement(s.rewrite.replacement);
  return {
    // The template writes every one of these next to a fixed directive; `$` appears only where the
    // model says a variable belongs (captures, the redirect variables).
    appRoot: s.appRoot === null ? '' : `$scheme://$ingress_sidecar_host${s.appRoot}`,
    redirect: s.redirect ? { code: s.redirect.code, url: s.redirect.url } : null,
    rewrite: redirecting ? null : s.rewrite,
    redirectRewrite: redirecting ? s.rewrite : null,
    xForwardedPrefix: s.xForwardedPrefix ?? '',
  };
}

/** The settings of an Ingress without these annotations. */
export const DEFAULT_REDIRECT_SETTINGS: Readonly<RedirectSettings> = Object.freeze({
  rewrite: null,
  ...redirectSettings(NO_REDIRECT_ANNOTATIONS),
});
