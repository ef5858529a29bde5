// Certificates from kubernetes.io/tls Secrets, checked before anything reaches nginx. Pure: no
// I/O, no clock (the caller says what time it is), no logging.
//
// What nginx gets from a Secret is never the Secret's text: the PEM blocks are decoded, the
// certificates and the key are parsed by node:crypto, and the file is written from what parsed
// (re-encoded PEM: chain, then the key). Its name is a digest of that content. So neither text
// around the PEM blocks nor anything else a Secret holds can reach nginx's files, and nginx.conf
// only ever names the derived path.

import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { InvalidValue, type ParsedHost } from '../grammar.ts';

export const TLS_SECRET_TYPE = 'kubernetes.io/tls';

/** A certificate chain and its key, checked for structure; time and host are checked separately. */
export interface Certificate {
  /** `<first 32 hex digits of the SHA-256 of the content>.pem`. */
  readonly file: string;
  /** Chain (leaf first) and key as PEM. Not enumerable: JSON and util.inspect leave it out. */
  readonly pem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DNS names of the leaf's subjectAltName, lowercase, as written (wildcards included). */
  readonly dnsNames: readonly string[];
  readonly leaf: X509Certificate;
}

/** More would not be a certificate chain anyone serves; it only costs parsing. */
const MAX_BLOCKS = 16;
/** OpenSSL's default security level (2, as in Debian and Alpine) refuses smaller RSA keys. */
const MIN_RSA_BITS = 2048;
const KEY_TYPES = new Map([
  ['PRIVATE KEY', 'pkcs8'],
  ['RSA PRIVATE KEY', 'pkcs1'],
  ['EC PRIVATE KEY', 'sec1'],
] as const);

interface PemBlock {
  label: string;
  der: Buffer;
}

/**
 * The PEM blocks of a text (RFC 7468). Text between blocks is allowed and dropped, as OpenSSL and
 * Go do (`openssl pkcs12` writes "Bag Attributes" lines there); inside a block only base64 is.
 * Throws InvalidValue when the text is not that.
 */
export function pemBlocks(text: string, what: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const begin = /-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----/g;
  for (let m = begin.exec(text); m; m = begin.exec(text)) {
    const label = m[1]!;
    const end = `-----END ${label}-----`;
    const stop = text.indexOf(end, begin.lastIndex);
    if (stop < 0) throw new InvalidValue(`${what}: a "BEGIN ${label}" PEM block has no matching END line`);
    const body = text.slice(begin.lastIndex, stop).replace(/[ \t\r\n]+/g, '');
    if (body.includes(':'))
      throw new InvalidValue(
        `${what}: PEM block ${label} has headers (an encrypted legacy key?); keys must not be encrypted`,
      );
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
      throw new InvalidValue(`${what}: PEM block ${label} is not valid base64`);
    }
    blocks.push({ label, der: Buffer.from(body, 'base64') });
    if (blocks.length > MAX_BLOCKS) throw new InvalidValue(`${what}: more than ${MAX_BLOCKS} PEM blocks`);
    begin.lastIndex = stop + end.length;
  }
  if (blocks.length === 0) throw new InvalidValue(`${what} holds no PEM block`);
  return blocks;
}

function parseKey(blocks: PemBlock[], what: string): KeyObject {
  // `openssl ecparam -genkey` writes an EC PARAMETERS block before the key: harmless.
  const keys = blocks.filter((b) => b.label !== 'EC PARAMETERS');
  if (keys.length !== 1)
    throw new InvalidValue(`${what} must hold exactly one private key, not ${keys.length} PEM blocks`);
  const block = keys[0]!;
  if (block.label === 'ENCRYPTED PRIVATE KEY')
    throw new InvalidValue(`${what}: the private key is encrypted; nginx needs it unencrypted`);
  const type = KEY_TYPES.get(block.label as never);
  if (!type)
    throw new InvalidValue(
      `${what}: expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block, not ${block.label}`,
    );
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: block.der, format: 'der', type });
  } catch {
    throw new InvalidValue(`${what}: the private key does not parse`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (
    (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') &&
    bits !== undefined &&
    bits < MIN_RSA_BITS
  ) {
    throw new InvalidValue(`${what}: an RSA key of ${bits} bits is too small (at least ${MIN_RSA_BITS})`);
  }
  return key;
}

function parseChain(blocks: PemBlock[], what: string): X509Certificate[] {
  const chain: X509Certificate[] = [];
  for (const block of blocks) {
    if (block.label !== 'CERTIFICATE')
      throw new InvalidValue(`${what} must hold CERTIFICATE blocks only, not ${block.label}`);
    try {
      chain.push(new X509Certificate(block.der));
    } catch {
      throw new InvalidValue(`${what}: certificate ${chain.length + 1} does not parse as X.509`);
    }
  }
  return chain;
}

/** DNS names are public (every handshake sends them); keep only what looks like one, for reasons. */
function dnsNamesOf(cert: X509Certificate): string[] {
  const out: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (!entry.startsWith('DNS:')) continue;
    const name = entry.slice(4).toLowerCase();
    if (/^[a-z0-9*_.-]{1,253}$/.test(name)) out.push(name);
  }
  return out;
}

/**
 * A certificate, or the InvalidValue that says why the content is none: what memos keep, so that
 * a refusal is remembered as well as a success.
 */
type Memo = Certificate | InvalidValue;

function recall(memo: Memo): Certificate {
  if (memo instanceof InvalidValue) throw memo;
  return memo;
}

/** Runs a parse, keeping its InvalidValue as the memo; anything else thrown (a bug) is not remembered. */
function memo(parse: () => Certificate): Memo {
  try {
    return parse();
  } catch (err) {
    if (err instanceof InvalidValue) return err;
    throw err;
  }
}

/** Memo by content digest: the same Secrets are checked on every pass (the result is a pure function of the bytes). */
const parsed = new Map<string, Memo>();
const MEMO_LIMIT = 4096;

/**
 * A chain (tls.crt) and key (tls.key) as texts: parsed, re-encoded, checked to belong together.
 * Throws InvalidValue with the reason when they are not a usable certificate.
 */
export function certificateFromPem(chainText: string, keyText: string): Certificate {
  const memoKey = createHash('sha256').update(chainText).update('\0').update(keyText).digest('hex');
  let known = parsed.get(memoKey);
  if (!known) {
    known = memo(() => parseCertificate(chainText, keyText));
    if (parsed.size >= MEMO_LIMIT) parsed.clear();
    parsed.set(memoKey, known);
  }
  return recall(known);
}

function parseCertificate(chainText: string, keyText: string): Certificate {
  const chain = parseChain(pemBlocks(chainText, 'tls.crt'), 'tls.crt');
  const key = parseKey(pemBlocks(keyText, 'tls.key'), 'tls.key');
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key)) throw new InvalidValue('tls.key does not belong to the first certificate in tls.crt');
  // A self-signed certificate's own signature is checked by nobody; a CA's signature with these is refused.
  if (leaf.issuer !== leaf.subject && /md5|sha1(?![0-9])/i.test(leaf.signatureAlgorithm ?? '')) {
    throw new InvalidValue(
      `tls.crt: the certificate is signed with ${leaf.signatureAlgorithm}, which clients and OpenSSL refuse`,
    );
  }
  const pem =
    chain.map((c) => c.toString().trim() + '\n').join('') + String(key.export({ type: 'pkcs8', format: 'pem' }));
  const file = `${createHash('sha256').update(pem).digest('hex').slice(0, 32)}.pem`;
  return withPem(
    { file, notBefore: leaf.validFromDate, notAfter: leaf.validToDate, dnsNames: dnsNamesOf(leaf), leaf },
    pem,
  );
}

/**
 * Adds the PEM text as a property that JSON.stringify, object spread and util.inspect all skip,
 * so that a model or certificate logged by mistake carries no key.
 */
export function withPem<T extends object>(obj: T, pem: string): T & { readonly pem: string } {
  return Object.defineProperty(obj, 'pem', { value: pem, enumerable: false }) as T & { readonly pem: string };
}

/**
 * A kubernetes.io/tls Secret's certificate; throws InvalidValue with why it cannot be used. The
 * reason never quotes its data.
 */
export function certificateFromSecret(secret: V1Secret): Certificate {
  // Secrets in a snapshot are never edited in place (the sources replace changed objects), and
  // parsing X.509 is the larger part of planning TLS: each Secret object is read once.
  let result = fromSecretCache.get(secret);
  if (!result) {
    result = memo(() => readSecret(secret));
    fromSecretCache.set(secret, result);
  }
  return recall(result);
}

const fromSecretCache = new WeakMap<V1Secret, Memo>();

function readSecret(secret: V1Secret): Certificate {
  const type: unknown = secret.type ?? 'Opaque';
  if (type !== TLS_SECRET_TYPE)
    throw new InvalidValue(
      `its type is ${typeof type === 'string' ? JSON.stringify(type).slice(0, 80) : `a ${typeof type}`}, not ${TLS_SECRET_TYPE}`,
    );
  const data: unknown = secret.data;
  if (typeof data !== 'object' || data === null) throw new InvalidValue('it has no data');
  const text = (name: 'tls.crt' | 'tls.key'): string | null => {
    const v: unknown = (data as Record<string, unknown>)[name];
    if (typeof v !== 'string' || v === '') return null;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) return null;
    return Buffer.from(v, 'base64').toString('latin1');
  };
  const crt = text('tls.crt');
  const key = text('tls.key');
  if (crt === null) throw new InvalidValue('it has no tls.crt (base64 data)');
  if (key === null) throw new InvalidValue('it has no tls.key (base64 data)');
  return certificateFromPem(crt, key);
}

/** Why the certificate is not valid at `now`, or null when it is. */
export function validityProblem(cert: Certificate, now: Date): string | null {
  if (now < cert.notBefore) return `the certificate is not valid before ${cert.notBefore.toISOString()}`;
  if (now > cert.notAfter) return `the certificate expired at ${cert.notAfter.toISOString()}`;
  return null;
}

/**
 * Why the certificate does not cover an Ingress host, or null when it does. An exact host must be
 * matched by a DNS name (wildcards as TLS clients apply them; the subject CN is ignored, as
 * browsers and Go ignore it); a wildcard host needs that very wildcard among the DNS names,
 * since it stands for every name one label deep.
 */
export function hostProblem(cert: Certificate, host: ParsedHost): string | null {
  const covered =
    host.kind === 'exact'
      ? cert.leaf.checkHost(host.host, { subject: 'never', partialWildcards: false }) !== undefined
      : cert.dnsNames.includes(host.host);
  if (covered) return null;
  const names =
    cert.dnsNames.length === 0
      ? 'none'
      : cert.dnsNames.slice(0, 5).join(', ') + (cert.dnsNames.length > 5 ? ', ...' : '');
  return `the certificate is not valid for ${host.host} (its DNS names: ${names})`;
}
