// Echo backends at real, non-loopback addresses, for tests whose Endpoints may not be loopback
// (the API server refuses 127.0.0.0/8 in Endpoints and EndpointSlices).
//
// Each backend gets its own network namespace and a veth pair on a private /30 taken from
// 10.213.64.0/18 (nothing else on these machines uses 10.213.0.0/16): the host end holds .1 of
// the /30, the namespace end .2, and `node src/dev/echo-main.ts NAME PORT` listens on 0.0.0.0 inside
// the namespace. Traffic goes only between this host and that namespace. Needs root (or
// CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2. stop() removes the process, the veth pair and
// the namespace; a test process that exits without stop() still removes them on 'exit'.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const echoMain = path.join(repoRoot, 'src', 'dev', 'echo-main.ts');

/** The range backends are taken from: 10.213.64.0/18, as 4096 /30 subnets. */
export const NETNS_RANGE = '10.213.64.0/18';
const SUBNETS = 4096;

/** A Service (port 80, named http) and core/v1 Endpoints for a backend in a network namespace: the API server refuses loopback Endpoints. */
export function netnsServiceYaml(name: string, b: Pick<NetnsBackend, 'ip' | 'port'>, namespace = 'shop'): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${namespace}}
spec: {ports: [{name: http, port: 80, targetPort: ${b.port}}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: ${name}, namespace: ${namespace}}
subsets: [{addresses: [{ip: ${b.ip}}], ports: [{name: http, port: ${b.port}}]}]
`;
}

export interface NetnsBackend {
  /** The backend's address (inside its namespace), reachable from the host. */
  ip: string;
  port: number;
  /** The host end's address on the same /30. */
  hostIp: string;
  name: string;
  netns: string;
  stop(): Promise<void>;
}

let counter = 0;
const live = new Set<{ netns: string; hostIf: string; child: ChildProcess }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const b of live) {
      b.child.kill('SIGKILL');
      try {
        execFileSync('ip', ['link', 'del', b.hostIf], { stdio: 'ignore' });
      } catch {
        // already gone
      }
      try {
        execFileSync('ip', ['netns', 'del', b.netns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  });
}

async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('`ip` not found: install iproute2 (apt-get install iproute2)', { cause: err });
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

function subnetAddresses(index: number): { host: string; ns: string; prefix: string } {
  // 10.213.64.0 + 4 * index
  const base = (64 << 8) + index * 4;
  const third = base >> 8;
  const fourth = base & 0xff;
  return {
    prefix: `10.213.${third}.${fourth}/30`,
    host: `10.213.${third}.${fourth + 1}`,
    ns: `10.213.${third}.${fourth + 2}`,
  };
}

async function freeSubnet(): Promise<number> {
  const used = await ip('-4', '-o', 'addr', 'show');
  // Random start: two test processes on one machine (CI beside a developer) rarely collide.
  const start = Math.floor(Math.random() * SUBNETS);
  for (let i = 0; i < SUBNETS; i++) {
    const index = (start + i) % SUBNETS;
    const { host, ns } = subnetAddresses(index);
    if (!used.includes(` ${host}/`) && !used.includes(` ${ns}/`)) return index;
  }
  throw new Error(`no free /30 left in ${NETNS_RANGE}`);
}

async function removeNetwork(netns: string, hostIf: string): Promise<void> {
  // Deleting one end removes the pair at once; `ip netns del` alone frees the veth only later.
  await ip('link', 'del', hostIf).catch(() => undefined);
  await ip('netns', 'del', netns).catch(() => undefined);
}

function waitForListening(child: ChildProcess, label: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => done(new Error(`${label}: echo backend did not start within 10 s; stderr: ${err}`)),
      10_000,
    );
    const done = (e: Error | null, port?: number): void => {
      clearTimeout(timer);
      child.stdout?.removeAllListeners('data');
      child.removeListener('exit', onExit);
      if (e) reject(e);
      else resolve(port as number);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`${label}: echo backend exited (${code ?? signal}) before listening; stderr: ${err}`));
    child.on('exit', onExit);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        const parsed = JSON.parse(line) as { listening: { port: number } };
        done(null, parsed.listening.port);
      }
    });
  });
}

/**
 * Starts an echo backend that answers as `name` at a non-loopback address of its own network
 * namespace. `port` is the port inside the namespace (default 8080; every backend has its own
 * address, so the same port can be reused).
 */
export async function startNetnsBackend(name: string, port = 8080): Promise<NetnsBackend> {
  installExitHook();
  const id = `${process.pid.toString(36)}${(counter++).toString(36)}`;
  const netns = `ingress-sidecar-test-${id}`;
  const hostIf = `isb${id}h`; // at most 15 characters (IFNAMSIZ)
  const nsIf = `isb${id}n`;
  let index = await freeSubnet();
  let addresses = subnetAddresses(index);
  const entry = { netns, hostIf, child: undefined as unknown as ChildProcess };
  try {
    await ip('netns', 'add', netns);
    await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', netns);
    for (let attempt = 0; ; attempt++) {
      try {
        await ip('addr', 'add', `${addresses.host}/30`, 'dev', hostIf);
        break;
      } catch (err) {
        if (attempt >= 5) throw err;
        index = await freeSubnet();
        addresses = subnetAddresses(index);
      }
    }
    await ip('link', 'set', hostIf, 'up');
    await ip('-n', netns, 'addr', 'add', `${addresses.ns}/30`, 'dev', nsIf);
    await ip('-n', netns, 'link', 'set', nsIf, 'up');
    await ip('-n', netns, 'link', 'set', 'lo', 'up');

    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, echoMain, name, String(port), '0.0.0.0'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    entry.child = child;
    live.add(entry);
    const listening = await waitForListening(child, `backend ${name} in ${netns}`);
    child.stdout?.resume();
    child.stderr?.resume();

    let stopped: Promise<void> | undefined;
    return {
      ip: addresses.ns,
      port: listening,
      hostIp: addresses.host,
      name,
      netns,
      stop() {
        stopped ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
          }
          await removeNetwork(netns, hostIf);
          live.delete(entry);
        })();
        return stopped;
      },
    };
  } catch (err) {
    entry.child?.kill('SIGKILL');
    await removeNetwork(netns, hostIf);
    live.delete(entry);
    throw err;
  }
}
