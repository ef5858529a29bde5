// Small helpers for the API writers' calls (the Lease, status, Events): a per-request timeout,
// and the HTTP status of a failure.
import {
  ApiException,
  Observable,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';

/** Request options for client-node v2 calls: a timeout, and optionally a Content-Type (patches). */
export function requestOptions(opts: { timeoutMs: number; contentType?: string }): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      // undici has no default request timeout: a half-open connection would stall the caller.
      ctx.setSignal(AbortSignal.timeout(opts.timeoutMs));
      if (opts.contentType) ctx.setHeaderParam('Content-Type', opts.contentType);
      return new Observable(Promise.resolve(ctx));
    },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  // `append` keeps the client's own middleware (User-Agent) in place.
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

/** The HTTP status of a failed API call, or undefined when it never got an answer. */
export function httpStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}
