// The certificate parsers as result values, for callers outside the pure layer that still test a
// result instead of catching InvalidValue (src/nginx/cert-store.ts, and older specs). The pure
// layer throws (certificates.ts); once those callers catch, this file goes.

import { InvalidValue } from '../grammar.ts';
import type { V1Secret } from '@kubernetes/client-node';
import { certificateFromPem, certificateFromSecret, pemBlocks, type Certificate } from './certificates.ts';

export type CertificateResult = { ok: true; certificate: Certificate } | { ok: false; reason: string };

function result(parse: () => Certificate): CertificateResult {
  try {
    return { ok: true, certificate: parse() };
  } catch (err) {
    if (!(err instanceof InvalidValue)) throw err;
    return { ok: false, reason: err.message };
  }
}

/** certificateFromPem, with the reason as a value. */
export function certificateResultFromPem(chainText: string, keyText: string): CertificateResult {
  return result(() => certificateFromPem(chainText, keyText));
}

/** certificateFromSecret, with the reason as a value. */
export function certificateResultFromSecret(secret: V1Secret): CertificateResult {
  return result(() => certificateFromSecret(secret));
}

/** pemBlocks, with the reason as a string. */
export function pemBlocksOrReason(text: string, what: string): ReturnType<typeof pemBlocks> | string {
  try {
    return pemBlocks(text, what);
  } catch (err) {
    if (!(err instanceof InvalidValue)) throw err;
    return err.message;
  }
}
