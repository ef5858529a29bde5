// The DNS server nginx's upstream resolver asks (`resolver 127.0.0.1:PORT;`), on UDP and TCP of
// one port. nginx sends no EDNS, so an answer over 512 bytes goes out truncated over UDP and
// nginx asks again over TCP, on a connection it keeps; both carry the same answers (responder.ts).
import dgram from 'node:dgram';
import { isIPv6, type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../ops/log.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { EndpointAnswers } from './answers.ts';
import { Responder, type Outcome, type Transport } from './responder.ts';

export interface DnsServerOptions {
  host: string;
  /** 0: any free port (both UDP and TCP get the same one); `port` says which. */
  port: number;
  answers: EndpointAnswers;
  logger: Logger;
  metrics?: Metrics;
}

/** A resolver keeps one connection per worker; more than this is not nginx. */
const MAX_TCP_CONNECTIONS = 256;
/** Idle TCP connections are closed after this (RFC 7766 asks for a limit); nginx reconnects. */
const TCP_IDLE_MS = 60_000;
/** A query is a few hundred bytes: a connection that buffers more than this is not sending DNS. */
const TCP_MAX_BUFFERED = 2 + 65535;
/**
 * nginx asks every upstream at once when a worker starts (10,000 questions in a burst at 10,000
 * upstreams): the default receive buffer (208 KiB) drops most of them, and each drop costs that
 * upstream a resend 5 s later. The kernel caps this at net.core.rmem_max.
 */
const UDP_RECEIVE_BUFFER = 4 * 1024 * 1024;
/** How often a free port is tried for TCP when the one UDP got is taken (port 0 only). */
const BIND_TRIES = 20;
/** Expected when nginx goes away mid-connection (a reload, a restart): not an error of ours. */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export class DnsServer {
  private readonly opts: DnsServerOptions;
  private readonly responder: Responder;
  private udp: dgram.Socket | null = null;
  private tcp: Server | null = null;
  private readonly connections = new Set<Socket>();
  private boundPort = 0;

  constructor(opts: DnsServerOptions) {
    this.opts = opts;
    this.responder = new Responder(opts.answers);
  }

  /** The port both sockets listen on (the one chosen when 0 was asked), once started. */
  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.udp) throw new Error('DNS server already started');
    const { host, port } = this.opts;
    for (let attempt = 1; ; attempt++) {
      const udp = await bindUdp(host, port);
      const chosen = (udp.address() as AddressInfo).port;
      try {
        this.tcp = await listenTcp(host, chosen, (socket) => this.onConnection(socket));
        this.udp = udp;
        this.boundPort = chosen;
        break;
      } catch (err) {
        await new Promise<void>((resolve) => udp.close(() => resolve()));
        if (port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= BIND_TRIES) throw err;
      }
    }
    this.udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    this.udp.on('error', (err) => this.socketError('udp', err));
    this.tcp.on('error', (err) => this.socketError('tcp', err));
    this.opts.logger.info('DNS server listening', { host, port: this.boundPort, transports: ['udp', 'tcp'] });
  }

  async stop(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = null;
    this.tcp = null;
    for (const socket of this.connections) socket.destroy();
    this.connections.clear();
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : null,
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : null,
    ]);
    if (udp) this.opts.logger.info('DNS server stopped', { port: this.boundPort });
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const bytes = this.answer(msg, 'udp');
    if (!bytes || !this.udp) return;
    this.udp.send(bytes, rinfo.port, rinfo.address, (err) => {
      if (err) this.socketError('udp', err);
    });
  }

  private onConnection(socket: Socket): void {
    if (this.connections.size >= MAX_TCP_CONNECTIONS) {
      this.opts.logger.warn('DNS server: too many TCP connections, refusing one', { limit: MAX_TCP_CONNECTIONS });
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      // Each message is a 2-byte length and the message (RFC 1035 4.2.2); several may come at once.
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const msg = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        const bytes = this.answer(msg, 'tcp');
        if (bytes) {
          const framed = Buffer.allocUnsafe(2 + bytes.length);
          framed.writeUInt16BE(bytes.length, 0);
          bytes.copy(framed, 2);
          socket.write(framed);
        }
      }
      if (buffered.length > TCP_MAX_BUFFERED) {
        this.opts.metrics?.dnsError('bad_packet');
        socket.destroy();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!PEER_GONE.has(err.code ?? '')) this.socketError('tcp', err);
    });
    socket.on('close', () => this.connections.delete(socket));
  }

  /** The response to send (null: none), counted. Never throws: a bad packet is the sender's problem. */
  private answer(msg: Buffer, transport: Transport): Buffer | null {
    let outcome: Outcome;
    try {
      outcome = this.responder.respond(msg, transport);
    } catch (err) {
      // A bug of ours: answer nothing (the resolver retries and keeps its peers) rather than crash.
      this.opts.logger.error('DNS server: failed to answer a query', { error: (err as Error).message, transport });
      this.opts.metrics?.dnsError('bad_packet');
      return null;
    }
    switch (outcome.kind) {
      case 'answer':
        this.opts.metrics?.dnsQuery(outcome.qtype, outcome.rcode, transport, outcome.truncated);
        if (outcome.trimmed > 0 && !outcome.cached)
          this.opts.logger.warn('DNS answer larger than a DNS message: endpoints left out of it', {
            left_out: outcome.trimmed,
          });
        return outcome.bytes;
      case 'bad':
        this.opts.metrics?.dnsError('bad_packet');
        this.opts.logger.debug('DNS server: unreadable packet', { reason: outcome.reason, transport });
        return outcome.bytes;
      case 'ignored':
        return null;
    }
  }

  private socketError(transport: Transport, err: Error): void {
    this.opts.metrics?.dnsError('socket');
    this.opts.logger.warn('DNS server: socket error', { transport, error: err.message });
  }
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', recvBufferSize: UDP_RECEIVE_BUFFER });
  return new Promise((resolve, reject) => {
    socket.once('error', (err) => {
      try {
        socket.close();
      } catch {
        // never bound: nothing to close
      }
      reject(err);
    });
    socket.bind(port, host, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function listenTcp(host: string, port: number, onConnection: (s: Socket) => void): Promise<Server> {
  const server = createServer(onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}
