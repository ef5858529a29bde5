// mirror-target and mirror-request-body (a copy of each request to another address);
// custom-http-errors and default-backend (who answers the errors, and which).

import type { ErrorLocation, MirrorLocation, Server } from '../model.ts';
import { InvalidValue, checkObjectName } from '../grammar.ts';
import { parseTargetHost } from './addresses.ts';
import { annotation, digest, fail, items, parseInteger, type GroupInput } from './values.ts';

export const MIRROR_TARGET = annotation('mirror-target');
export const MIRROR_REQUEST_BODY = annotation('mirror-request-body');
export const CUSTOM_HTTP_ERRORS = annotation('custom-http-errors');
export const DEFAULT_BACKEND = annotation('default-backend');

export const MIRROR_AND_ERRORS_ANNOTATIONS = [MIRROR_TARGET, MIRROR_REQUEST_BODY, CUSTOM_HTTP_ERRORS, DEFAULT_BACKEND];

/** Where mirror-target copies go inside a server; Ingress paths under it are refused. */
export const INTERNAL_PATH_PREFIX = '/_ingress_sidecar/';

/** mirror-target: where a copy of each request goes. */
export interface MirrorTarget {
  scheme: 'http' | 'https';
  /** A lowercase DNS name or an IP address (IPv6 in brackets). */
  host: string;
  port: number;
  /** The request path on the target: literal URL text and `$request_uri`; empty: the mirrored request's own URI. */
  path: Array<{ text: string } | { variable: 'request_uri' }>;
}

export interface MirrorAndErrorsAnnotations {
  mirror: { target: MirrorTarget; body: boolean } | null;
  /** custom-http-errors: the status codes whose answers the default backend replaces, sorted. */
  customErrors: number[];
  /** default-backend: a Service in the Ingress's namespace (its first port). */
  defaultBackend: string | null;
}

export const NO_MIRROR_AND_ERRORS_ANNOTATIONS: Readonly<MirrorAndErrorsAnnotations> = Object.freeze({
  mirror: null,
  customErrors: [],
  defaultBackend: null,
});

export function parseMirrorAndErrors({ r, noEffect, namespace }: GroupInput): MirrorAndErrorsAnnotations {
  const out: MirrorAndErrorsAnnotations = { mirror: null, customErrors: [], defaultBackend: null };
  const mirror = r.string(MIRROR_TARGET);
  const mirrorBody = r.string(MIRROR_REQUEST_BODY);
  let body = true;
  if (mirrorBody !== undefined) {
    const v = mirrorBody.toLowerCase();
    if (v !== 'on' && v !== 'off') throw fail(MIRROR_REQUEST_BODY, mirrorBody, 'must be "on" or "off"');
    body = v === 'on';
  }
  if (mirror !== undefined) out.mirror = { target: parseMirrorTarget(MIRROR_TARGET, mirror), body };
  else noEffect(MIRROR_REQUEST_BODY, `${MIRROR_TARGET} is not set`);

  const errors = r.string(CUSTOM_HTTP_ERRORS);
  if (errors !== undefined) {
    out.customErrors = [
      ...new Set(items(CUSTOM_HTTP_ERRORS, errors).map((c) => parseErrorCode(CUSTOM_HTTP_ERRORS, c))),
    ].sort((x, y) => x - y);
  }
  const defaultBackend = r.string(DEFAULT_BACKEND);
  if (defaultBackend !== undefined) {
    try {
      out.defaultBackend = checkObjectName('Service', defaultBackend, 'label1035');
    } catch (err) {
      if (err instanceof InvalidValue)
        throw fail(
          DEFAULT_BACKEND,
          defaultBackend,
          `is not the name of a Service (in the Ingress's namespace, ${namespace})`,
        );
      throw err;
    }
  }
  return out;
}

/** mirror-target: http(s)://host[:port][/path], the path may use $request_uri. */
export function parseMirrorTarget(name: string, value: string): MirrorTarget {
  if (value.length > 2048) throw fail(name, value, 'is longer than 2048 characters');
  const m = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(.*)$/.exec(value);
  if (!m) throw fail(name, value, 'must be an http:// or https:// URL');
  const scheme = m[1]!.toLowerCase() as 'http' | 'https';
  // Canonical forms only, never the pod itself or a metadata service (src/annotations/addresses.ts says why).
  const { host } = parseTargetHost(m[2]!, (reason) =>
    fail(name, value, `host ${JSON.stringify(m[2]!.slice(0, 100))} ${reason}`),
  );
  const port = m[3] === undefined ? (scheme === 'https' ? 443 : 80) : Number(m[3]);
  if (!(port >= 1 && port <= 65535)) throw fail(name, value, 'has a port outside 1-65535');
  const rest = m[4] ?? '';
  const path: MirrorTarget['path'] = [];
  if (rest !== '') {
    if (!rest.startsWith('/') && !rest.startsWith('$'))
      throw fail(name, value, 'must have a path starting with "/" or $request_uri after the host');
    const re = /\$(?:request_uri|\{request_uri\})|((?:[A-Za-z0-9\-._~:/?@!&'()*+,;=]|%[0-9A-Fa-f]{2})+)/y;
    let at = 0;
    while (at < rest.length) {
      re.lastIndex = at;
      const t = re.exec(rest);
      if (!t) throw fail(name, value, 'may contain only URL characters and the variable $request_uri after the host');
      path.push(t[1] !== undefined ? { text: t[1] } : { variable: 'request_uri' });
      at = re.lastIndex;
    }
  }
  return { scheme, host, port, path };
}

/** A status custom-http-errors may name: 400-599 as in ingress-nginx, less what nginx's error_page refuses (499, ngx_http_core_error_page). */
function parseErrorCode(name: string, value: string): number {
  const n = parseInteger(name, value, 400, 599);
  if (n === 499)
    throw fail(
      name,
      value,
      "is not a status nginx's error_page accepts (499 is nginx's own code for a client that closed the connection)",
    );
  return n;
}

export interface MirrorAndErrorsSettings {
  /** mirror-target: `mirror <uri>`, one of the server's `mirrors`. */
  mirror: { uri: string; body: boolean } | null;
  /** custom-http-errors: `error_page <code> = @<location>` per code, one of the server's `errorLocations`. */
  errorPages: Array<{ code: number; location: string }>;
}

export const DEFAULT_MIRROR_AND_ERRORS_SETTINGS: Readonly<MirrorAndErrorsSettings> = Object.freeze({
  mirror: null,
  errorPages: [],
});

/** The internal locations (mirror targets, error pages) that the locations' settings name. */
export class MirrorAndErrorLocations {
  private readonly mirrorTargets = new Map<string, { ingress: string; target: MirrorTarget; body: boolean }>();
  private readonly errorLocations = new Map<string, ErrorLocation>();
  private readonly opts: {
    report: (ingress: string, reason: string) => void;
    errorUpstream: (ingress: string) => { upstream: string; scheme: 'http' | 'https' } | null;
  };

  /** `errorUpstream`: the upstream that answers an Ingress's errors (its default-backend, else --default-backend-service), or null. */
  constructor(opts: MirrorAndErrorLocations['opts']) {
    this.opts = opts;
  }

  settings(ingress: string, a: MirrorAndErrorsAnnotations): MirrorAndErrorsSettings {
    let errorPages: MirrorAndErrorsSettings['errorPages'] = [];
    if (a.customErrors.length > 0) {
      const target = this.opts.errorUpstream(ingress);
      if (target === null) {
        this.opts.report(
          ingress,
          `annotation ${CUSTOM_HTTP_ERRORS} has no effect: neither its default-backend annotation nor --default-backend-service can serve the errors over HTTP or HTTPS (as in ingress-nginx, an Ingress's spec.defaultBackend never answers errors)`,
        );
      } else {
        errorPages = a.customErrors.map((code) => {
          const name = `isc_err_${code}_${digest(`${target.scheme}://${target.upstream}`, 8)}`;
          this.errorLocations.set(name, { name, code, ...target });
          return { code, location: name };
        });
      }
    }
    let mirror: MirrorAndErrorsSettings['mirror'] = null;
    if (a.mirror) {
      const uri = `${INTERNAL_PATH_PREFIX}mirror/${digest(`${ingress}\n${JSON.stringify(a.mirror)}`, 16)}`;
      this.mirrorTargets.set(uri, { ingress, target: a.mirror.target, body: a.mirror.body });
      mirror = { uri, body: a.mirror.body };
    }
    return { mirror, errorPages };
  }

  /** The internal locations a server's locations name: mirror targets and error pages, sorted. */
  serverLocations(server: Server): { mirrors: MirrorLocation[]; errorLocations: ErrorLocation[] } {
    const mirrors = new Map<string, MirrorLocation>();
    const errors = new Map<string, ErrorLocation>();
    for (const l of server.locations) {
      const m = l.settings.mirror;
      const t = m ? this.mirrorTargets.get(m.uri) : undefined;
      if (m && t && !mirrors.has(m.uri)) {
        const defaultPort = t.target.scheme === 'https' ? 443 : 80;
        const path = t.target.path.length === 0 ? [{ variable: 'request_uri' as const }] : t.target.path;
        mirrors.set(m.uri, {
          uri: m.uri,
          ingress: t.ingress,
          // Per server file: two files must never define one upstream.
          upstream: `isc_mirror_${digest(`${server.file}\n${m.uri}`, 16)}`,
          address: `${t.target.host}:${t.target.port}`,
          scheme: t.target.scheme,
          hostHeader: t.target.port === defaultPort ? t.target.host : `${t.target.host}:${t.target.port}`,
          sniName: t.target.host.replace(/^\[|\]$/g, ''),
          path: path.map((p) => ('text' in p ? p.text : '${request_uri}')).join(''),
          body: t.body,
        });
      }
      for (const e of l.settings.errorPages) errors.set(e.location, this.errorLocations.get(e.location)!);
    }
    const by =
      <T>(key: (x: T) => string) =>
      (a: T, b: T) =>
        key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
    return {
      mirrors: [...mirrors.values()].sort(by((m) => m.uri)),
      errorLocations: [...errors.values()].sort(by((e) => e.name)),
    };
  }
}

/** `derived` checks a derived name before the template writes it. */
export function mirrorAndErrorsView(s: MirrorAndErrorsSettings, derived: (name: string) => string) {
  return {
    mirror: s.mirror ? { uri: s.mirror.uri, body: s.mirror.body ? 'on' : 'off' } : null,
    errorPages: s.errorPages.map((e) => ({ code: e.code, location: derived(e.location) })),
  };
}
