// The client side of the benchmarks, in a worker thread: it writes burst files and polls nginx with plain HTTP/1.1
// requests (a fresh connection each, Host set per request) so that the sidecar's event loop on the
// main thread is not interleaved with hundreds of client callbacks per second. Times are epoch
// milliseconds (performance.timeOrigin + performance.now()), comparable across threads.
//
// Every loop is bounded twice: by a request count and by a deadline.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import { parentPort } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PollerReply, PollerRequest } from './lib.ts';

const now = (): number => performance.timeOrigin + performance.now();
const REQUEST_TIMEOUT_MS = 1000;

/**
 * One GET of / for `host` on a fresh connection: a 200's body goes to `onOk`; any other status, an
 * error or a timeout is the answer itself.
 */
function get(port: number, host: string, onOk: (body: string) => string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        method: 'GET',
        headers: { Host: host },
        agent: false,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => resolve(`error ${err.message}`));
        res.on('end', () => {
          if (res.statusCode !== 200) return resolve(String(res.statusCode));
          try {
            resolve(onOk(Buffer.concat(chunks).toString('utf8')));
          } catch {
            resolve('200 without an echo body');
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`error ${err.message}`));
    req.end();
  });
}

/** What one request saw: 'ok' when the echo backend answered for this host, else a short reason. */
function check(port: number, host: string, service: string): Promise<string> {
  return get(port, host, (text) => {
    const body = JSON.parse(text) as { service?: string; headers?: { host?: string } };
    return body.service === service && body.headers?.host === host
      ? 'ok'
      : `200 from ${body.service} for ${body.headers?.host}`;
  });
}

/** Which echo backend answered (its name), else the status or the error. */
function who(port: number, host: string): Promise<string> {
  return get(port, host, (text) => String((JSON.parse(text) as { service?: string }).service));
}

/** Polls one host for a while and records who answered. */
async function record(msg: Extract<PollerRequest, { type: 'record' }>): Promise<PollerReply> {
  const end = now() + msg.durationMs;
  const maxTries = Math.ceil(msg.durationMs / Math.max(1, msg.intervalMs)) + 1;
  const answers: Record<string, number> = {};
  const transitions: Array<{ at: number; answer: string }> = [];
  let requests = 0;
  let last: string | undefined;
  for (let i = 0; i < maxTries && now() < end; i++) {
    const started = now();
    const answer = await who(msg.port, msg.host);
    requests++;
    answers[answer] = (answers[answer] ?? 0) + 1;
    if (answer !== last) transitions.push({ at: now(), answer });
    last = answer;
    const wait = started + msg.intervalMs - now();
    if (wait > 0) await sleep(wait);
  }
  return { type: 'record', id: msg.id, requests, answers, transitions };
}

async function probe(msg: Extract<PollerRequest, { type: 'probe' }>): Promise<PollerReply> {
  const deadline = now() + msg.timeoutMs;
  const maxTries = Math.ceil(msg.timeoutMs / Math.max(1, msg.intervalMs)) + 1;
  let last = '';
  for (let tries = 1; tries <= maxTries && now() < deadline; tries++) {
    const started = now();
    last = await check(msg.port, msg.host, msg.service);
    const at = now();
    if (tries === 1) parentPort!.postMessage({ type: 'started', id: msg.id, first: last } satisfies PollerReply);
    if (last === 'ok')
      return {
        type: 'probe',
        id: msg.id,
        ok: true,
        at,
        tries,
        last,
        firstWasOk: tries === 1,
        ...(await tail(msg, at)),
      };
    const wait = started + msg.intervalMs - now();
    if (wait > 0) await sleep(wait);
  }
  return {
    type: 'probe',
    id: msg.id,
    ok: false,
    at: now(),
    tries: maxTries,
    last,
    firstWasOk: false,
    wrongAfter: 0,
    lastWrongAt: 0,
  };
}

/**
 * Keeps polling for tailMs after the first correct answer: during a reload the old workers accept
 * for a while too, so a client may still get the old answer. Counts those and notes the last one.
 */
async function tail(
  msg: Extract<PollerRequest, { type: 'probe' }>,
  firstOk: number,
): Promise<{ wrongAfter: number; lastWrongAt: number }> {
  let wrongAfter = 0;
  let lastWrongAt = 0;
  const end = firstOk + msg.tailMs;
  const maxTries = Math.ceil(msg.tailMs / Math.max(1, msg.intervalMs)) + 1;
  for (let i = 0; i < maxTries && now() < end; i++) {
    const started = now();
    const seen = await check(msg.port, msg.host, msg.service);
    if (seen !== 'ok') {
      wrongAfter++;
      lastWrongAt = now();
    }
    const wait = started + msg.intervalMs - now();
    if (wait > 0) await sleep(wait);
  }
  return { wrongAfter, lastWrongAt };
}

/** Checks every host; re-checks the ones not yet answering until all do. `at`: when the last one first did. */
async function sweep(msg: Extract<PollerRequest, { type: 'sweep' }>): Promise<PollerReply> {
  const deadline = now() + msg.timeoutMs;
  let missing = [...msg.hosts];
  let lastConfirmed = 0;
  let requests = 0;
  let rounds = 0;
  const maxRounds = Math.ceil(msg.timeoutMs / Math.max(1, msg.retryMs)) + 1;
  for (; rounds < maxRounds && missing.length > 0 && now() < deadline; rounds++) {
    const next: string[] = [];
    let cursor = 0;
    const lane = async () => {
      while (cursor < missing.length && now() < deadline) {
        const host = missing[cursor++]!;
        requests++;
        const seen = await check(msg.port, host, msg.service);
        if (seen === 'ok') lastConfirmed = Math.max(lastConfirmed, now());
        else next.push(host);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, msg.concurrency) }, lane));
    missing = [...next, ...missing.slice(cursor)];
    if (missing.length > 0) await sleep(msg.retryMs);
  }
  return { type: 'sweep', id: msg.id, ok: missing.length === 0, at: lastConfirmed, missing, requests, rounds };
}

/** Writes files as fast as it can, `concurrency` at a time: an external writer, off the sidecar's thread. */
async function write(msg: Extract<PollerRequest, { type: 'write' }>): Promise<PollerReply> {
  const startedAt = now();
  let cursor = 0;
  const lane = async () => {
    while (cursor < msg.files.length) {
      const f = msg.files[cursor++]!;
      await writeFile(f.path, f.content);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(msg.concurrency, msg.files.length)) }, lane));
  return { type: 'write', id: msg.id, startedAt, doneAt: now() };
}

parentPort!.on('message', (msg: PollerRequest) => {
  const run =
    msg.type === 'probe'
      ? probe(msg)
      : msg.type === 'sweep'
        ? sweep(msg)
        : msg.type === 'record'
          ? record(msg)
          : write(msg);
  void run.then((reply) => parentPort!.postMessage(reply));
});
