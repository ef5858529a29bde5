// The translation settings a running command needs beyond the flags: the default certificate
// (made with openssl, kept on disk for `run` so that a restart renders the same files) and the
// nginx version that decides syntax. I/O, so kept out of the pure config module.
import { certDirFor, generateSelfSignedCertificate, loadOrCreateSelfSignedCertificate } from '../nginx/cert-store.ts';
import { translateOptions, type Config } from '../config.ts';
import type { Logger } from '../ops/log.ts';
import { nginxVersion } from '../nginx/process.ts';
import type { TranslateOptions } from '../translate/index.ts';

export async function runtimeTranslateOptions(
  config: Config,
  opts: { nginxBinary: string | null; keepDefaultCertificate: boolean; logger?: Logger },
): Promise<Omit<TranslateOptions, 'now'>> {
  const version = opts.nginxBinary ? await nginxVersion(opts.nginxBinary) : null;
  const base = { ...translateOptions(config), ...(version ? { nginxVersion: version } : {}) };
  const certDir = certDirFor(config.confDir);
  // Without TLS there is no certificate directory in the options, but htpasswd files (auth-type
  // basic) still need a private place: the same directory, so that switching TLS on or off moves
  // nothing. The sidecar writes and prunes it as it does with TLS (see CertStore).
  if (config.httpsPort === 0) return { ...base, privateDir: certDir };
  const defaultCertificate = opts.keepDefaultCertificate
    ? await loadOrCreateSelfSignedCertificate(certDir, opts.logger ? { logger: opts.logger } : {})
    : await generateSelfSignedCertificate();
  return {
    ...base,
    tls: {
      httpsPort: config.httpsPort,
      httpsRedirectPort: config.httpsRedirectPort,
      certDir,
      defaultCertificate,
      ...(config.defaultSslCertificate ? { defaultSslCertificate: config.defaultSslCertificate } : {}),
    },
  };
}
