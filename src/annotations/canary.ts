// canary and canary-*: an Ingress whose backends take some of the main Ingress's requests for the
// same host and path (translate pairs them up and builds the selector).

import { COOKIE_NAME, annotation, fail, parseInteger, type GroupInput } from './values.ts';

export const CANARY = annotation('canary');
export const CANARY_WEIGHT = annotation('canary-weight');
export const CANARY_WEIGHT_TOTAL = annotation('canary-weight-total');
export const CANARY_BY_HEADER = annotation('canary-by-header');
export const CANARY_BY_HEADER_VALUE = annotation('canary-by-header-value');
export const CANARY_BY_COOKIE = annotation('canary-by-cookie');

/** The canary annotations: the only ones that act on a canary Ingress (the main Ingress's settings apply to its paths). */
export const CANARY_ANNOTATIONS: ReadonlySet<string> = new Set([
  CANARY,
  CANARY_WEIGHT,
  CANARY_WEIGHT_TOTAL,
  CANARY_BY_HEADER,
  CANARY_BY_HEADER_VALUE,
  CANARY_BY_COOKIE,
]);

/** As ingress-nginx documents it. */
export const DEFAULT_CANARY_WEIGHT_TOTAL = 100;

/** An HTTP header name (RFC 9110 token, the common subset). */
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
/** A canary-by-header-value: matched exactly, case-sensitively. */
const HEADER_VALUE = /^[A-Za-z0-9._~:/+=@-]{1,256}$/;

/** canary: "true": which requests go to this Ingress's backends instead of the main Ingress's. */
export interface CanaryConfig {
  /** canary-by-header: "always" (or the value) sends to the canary, "never" to the main backend. */
  header: { name: string; value: string | null } | null;
  /** canary-by-cookie: "always" sends to the canary, "never" to the main backend. Letters, digits, "_". */
  cookie: string | null;
  /** canary-weight out of canary-weight-total, for requests no header or cookie decided (a weight above the total: all of them). */
  weight: number;
  total: number;
}

export interface CanaryAnnotations {
  canary: CanaryConfig | null;
}

export const NO_CANARY_ANNOTATIONS: Readonly<CanaryAnnotations> = Object.freeze({ canary: null });

export function parseCanary({ r, noEffect }: GroupInput): CanaryAnnotations {
  const canary = r.bool(CANARY) ?? false;
  const header = r.string(CANARY_BY_HEADER);
  const headerValue = r.string(CANARY_BY_HEADER_VALUE);
  const cookie = r.string(CANARY_BY_COOKIE);
  const weight = r.string(CANARY_WEIGHT);
  const total = r.string(CANARY_WEIGHT_TOTAL);
  if (header !== undefined && !HEADER_NAME.test(header))
    throw fail(CANARY_BY_HEADER, header, 'is not a header name (letters, digits and "-")');
  if (headerValue !== undefined && !HEADER_VALUE.test(headerValue))
    throw fail(CANARY_BY_HEADER_VALUE, headerValue, 'may contain only letters, digits and "._~:/+=@-" (up to 256)');
  if (cookie !== undefined && !COOKIE_NAME.test(cookie))
    throw fail(
      CANARY_BY_COOKIE,
      cookie,
      'may contain only letters, digits and "_" (up to 64): nginx reads cookies by such names',
    );
  const totalValue =
    total === undefined ? DEFAULT_CANARY_WEIGHT_TOTAL : parseInteger(CANARY_WEIGHT_TOTAL, total, 1, 1_000_000);
  // ingress-nginx accepts a weight above the total: every request it does not decide otherwise goes to the canary.
  const weightValue = weight === undefined ? 0 : parseInteger(CANARY_WEIGHT, weight, 0, 1_000_000);
  if (canary) {
    if (header === undefined) noEffect(CANARY_BY_HEADER_VALUE, `${CANARY_BY_HEADER} is not set`);
    return {
      canary: {
        header: header === undefined ? null : { name: header, value: headerValue ?? null },
        cookie: cookie ?? null,
        weight: weightValue,
        total: totalValue,
      },
    };
  }
  for (const n of CANARY_ANNOTATIONS) if (n !== CANARY) noEffect(n, `${CANARY} is not "true"`);
  return { canary: null };
}
