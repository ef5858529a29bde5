// proxy-*: body size, timeouts, buffering; backend-protocol: how nginx talks to the Service.

import { annotation, fail, parseSeconds, parseSize, type GroupInput, type Size } from './values.ts';

export const PROXY_BODY_SIZE = annotation('proxy-body-size');
export const PROXY_CONNECT_TIMEOUT = annotation('proxy-connect-timeout');
export const PROXY_SEND_TIMEOUT = annotation('proxy-send-timeout');
export const PROXY_READ_TIMEOUT = annotation('proxy-read-timeout');
export const PROXY_BUFFERING = annotation('proxy-buffering');
export const PROXY_BUFFER_SIZE = annotation('proxy-buffer-size');
export const BACKEND_PROTOCOL = annotation('backend-protocol');

export const PROXY_ANNOTATIONS = [
  PROXY_BODY_SIZE,
  PROXY_CONNECT_TIMEOUT,
  PROXY_SEND_TIMEOUT,
  PROXY_READ_TIMEOUT,
  PROXY_BUFFERING,
  PROXY_BUFFER_SIZE,
  BACKEND_PROTOCOL,
];

/** The largest proxy-buffer-size accepted: nginx allocates five of these per proxied request. */
export const MAX_PROXY_BUFFER_SIZE = 1024 * 1024;

/** The server-level defaults in server.conf.mustache, which gRPC locations restate as grpc_*. */
export const DEFAULT_PROXY_TIMEOUTS = { connect: 5, send: 60, read: 60 };
export const DEFAULT_PROXY_BUFFER_SIZE = '4k';

/** backend-protocol: how nginx talks to the Service. */
export type BackendProtocol = 'HTTP' | 'HTTPS' | 'GRPC' | 'GRPCS';

export interface ProxyAnnotations {
  backendProtocol: BackendProtocol;
  bodySize: Size | null;
  connectTimeout: number | null;
  sendTimeout: number | null;
  readTimeout: number | null;
  buffering: boolean | null;
  bufferSize: Size | null;
}

export const NO_PROXY_ANNOTATIONS: Readonly<ProxyAnnotations> = Object.freeze({
  backendProtocol: 'HTTP',
  bodySize: null,
  connectTimeout: null,
  sendTimeout: null,
  readTimeout: null,
  buffering: null,
  bufferSize: null,
});

/** The body size, timeouts and buffering. */
export function parseProxy({ r }: GroupInput): Omit<ProxyAnnotations, 'backendProtocol'> {
  const size = (name: string, opts?: { min?: number; max?: number }) => {
    const v = r.string(name);
    return v === undefined ? null : parseSize(name, v, opts);
  };
  const seconds = (name: string) => {
    const v = r.string(name);
    return v === undefined ? null : parseSeconds(name, v);
  };
  const bodySize = size(PROXY_BODY_SIZE);
  const connectTimeout = seconds(PROXY_CONNECT_TIMEOUT);
  const sendTimeout = seconds(PROXY_SEND_TIMEOUT);
  const readTimeout = seconds(PROXY_READ_TIMEOUT);
  let buffering: boolean | null = null;
  const b = r.string(PROXY_BUFFERING);
  if (b !== undefined) {
    const v = b.toLowerCase();
    if (v !== 'on' && v !== 'off') throw fail(PROXY_BUFFERING, b, 'must be "on" or "off"');
    buffering = v === 'on';
  }
  const bufferSize = size(PROXY_BUFFER_SIZE, { min: 1, max: MAX_PROXY_BUFFER_SIZE });
  return { bodySize, connectTimeout, sendTimeout, readTimeout, buffering, bufferSize };
}

export function parseBackendProtocol({ r }: GroupInput): Pick<ProxyAnnotations, 'backendProtocol'> {
  const protocol = r.string(BACKEND_PROTOCOL);
  if (protocol === undefined) return { backendProtocol: NO_PROXY_ANNOTATIONS.backendProtocol };
  const v = protocol.toUpperCase();
  if (v === 'AUTO_HTTP' || v === 'FCGI')
    throw fail(BACKEND_PROTOCOL, protocol, 'is not supported: use HTTP, HTTPS, GRPC or GRPCS');
  if (v !== 'HTTP' && v !== 'HTTPS' && v !== 'GRPC' && v !== 'GRPCS')
    throw fail(BACKEND_PROTOCOL, protocol, 'must be HTTP, HTTPS, GRPC or GRPCS');
  return { backendProtocol: v };
}

export interface ProxySettings {
  /** backend-protocol: `proxy_pass http://` (the default) or `https://`, `grpc_pass grpc://` or `grpcs://`. */
  backendProtocol: 'http' | 'https' | 'grpc' | 'grpcs';
  /** client_max_body_size: digits and an optional k, m or g; "0" lifts the limit. */
  bodySize: string | null;
  /** proxy_connect_timeout, proxy_send_timeout, proxy_read_timeout, in seconds. */
  connectTimeout: number | null;
  sendTimeout: number | null;
  readTimeout: number | null;
  buffering: boolean | null;
  /** proxy_buffer_size, and the size of each of the 4 proxy_buffers. */
  bufferSize: string | null;
}

export function proxySettings(a: ProxyAnnotations): ProxySettings {
  return {
    backendProtocol:
      a.backendProtocol === 'HTTPS'
        ? 'https'
        : a.backendProtocol === 'GRPC'
          ? 'grpc'
          : a.backendProtocol === 'GRPCS'
            ? 'grpcs'
            : 'http',
    bodySize: a.bodySize?.text ?? null,
    connectTimeout: a.connectTimeout,
    sendTimeout: a.sendTimeout,
    readTimeout: a.readTimeout,
    buffering: a.buffering,
    bufferSize: a.bufferSize?.text ?? null,
  };
}

/** What the location template writes for these (empty: the server's defaults apply). */
export function proxyView(s: ProxySettings) {
  return {
    bodySize: s.bodySize ?? '',
    connectTimeout: s.connectTimeout === null ? '' : `${s.connectTimeout}s`,
    sendTimeout: s.sendTimeout === null ? '' : `${s.sendTimeout}s`,
    readTimeout: s.readTimeout === null ? '' : `${s.readTimeout}s`,
    buffering: s.buffering === null ? '' : s.buffering ? 'on' : 'off',
    bufferSize: s.bufferSize ?? '',
  };
}

/** gRPC locations always say their timeouts and buffer: the server's are proxy_* ones. */
export function grpcView(s: ProxySettings) {
  return {
    connectTimeout: `${s.connectTimeout ?? DEFAULT_PROXY_TIMEOUTS.connect}s`,
    sendTimeout: `${s.sendTimeout ?? DEFAULT_PROXY_TIMEOUTS.send}s`,
    readTimeout: `${s.readTimeout ?? DEFAULT_PROXY_TIMEOUTS.read}s`,
    bufferSize: s.bufferSize ?? DEFAULT_PROXY_BUFFER_SIZE,
  };
}

/** The settings of an Ingress without proxy annotations. */
export const DEFAULT_PROXY_SETTINGS: Readonly<ProxySettings> = Object.freeze(proxySettings(NO_PROXY_ANNOTATIONS));
