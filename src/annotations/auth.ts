// auth-type basic with auth-secret, auth-secret-type and auth-realm: auth_basic with an htpasswd
// file made from the Secret, named by a digest of its content (like certificates).

import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import type { CertificateFile } from '../model.ts';
import { InvalidValue, checkObjectName } from '../grammar.ts';
import { withPem } from '../translate/certificates.ts';
import { annotation, digest, fail, type GroupInput } from './values.ts';

export const AUTH_TYPE = annotation('auth-type');
export const AUTH_SECRET = annotation('auth-secret');
export const AUTH_SECRET_TYPE = annotation('auth-secret-type');
export const AUTH_REALM = annotation('auth-realm');

export const AUTH_ANNOTATIONS = [AUTH_TYPE, AUTH_SECRET, AUTH_SECRET_TYPE, AUTH_REALM];

/** As ingress-nginx documents it. */
export const DEFAULT_AUTH_REALM = 'Authentication Required';

const MAX_HTPASSWD_BYTES = 1024 * 1024;
const MAX_USERS = 10_000;
// A user name (no ":", no space) and a password hash (crypt, $apr1$, {SHA}, {SSHA}, {PLAIN}):
// printable ASCII, which is all nginx's auth_basic_user_file parser reads.
const HTPASSWD_LINE = /^[\x21-\x39\x3b-\x7e]{1,255}:[\x21-\x7e]{1,1024}$/;
const HTPASSWD_USER = /^[\x21-\x39\x3b-\x7e]{1,255}$/;
// Printable ASCII without '"' and '\' (nginx copies the realm between quotes into
// WWW-Authenticate) and without "$" (auth_basic's value interpolates variables).
const REALM = /^[\x20\x21\x23\x25-\x5b\x5d-\x7e]{1,200}$/;

export interface AuthConfig {
  /** `namespace/name` of the Secret; always the Ingress's own namespace. */
  secret: string;
  secretType: 'auth-file' | 'auth-map';
  realm: string;
}

export interface AuthAnnotations {
  auth: AuthConfig | null;
}

export const NO_AUTH_ANNOTATIONS: Readonly<AuthAnnotations> = Object.freeze({ auth: null });

export function parseAuth({ r, noEffect, namespace }: GroupInput): AuthAnnotations {
  const authType = r.string(AUTH_TYPE);
  const authSecret = r.string(AUTH_SECRET);
  const authSecretType = r.string(AUTH_SECRET_TYPE);
  const authRealm = r.string(AUTH_REALM);
  if (authSecretType !== undefined && authSecretType !== 'auth-file' && authSecretType !== 'auth-map') {
    throw fail(AUTH_SECRET_TYPE, authSecretType, 'must be "auth-file" or "auth-map"');
  }
  if (authRealm !== undefined && (!REALM.test(authRealm) || authRealm.toLowerCase() === 'off')) {
    throw fail(
      AUTH_REALM,
      authRealm,
      'must be up to 200 printable ASCII characters without \'"\', "\\" and "$", and not "off"',
    );
  }
  if (authType !== undefined) {
    if (authType === 'digest')
      throw fail(AUTH_TYPE, authType, 'is not supported: stock nginx has no digest authentication');
    if (authType !== 'basic') throw fail(AUTH_TYPE, authType, 'must be "basic"');
    if (authSecret === undefined)
      throw new InvalidValue(`annotation ${AUTH_TYPE} is "basic" but ${AUTH_SECRET} is not set`);
    return {
      auth: {
        secret: parseAuthSecret(authSecret, namespace),
        secretType: authSecretType ?? 'auth-file',
        realm: authRealm ?? DEFAULT_AUTH_REALM,
      },
    };
  }
  for (const n of [AUTH_SECRET, AUTH_SECRET_TYPE, AUTH_REALM]) noEffect(n, `${AUTH_TYPE} is not set`);
  return { auth: null };
}

/** auth-secret: `name` or `namespace/name`, and only in the Ingress's own namespace. */
function parseAuthSecret(value: string, namespace: string): string {
  const parts = value.split('/');
  if (parts.length > 2) throw fail(AUTH_SECRET, value, 'is not NAME or NAMESPACE/NAME');
  const [ns, name] = parts.length === 2 ? parts : [namespace, parts[0]];
  try {
    checkObjectName('namespace', ns, 'label');
    checkObjectName('Secret', name, 'subdomain');
  } catch (err) {
    if (err instanceof InvalidValue) throw fail(AUTH_SECRET, value, 'is not NAME or NAMESPACE/NAME of a Secret');
    throw err;
  }
  if (ns !== namespace)
    throw fail(
      AUTH_SECRET,
      value,
      `names a Secret in another namespace; only the Ingress's own (${namespace}) is read`,
    );
  return `${ns}/${name}`;
}

export interface AuthSettings {
  /** auth_basic: the realm (no `$`, `"`, `\`, not "off") and the htpasswd file (a derived path). */
  auth: { realm: string; userFile: string } | null;
}

export const DEFAULT_AUTH_SETTINGS: Readonly<AuthSettings> = Object.freeze({ auth: null });

/** The htpasswd files the locations' settings name, made from the snapshot's Secrets. */
export class AuthFiles {
  private readonly secrets = new Map<string, V1Secret>();
  private readonly files = new Map<string, CertificateFile>();
  /** Where htpasswd files go (the certificate directory); null: none can be written. */
  private readonly dir: string | null;

  constructor(secrets: V1Secret[], dir: string | null) {
    this.dir = dir;
    for (const s of secrets) this.secrets.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s);
  }

  /** The settings for `auth`; throws InvalidValue saying why its Secret cannot serve. */
  settings(auth: AuthConfig | null): AuthSettings {
    return { auth: auth === null ? null : { realm: auth.realm, userFile: this.write(auth) } };
  }

  private write(auth: AuthConfig): string {
    const dir = this.dir;
    if (dir === null)
      throw new InvalidValue(
        'this sidecar has no private directory for htpasswd files (translate got neither privateDir nor tls)',
      );
    if (!/^\/[A-Za-z0-9._/-]+$/.test(dir))
      throw new InvalidValue('the certificate directory path has characters nginx would interpret');
    const secret = this.secrets.get(auth.secret);
    if (!secret) throw new InvalidValue(`Secret ${auth.secret} not found`);
    let content: string;
    try {
      content = htpasswd(secret, auth.secretType);
    } catch (err) {
      if (err instanceof InvalidValue) throw new InvalidValue(`Secret ${auth.secret}: ${err.message}`);
      throw err;
    }
    // Named by content, like certificates: a changed Secret is a new file and a reload.
    const file = `${digest(`htpasswd\n${content}`, 32)}.pem`;
    this.files.set(file, withPem({ file }, content));
    return path.join(dir, file);
  }

  /** A file (by name) that settings() made. */
  file(name: string): CertificateFile {
    return this.files.get(name)!;
  }
}

/**
 * The htpasswd lines of a Secret: `auth-file`, the `auth` key holds an htpasswd file; `auth-map`,
 * each key is a user and its value the password hash. Throws InvalidValue saying what is wrong;
 * reasons never quote the Secret's data.
 */
export function htpasswd(secret: V1Secret, type: AuthConfig['secretType']): string {
  const data: unknown = secret.data;
  if (typeof data !== 'object' || data === null) throw new InvalidValue('has no data');
  const entries = Object.entries(data as Record<string, unknown>);
  const decode = (v: unknown): string | null => {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v.replace(/\s/g, ''))) return null;
    const bytes = Buffer.from(v, 'base64');
    const text = bytes.toString('utf8');
    return Buffer.from(text, 'utf8').equals(bytes) ? text : null;
  };
  const lines: string[] = [];
  if (type === 'auth-file') {
    const raw = (data as Record<string, unknown>)['auth'];
    if (raw === undefined) throw new InvalidValue('has no "auth" key (auth-secret-type auth-file)');
    const text = decode(raw);
    if (text === null) throw new InvalidValue('its "auth" key is not base64 of UTF-8 text');
    if (text.length > MAX_HTPASSWD_BYTES) throw new InvalidValue('its "auth" key is larger than 1 MiB');
    const all = text.split('\n');
    for (let i = 0; i < all.length; i++) {
      const line = all[i]!.replace(/\r$/, '').trim();
      if (line === '' || line.startsWith('#')) continue;
      if (!HTPASSWD_LINE.test(line))
        throw new InvalidValue(`line ${i + 1} of its "auth" key is not USER:PASSWORD-HASH in printable ASCII`);
      lines.push(line);
    }
  } else {
    for (const [user, value] of entries) {
      const hash = decode(value);
      const line = `${user}:${hash?.trim() ?? ''}`;
      if (hash === null || !HTPASSWD_USER.test(user) || !HTPASSWD_LINE.test(line))
        throw new InvalidValue(
          'a key or value is not a user name and password hash in printable ASCII (auth-secret-type auth-map)',
        );
      lines.push(line);
    }
    lines.sort();
  }
  if (lines.length === 0) throw new InvalidValue('names no user');
  if (lines.length > MAX_USERS) throw new InvalidValue(`names more than ${MAX_USERS} users`);
  return `${lines.join('\n')}\n`;
}

export function authView(s: AuthSettings) {
  return { auth: s.auth };
}
