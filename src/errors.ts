// The one description of an error for logs, Events and stderr. Duck-typed, so that directory mode
// need not load @kubernetes/client-node for its ApiException.

/**
 * One line: for a failed API call its HTTP status and the API server's own message (never the
 * body of an object); for a system error its code; then the cause, which fetch's "fetch failed"
 * and wrapped errors leave out of their message.
 */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return typeof err === 'string' ? err : safeString(err);
  const e = err as Error & { code?: unknown; statusCode?: unknown; body?: unknown; cause?: unknown; errors?: unknown };
  const status = httpStatusOf(e);
  if (status !== undefined) {
    // client-node's ApiException message is its own dump ("HTTP-Code: 404\nMessage: ..."); a
    // Watch's failure is `new Error(statusText)`.
    const message = apiMessage(e.body) ?? (err.message.startsWith('HTTP-Code:') ? undefined : firstLine(err.message));
    return `HTTP ${status}${message ? `: ${message}` : ''}`;
  }
  const code = typeof e.code === 'string' && !err.message.includes(e.code) ? e.code : undefined;
  const own = err.message || (err instanceof AggregateError ? describeFirst(e.errors) : '');
  const message = code === undefined ? own : own ? `${code} (${own})` : code;
  const cause = e.cause instanceof Error ? describe(e.cause) : '';
  return cause && !message.includes(cause) ? (message ? `${message}: ${cause}` : cause) : message;
}

/**
 * The HTTP status of an API error: client-node's ApiException (a numeric code beside the body)
 * or a Watch's failure (statusCode). DOMException's numeric codes (TimeoutError is 23) are not.
 */
function httpStatusOf(e: { code?: unknown; statusCode?: unknown; body?: unknown }): number | undefined {
  if (typeof e.code === 'number' && 'body' in e && !(e instanceof DOMException)) return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** The message of a Kubernetes Status body, a string or already parsed; a short plain-text body as is. */
function apiMessage(body: unknown): string | undefined {
  if (typeof body === 'string') {
    try {
      return apiMessage(JSON.parse(body) as unknown);
    } catch {
      return body.slice(0, 300) || undefined;
    }
  }
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string')
    return (body as { message: string }).message;
  return undefined;
}

function describeFirst(errors: unknown): string {
  return Array.isArray(errors) && errors.length > 0 ? describe(errors[0]) : '';
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
