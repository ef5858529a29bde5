// Which nginx a pass renders for: the serving master's version (read from its binary, once per
// master), --nginx-version, and the checking binary's, as effectiveNginx() decides; and from it
// how endpoint changes reach nginx. Warnings are logged once each, while they hold.
import { findMaster, masterIdentity } from '../nginx/process.ts';
import { effectiveNginx, servingNginxVersion } from '../nginx/serving-version.ts';
import type { Logger } from '../ops/log.ts';
import { endpointsModeFor, type EndpointsMode } from './endpoint-mode.ts';

export class ServingNginx {
  private readonly opts: { pidFile?: string; checking: string | null; flag: string | null; logger: Logger };
  /** The last master read (masterIdentity) and its version. */
  private serving: { identity: string; version: string | null } | null = null;
  private warned = new Set<string>();
  private modeWarning = '';

  constructor(opts: { pidFile?: string; checking: string | null; flag: string | null; logger: Logger }) {
    this.opts = opts;
  }

  /** The version to render for; undefined: unknown (the oldest syntax). */
  async version(): Promise<string | undefined> {
    let serving: string | null = null;
    try {
      const pid = await findMaster(this.opts.pidFile ? { pidFile: this.opts.pidFile } : {});
      if (pid !== null) {
        const identity = await masterIdentity(pid);
        if (this.serving?.identity !== identity) this.serving = { identity, version: await servingNginxVersion(pid) };
        serving = this.serving.version;
      } else {
        // No master right now (nginx restarting): the last one seen stands for the next, rather
        // than flipping the files to an older syntax and back.
        serving = this.serving?.version ?? null;
      }
    } catch {
      // Absorbed on purpose: applying reports a master it cannot find (two masters, an unreadable
      // pid file); here it only means the serving version is not known.
    }
    const { version, warnings } = effectiveNginx({ checking: this.opts.checking, serving, flag: this.opts.flag });
    for (const w of warnings) if (!this.warned.has(w)) this.opts.logger.warn('nginx version', { reason: w });
    this.warned = new Set(warnings);
    return version ?? undefined;
  }

  /** The endpoints mode for `version` (logs once why a forced dns mode cannot be). */
  endpointsMode(flag: 'auto' | 'dns' | 'reload', version: string | undefined): EndpointsMode {
    const { mode, warning } = endpointsModeFor(flag, version);
    if (warning && warning !== this.modeWarning) this.opts.logger.warn('endpoints mode', { reason: warning });
    this.modeWarning = warning ?? '';
    return mode;
  }
}
