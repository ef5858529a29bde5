// The one description of an error for logs, Events and stderr. Duck-typed, so that directory mode
// need not load @kubernetes/client-node for its ApiException.

/**
 * One line: for a failed API call its HTTP status and the API server's own message (never the
 * body of an object); for a system error its code; then the cause, which fetch's "fetch failed"
 * and wrapped errors leave out of their message.
 */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return typeof err === 'string' ? err : safeString(err);
  const e = err as Error & { code?: unknown; statusCode?: unknown; body?: unknown; cause?: unknown };
  const status = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (status !== undefined) {
    const message = apiMessage(e.body);
    return `HTTP ${status}${message ? `: ${message}` : ''}`;
  }
  const code = typeof e.code === 'string' && !err.message.includes(e.code) ? e.code : undefined;
  const message = code === undefined ? err.message : `${code} (${err.message})`;
  const cause = e.cause instanceof Error ? e.cause : undefined;
  return cause && !message.includes(cause.message) ? `${message}: ${describe(cause)}` : message;
}

/** The message of a Kubernetes Status body, a string or already parsed; a short plain-text body as is. */
function apiMessage(body: unknown): string | undefined {
  if (typeof body === 'string') {
    try {
      return apiMessage(JSON.parse(body) as unknown) ?? undefined;
    } catch {
      return body.slice(0, 300) || undefined;
    }
  }
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string')
    return (body as { message: string }).message;
  return undefined;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
