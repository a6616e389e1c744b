/**
 * A small POP3 client: RFC 1939 with CAPA (RFC 2449), STLS (RFC 2595) and SASL AUTH (RFC 5034).
 *
 * - One connection, one command at a time: calls queue and run in order, so answers never mix.
 * - Bytes stay bytes: multi-line answers go through the dot decoder (dot-stream.ts) and RETR/TOP can
 *   be read as a stream with backpressure (the socket is paused while the reader is behind).
 * - Every wait for the server is bounded: `timeoutMs` is how long the server may stay silent while the
 *   client waits for it (dialling, TLS, the greeting, each answer, and between the packets of a
 *   multi-line answer). The bound is about the server, so it is suspended while the *reader* of a
 *   RETR stream is the one behind. On expiry the socket is destroyed and the command rejects with
 *   UPSTREAM_TIMEOUT; a socket that closes or errs midway rejects with UPSTREAM_ERROR. Either way
 *   the client is no longer `usable`, and every later call rejects at once.
 * - Credentials never appear in errors or logs: hooks and errors see the command verb only.
 *
 * The client dials the address it is given: name resolution and the egress check happen before
 * (connect.ts), the host name travels only as TLS SNI and for the certificate check (`servername`).
 */
import net from 'node:net';
import tls from 'node:tls';
import { GatewayError } from '../../errors.js';
import {
  assertSafeArgument,
  chooseMechanism,
  MAX_COMMAND_OCTETS,
  plainResponse,
  oauthbearerResponse,
  xoauth2Response,
  type LoginMechanism,
  type Pop3Credentials,
} from './auth.js';
import { DotDecoder, MessageStream } from './dot-stream.js';
import {
  connectionLostError,
  droppedError,
  errorForReply,
  protocolError,
  socketError,
  timeoutError,
} from './errors.js';
import { LineReader, LineTooLongError } from './line-reader.js';
import {
  parseCapabilities,
  parseReply,
  parseScanListing,
  parseStat,
  type Pop3Reply,
} from './responses.js';

export type Pop3Security = 'tls' | 'starttls' | 'none';

export interface Pop3ClientOptions {
  /** The address to dial (an egress-checked IP address; see connect.ts). */
  host: string;
  port: number;
  security: Pop3Security;
  /** Host name for SNI and the certificate check; undefined when the account named an IP address. */
  servername?: string | undefined;
  tlsVerify: boolean;
  /** Extra trust anchors (tests pass the test server's self-signed certificate). */
  ca?: string | Buffer | Array<string | Buffer> | undefined;
  /** How long the server may stay silent while the client waits for it, per step. */
  timeoutMs: number;
  /**
   * How long a RETR/TOP stream's reader may leave the client paused before the session is given up
   * (UPSTREAM_TIMEOUT). Unset: no bound (the reader decides, e.g. an HTTP client on a slow link).
   */
  readerStallTimeoutMs?: number | undefined;
  /** Bytes a RETR/TOP stream buffers before the socket is paused. Default 256 KiB. */
  streamHighWaterMark?: number;
  /** Longest response line accepted. Default 64 KiB. */
  maxLineBytes?: number;
  /** Cap on a collected multi-line answer (LIST, UIDL, CAPA). Default 64 MiB. */
  maxListingBytes?: number;
  /** Called with each command's verb as it is sent (never its arguments): for metrics and tests. */
  onCommand?: ((verb: string) => void) | undefined;
}

export interface Pop3Retrieval {
  /** The message bytes (or for TOP the header, blank line and body lines), un-stuffed, exact. */
  stream: MessageStream;
  /**
   * Settles when the whole answer has been read off the connection (the client is then free for the
   * next command, though the reader may still be reading buffered bytes); rejects when the session
   * failed before that. Never left unhandled.
   */
  done: Promise<void>;
}

export interface ScanEntry {
  number: number;
  size: number;
}

export interface UidlEntry {
  number: number;
  uidl: string;
}

/** Receives the decoded body of a multi-line answer. */
interface DataSink {
  write(data: Buffer): void;
  end(): void;
  fail(err: Error): void;
}

type Expectation =
  | { kind: 'none' }
  | {
      kind: 'reply';
      verb: string;
      allowContinue: boolean;
      data: DataSink | null;
      resolve: (reply: Pop3Reply) => void;
      reject: (err: Error) => void;
    }
  | { kind: 'data'; verb: string; decoder: DotDecoder; sink: DataSink }
  | { kind: 'handshake'; resolve: () => void; reject: (err: Error) => void };

const NONE: Expectation = { kind: 'none' };
/** RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..0x7E. */
const UIDL_PATTERN = /^[\x21-\x7e]{1,70}$/;

export class Pop3Client {
  /** CAPA as last read (null when the server has no CAPA). Tags upper-cased. */
  capabilities: Map<string, string[]> | null = null;
  /** The server's greeting text. */
  greeting = '';
  /** True once the socket runs TLS (implicit or after STLS). */
  secure = false;

  private socket: net.Socket | null = null;
  private readonly lines: LineReader;
  private expect: Expectation = NONE;
  private failure: GatewayError | null = null;
  private quitted = false;
  private step = 'connect';
  private timer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private pausedForReader = false;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly closedListeners = new Set<(err: GatewayError | null) => void>();

  private constructor(private readonly options: Pop3ClientOptions) {
    this.lines = new LineReader(options.maxLineBytes ?? 64 * 1024);
  }

  /** Dials, reads the greeting and CAPA, and for `starttls` upgrades with STLS (or refuses). Not logged in yet. */
  static async connect(options: Pop3ClientOptions): Promise<Pop3Client> {
    const client = new Pop3Client(options);
    try {
      await client.open();
    } catch (err) {
      client.destroy();
      throw err;
    }
    return client;
  }

  /** True while commands can be sent: no failure, no QUIT. */
  get usable(): boolean {
    return this.failure === null && !this.quitted && this.socket !== null && !this.socket.destroyed;
  }

  /** Why the client stopped being usable, when it failed. */
  get error(): GatewayError | null {
    return this.failure;
  }

  /** Bytes this client holds that no reader has taken yet: socket buffer plus line buffer. */
  get bufferedBytes(): number {
    return (this.socket?.readableLength ?? 0) + this.lines.bufferedBytes;
  }

  /** Called once when the connection ends: with null after QUIT, else with the failure. */
  onClosed(listener: (err: GatewayError | null) => void): () => void {
    this.closedListeners.add(listener);
    return () => this.closedListeners.delete(listener);
  }

  // --- commands ---------------------------------------------------------------------------------

  /** CAPA (RFC 2449 §5); null when the server answers -ERR (an RFC 1939-only server). */
  capa(): Promise<Map<string, string[]> | null> {
    return this.schedule(async () => {
      const { reply, body } = await this.collect('CAPA', 'CAPA', 1024 * 1024);
      this.capabilities = reply.kind === 'ok' ? parseCapabilities(body) : null;
      return this.capabilities;
    });
  }

  /** Logs in with the mechanism the credentials and CAPA call for (see auth.ts). */
  async login(username: string, credentials: Pop3Credentials): Promise<LoginMechanism> {
    const mechanism = chooseMechanism(credentials, this.capabilities);
    if ('accessToken' in credentials) await this.authBearer(mechanism as 'XOAUTH2' | 'OAUTHBEARER', username, credentials.accessToken, credentials.initialResponse ?? true);
    else if (mechanism === 'PLAIN') await this.authPlain(username, credentials.password);
    else await this.userPass(username, credentials.password);
    return mechanism;
  }

  /** USER / PASS (RFC 1939 §7). */
  async userPass(username: string, password: string): Promise<void> {
    assertSafeArgument(username, 'user name');
    assertSafeArgument(password, 'password');
    return this.schedule(async () => {
      const user = await this.exchange(`USER ${username}`, 'USER');
      if (user.kind !== 'ok') throw errorForReply('USER', user, { login: true });
      const pass = await this.exchange(`PASS ${password}`, 'PASS');
      if (pass.kind !== 'ok') throw errorForReply('PASS', pass, { login: true });
    });
  }

  /** AUTH PLAIN (RFC 5034, RFC 4616). */
  async authPlain(username: string, password: string): Promise<void> {
    assertSafeArgument(username, 'user name');
    return this.schedule(() => this.saslExchange('PLAIN', plainResponse(username, password)));
  }

  /** AUTH XOAUTH2 or OAUTHBEARER with an OAuth 2.0 access token; `initialResponse` false: the token after the server's `+`. */
  async authBearer(mechanism: 'XOAUTH2' | 'OAUTHBEARER', username: string, accessToken: string, initialResponse = true): Promise<void> {
    assertSafeArgument(username, 'user name');
    const response = mechanism === 'XOAUTH2' ? xoauth2Response(username, accessToken) : oauthbearerResponse(username, accessToken);
    return this.schedule(() => this.saslExchange(mechanism, response, initialResponse));
  }

  stat(): Promise<{ count: number; size: number }> {
    return this.schedule(async () => {
      const reply = await this.exchange('STAT', 'STAT');
      if (reply.kind !== 'ok') throw errorForReply('STAT', reply);
      return this.parsed(() => parseStat(reply), 'STAT');
    });
  }

  /** LIST (RFC 1939 §5): every message's number and exact size in octets. */
  list(): Promise<ScanEntry[]> {
    return this.schedule(async () => {
      const { reply, body } = await this.collect('LIST', 'LIST', this.options.maxListingBytes ?? 64 * 1024 * 1024);
      if (reply.kind !== 'ok') throw errorForReply('LIST', reply);
      return this.parsed(() => parseScanListing(body, 'LIST').map((e) => ({ number: e.number, size: Number(e.value) })), 'LIST');
    });
  }

  /** UIDL (RFC 1939 §7): every message's number and unique-id. */
  uidl(): Promise<UidlEntry[]> {
    return this.schedule(async () => {
      const { reply, body } = await this.collect('UIDL', 'UIDL', this.options.maxListingBytes ?? 64 * 1024 * 1024);
      if (reply.kind !== 'ok') throw errorForReply('UIDL', reply);
      const entries = this.parsed(() => parseScanListing(body, 'UIDL'), 'UIDL');
      for (const e of entries) {
        if (!UIDL_PATTERN.test(e.value)) this.fatal(protocolError('a UIDL unique-id outside RFC 1939 §7'));
      }
      return entries.map((e) => ({ number: e.number, uidl: e.value }));
    });
  }

  /**
   * TOP n lines (RFC 1939 §7): the header, the blank line and `lines` body lines, as bytes. At most
   * `maxBytes` are kept (the rest is read and dropped), so a pathological header cannot cost memory.
   */
  async top(messageNumber: number, lines: number, maxBytes = 1024 * 1024): Promise<Buffer> {
    return this.schedule(async () => {
      const { reply, body } = await this.collect(`TOP ${int(messageNumber)} ${int(lines)}`, 'TOP', maxBytes, true);
      if (reply.kind !== 'ok') throw errorForReply('TOP', reply);
      return body;
    });
  }

  /** RETR n as a stream of the message's exact bytes. Rejects on -ERR (nothing to read then). */
  async retr(messageNumber: number): Promise<Pop3Retrieval> {
    return this.scheduleStream(`RETR ${int(messageNumber)}`, 'RETR');
  }

  /** TOP n lines as a stream. */
  async topStream(messageNumber: number, lines: number): Promise<Pop3Retrieval> {
    return this.scheduleStream(`TOP ${int(messageNumber)} ${int(lines)}`, 'TOP');
  }

  /** DELE n: marks the message; it is removed only when QUIT is answered +OK (RFC 1939 §6). */
  async dele(messageNumber: number): Promise<void> {
    return this.simple(`DELE ${int(messageNumber)}`, 'DELE');
  }

  noop(): Promise<void> {
    return this.simple('NOOP', 'NOOP');
  }

  /** RSET: unmarks every message marked deleted in this session. */
  rset(): Promise<void> {
    return this.simple('RSET', 'RSET');
  }

  /**
   * QUIT: ends the session; the server removes the messages marked deleted (UPDATE state, RFC 1939 §6)
   * and only a +OK says it did. Rejects (and drops the connection) on -ERR or a connection lost first.
   */
  quit(): Promise<void> {
    return this.schedule(async () => {
      const reply = await this.exchange('QUIT', 'QUIT');
      if (reply.kind !== 'ok') {
        const err = errorForReply('QUIT', reply);
        this.fatal(err);
      }
      this.quitted = true;
      this.clearTimer();
      this.socket?.end();
      this.notifyClosed(null);
    });
  }

  /** Drops the connection without QUIT: nothing marked deleted in this session is removed. */
  destroy(): void {
    if (this.quitted && this.failure === null) {
      this.socket?.destroy();
      return;
    }
    this.fail(droppedError());
  }

  // --- connection -------------------------------------------------------------------------------

  private async open(): Promise<void> {
    const { options } = this;
    this.step = 'connect';
    const greeting = new Promise<Pop3Reply>((resolve, reject) => {
      this.expect = { kind: 'reply', verb: 'greeting', allowContinue: false, data: null, resolve, reject };
    });
    let socket: net.Socket;
    if (options.security === 'tls') {
      socket = tls.connect({
        host: options.host,
        port: options.port,
        ...this.tlsOptions(),
      });
      this.secure = true;
    } else {
      socket = net.connect({ host: options.host, port: options.port });
    }
    this.attach(socket);
    this.armTimer();
    const hello = await greeting;
    this.step = 'greeting';
    if (hello.kind !== 'ok') throw errorForReply('greeting', hello);
    this.greeting = hello.text;

    const caps = await this.capa();
    if (options.security === 'starttls') {
      if (caps === null || !caps.has('STLS')) {
        // RFC 2595 §2.2: a client configured for TLS must not go on in clear text.
        throw new GatewayError(
          'UPSTREAM_ERROR',
          'The mail server does not offer STLS, so the login would travel unencrypted; refused (use security "tls", or "none" if that is intended)',
        );
      }
      await this.stls();
      // RFC 2595 §4: forget what was learnt before TLS and ask again.
      await this.capa();
    }
  }

  /** STLS (RFC 2595 §4) and the TLS handshake over the same socket. */
  private stls(): Promise<void> {
    return this.schedule(async () => {
      const reply = await this.exchange('STLS', 'STLS');
      if (reply.kind !== 'ok') throw errorForReply('STLS', reply);
      if (this.lines.bufferedBytes > 0) {
        // Bytes sent before the handshake would be taken as if they came over TLS (the STARTTLS
        // command injection class of bugs, CVE-2011-0411): refuse.
        this.fatal(protocolError('data after the STLS answer, before TLS'));
      }
      const plain = this.socket;
      if (plain === null) throw droppedError();
      this.detach(plain);
      const secure = tls.connect({ socket: plain, host: this.options.host, ...this.tlsOptions() });
      this.attach(secure);
      this.step = 'TLS handshake';
      await new Promise<void>((resolve, reject) => {
        this.expect = { kind: 'handshake', resolve, reject };
        this.armTimer();
        secure.once('secureConnect', () => {
          if (this.expect.kind === 'handshake') {
            this.expect = NONE;
            this.clearTimer();
            resolve();
          }
        });
      });
      this.secure = true;
    });
  }

  private tlsOptions(): tls.ConnectionOptions {
    const { servername, tlsVerify, ca } = this.options;
    return {
      ...(servername !== undefined ? { servername } : {}),
      rejectUnauthorized: tlsVerify,
      ...(ca !== undefined ? { ca } : {}),
    };
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lines.push(chunk);
    if (this.expect.kind !== 'none' && !this.pausedForReader) this.armTimer();
    this.pump();
  };

  private readonly onError = (err: Error): void => {
    this.fail(socketError(err, this.step));
  };

  private readonly onClose = (): void => {
    if (this.failure !== null) return;
    if (this.quitted) {
      this.clearTimer();
      return;
    }
    this.fail(connectionLostError(this.step));
  };

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private detach(socket: net.Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
    // The TLS socket that wraps it reports failures; an error here must not crash the process.
    socket.on('error', () => undefined);
  }

  /** Processes buffered bytes according to what is expected. */
  private pump(): void {
    while (this.failure === null) {
      const exp = this.expect;
      if (exp.kind === 'none') {
        // Nothing was asked: bytes now would be taken as the answer to the next command.
        if (this.lines.bufferedBytes > 0 && !this.quitted) this.fatalNow(protocolError('data nobody asked for'));
        return;
      }
      if (exp.kind === 'handshake') return;
      if (exp.kind === 'data') {
        if (this.pausedForReader) return;
        const chunk = this.lines.takeRest();
        if (chunk.length === 0) return;
        this.feed(exp, chunk);
        continue;
      }
      let line: Buffer | null;
      try {
        line = this.lines.nextLine();
      } catch (err) {
        this.fatalNow(protocolError(err instanceof LineTooLongError ? err.message : 'unreadable line'));
        return;
      }
      if (line === null) return;
      const reply = parseReply(line);
      if (reply === null || (reply.kind === 'continue' && !exp.allowContinue)) {
        this.fatalNow(protocolError(`an answer to ${exp.verb} that is neither +OK nor -ERR`));
        return;
      }
      if (reply.kind === 'ok' && exp.data !== null) {
        this.expect = { kind: 'data', verb: exp.verb, decoder: new DotDecoder(), sink: exp.data };
      } else {
        this.expect = NONE;
        this.clearTimer();
        // An -ERR to a multi-line command has no body: its sink ends empty.
        exp.data?.end();
      }
      exp.resolve(reply);
    }
  }

  private feed(exp: Extract<Expectation, { kind: 'data' }>, chunk: Buffer): void {
    const result = exp.decoder.write(chunk);
    if (result.data.length === 1) exp.sink.write(result.data[0]!);
    else if (result.data.length > 1) exp.sink.write(Buffer.concat(result.data));
    if (result.done) {
      this.expect = NONE;
      this.clearTimer();
      // The whole answer is in the stream's buffer now: the socket no longer waits for its reader,
      // or the next command's answer would sit unread behind a paused socket.
      this.releaseReaderPause();
      if (result.rest.length > 0) this.lines.push(result.rest);
      exp.sink.end();
    }
  }

  // --- flow control for streams -------------------------------------------------------------------

  private pauseForReader(): void {
    if (this.pausedForReader || this.failure !== null) return;
    this.pausedForReader = true;
    this.socket?.pause();
    this.clearTimer();
    const stallMs = this.options.readerStallTimeoutMs;
    if (stallMs !== undefined) {
      this.stallTimer = setTimeout(() => this.fail(timeoutError('the reader of a download stopped reading')), stallMs);
    }
  }

  private releaseReaderPause(): void {
    if (!this.pausedForReader) return;
    this.pausedForReader = false;
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.socket?.resume();
  }

  private resumeForReader(): void {
    if (!this.pausedForReader || this.failure !== null) return;
    this.pausedForReader = false;
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    if (this.expect.kind !== 'none') this.armTimer();
    this.socket?.resume();
    // Bytes that arrived with the last packet before the pause wait in the line buffer.
    queueMicrotask(() => this.pump());
  }

  // --- plumbing -----------------------------------------------------------------------------------

  /**
   * Runs `work` after every earlier command has finished. `work` resolves with the caller's value
   * and a promise for when the connection is free again (after a streamed answer was fully read).
   */
  private scheduleWith<T>(work: () => Promise<{ value: T; free: Promise<void> }>): Promise<T> {
    const started = this.tail.then(() => {
      if (this.failure !== null) throw this.failure;
      if (this.quitted) throw new GatewayError('UPSTREAM_ERROR', 'The POP3 session has ended (QUIT)');
      return work();
    });
    this.tail = started.then(
      (r) => r.free.catch(() => undefined),
      () => undefined,
    );
    return started.then((r) => r.value);
  }

  private schedule<T>(work: () => Promise<T>): Promise<T> {
    return this.scheduleWith(async () => ({ value: await work(), free: Promise.resolve() }));
  }

  private scheduleStream(line: string, verb: string): Promise<Pop3Retrieval> {
    return this.scheduleWith(async () => {
      let settle!: { resolve: () => void; reject: (err: Error) => void };
      const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      done.catch(() => undefined);
      const stream = new MessageStream(
        {
          pause: () => this.pauseForReader(),
          resume: () => this.resumeForReader(),
          // The reader gave up: keep reading to the terminator (dropping the bytes) so the session
          // stays usable; the caller may instead destroy() the client when much is left.
          abandon: () => this.resumeForReader(),
        },
        this.options.streamHighWaterMark ?? 256 * 1024,
      );
      const sink: DataSink = {
        write: (data) => stream.deliver(data),
        end: () => {
          stream.finish();
          settle.resolve();
        },
        fail: (err) => {
          stream.destroy(err);
          settle.reject(err);
        },
      };
      const reply = await this.exchange(line, verb, { data: sink });
      if (reply.kind !== 'ok') throw errorForReply(verb, reply);
      return { value: { stream, done }, free: done };
    });
  }

  private async simple(line: string, verb: string): Promise<void> {
    return this.schedule(async () => {
      const reply = await this.exchange(line, verb);
      if (reply.kind !== 'ok') throw errorForReply(verb, reply);
    });
  }

  /** Sends a multi-line command and collects its body (bounded; over the bound: truncate or fail). */
  private async collect(
    line: string,
    verb: string,
    maxBytes: number,
    truncate = false,
  ): Promise<{ reply: Pop3Reply; body: Buffer }> {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflow = false;
    let settle!: { resolve: () => void; reject: (err: Error) => void };
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    done.catch(() => undefined);
    const sink: DataSink = {
      write: (data) => {
        if (size + data.length > maxBytes) {
          if (size < maxBytes) chunks.push(data.subarray(0, maxBytes - size));
          size = maxBytes;
          overflow = true;
          return;
        }
        chunks.push(data);
        size += data.length;
      },
      end: () => settle.resolve(),
      fail: (err) => settle.reject(err),
    };
    const reply = await this.exchange(line, verb, { data: sink });
    await done;
    if (overflow && !truncate) throw protocolError(`the ${verb} answer is larger than ${maxBytes} bytes`);
    return { reply, body: Buffer.concat(chunks, Math.min(size, maxBytes)) };
  }

  /** SASL AUTH (RFC 5034 §4), initial response on the AUTH line when it fits in 255 octets. */
  private async saslExchange(mechanism: 'PLAIN' | 'XOAUTH2' | 'OAUTHBEARER', response: string, initialResponse = true): Promise<void> {
    const inline = `AUTH ${mechanism} ${response}`;
    let reply: Pop3Reply;
    if (initialResponse && inline.length + 2 <= MAX_COMMAND_OCTETS) {
      reply = await this.exchange(inline, 'AUTH', { allowContinue: true });
    } else {
      reply = await this.exchange(`AUTH ${mechanism}`, 'AUTH', { allowContinue: true });
      if (reply.kind === 'continue') reply = await this.exchange(response, 'AUTH', { allowContinue: true });
    }
    if (reply.kind === 'continue') {
      // A challenge after our response: the error report (base64 JSON) of XOAUTH2 or OAUTHBEARER. The
      // client answers with an empty line (XOAUTH2) or a lone ^A (RFC 7628 §3.2.3), and the server then
      // fails the AUTH; for any other mechanism, cancel with "*" (RFC 5034 §4).
      const answer = mechanism === 'XOAUTH2' ? '' : mechanism === 'OAUTHBEARER' ? Buffer.from('\x01').toString('base64') : '*';
      reply = await this.exchange(answer, 'AUTH', { allowContinue: true });
    }
    if (reply.kind !== 'ok') {
      throw errorForReply('AUTH', reply.kind === 'continue' ? { kind: 'err', code: null, text: '' } : reply, { login: true });
    }
  }

  /** Writes one command line and waits for its status line. */
  private exchange(
    line: string,
    verb: string,
    options: { data?: DataSink; allowContinue?: boolean } = {},
  ): Promise<Pop3Reply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const socket = this.socket;
    if (socket === null) return Promise.reject(droppedError());
    this.step = verb;
    const reply = new Promise<Pop3Reply>((resolve, reject) => {
      this.expect = {
        kind: 'reply',
        verb,
        allowContinue: options.allowContinue ?? false,
        data: options.data ?? null,
        resolve,
        reject,
      };
    });
    this.options.onCommand?.(verb);
    socket.write(Buffer.from(`${line}\r\n`, 'utf8'));
    this.armTimer();
    // An answer may already be buffered (a server that wrote ahead): look now.
    this.pump();
    return reply;
  }

  private parsed<T>(parse: () => T, verb: string): T {
    try {
      return parse();
    } catch {
      this.fatal(protocolError(`a malformed ${verb} answer`));
    }
  }

  /** Fails the session and throws (from inside a command). */
  private fatal(err: GatewayError): never {
    this.fail(err);
    throw err;
  }

  /** Fails the session from the data path (no caller to throw to). */
  private fatalNow(err: GatewayError): void {
    this.fail(err);
  }

  private fail(err: GatewayError): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.clearTimer();
    clearTimeout(this.stallTimer);
    this.socket?.destroy();
    const exp = this.expect;
    this.expect = NONE;
    if (exp.kind === 'reply') {
      exp.data?.fail(err);
      exp.reject(err);
    } else if (exp.kind === 'data') {
      exp.sink.fail(err);
    } else if (exp.kind === 'handshake') {
      exp.reject(err);
    }
    this.notifyClosed(err);
  }

  private notifyClosed(err: GatewayError | null): void {
    const listeners = [...this.closedListeners];
    this.closedListeners.clear();
    for (const listener of listeners) listener(err);
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fail(timeoutError(this.step)), this.options.timeoutMs);
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function int(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new GatewayError('INTERNAL_ERROR', 'a POP3 message number must be a whole number');
  return String(n);
}
