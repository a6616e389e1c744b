/**
 * Server-sent events on one HTTP response: the framing of the WHATWG HTML standard, §9.2 "Server-sent
 * events" (https://html.spec.whatwg.org/multipage/server-sent-events.html), keep-alive comments, and
 * the bounds that keep a slow client from holding the gateway's memory.
 *
 * Backpressure: `write` answers false once Node buffers more than the socket's high-water mark
 * (16 KiB). The stream then writes nothing (no event, no ping) until 'drain', so what the gateway
 * holds for one client is that mark plus one frame, whatever the event rate. A client that does not
 * drain within `drainTimeoutMs`, or has more than `bufferLimitBytes` buffered (only a single frame
 * larger than the limit can get there), is disconnected; it resumes from its last id.
 */
import type { ServerResponse } from 'node:http';

/**
 * Why a stream ended: the client left, it could not keep up, the gateway is stopping, the caller's
 * token was deleted or expired, an account it followed was deleted, it was done, or something failed.
 */
export type SseCloseReason = 'client' | 'slow' | 'shutdown' | 'revoked' | 'deleted' | 'done' | 'error';

/**
 * One event as the stream carries it (§9.2.6 "Interpreting an event stream"): `id:` sets the
 * client's last event ID (sent back as `Last-Event-ID` when it reconnects), `event:` the event's
 * type, `data:` its payload, and a blank line dispatches it. A field value ends at CR or LF, so
 * `data` must be one line: JSON.stringify escapes every CR and LF inside strings. An id must not
 * hold NUL (the client would ignore the field), CR or LF.
 */
export function eventFrame(fields: { id?: string; event: string; data: string }): string {
  for (const [name, value] of Object.entries(fields)) {
    if (/[\r\n\0]/.test(value)) throw new Error(`SSE ${name} must be one line without NUL`);
  }
  return `${fields.id === undefined ? '' : `id: ${fields.id}\n`}event: ${fields.event}\ndata: ${fields.data}\n\n`;
}

/** A comment line (starts with a colon, §9.2.6): ignored by clients, it keeps proxies from closing an idle stream. */
export const PING_FRAME = ': ping\n\n';

export interface SseStreamOptions {
  /** A `: ping` comment after this long without a frame. */
  pingIntervalMs: number;
  /** More than this buffered for the client disconnects it. */
  bufferLimitBytes: number;
  /** A client that does not drain within this long is disconnected. */
  drainTimeoutMs: number;
  /** Told once when the stream ends, with why. */
  onClose?: (reason: SseCloseReason) => void;
}

/** How long a graceful end (shutdown) may take to flush before the socket is destroyed. */
const END_FLUSH_MS = 1_000;

/**
 * An `text/event-stream` response whose headers were sent. `send` resolves once more may be written
 * (at once, or after 'drain'); it resolves false once the stream is closed.
 */
export class SseStream {
  private pingTimer: NodeJS.Timeout | undefined;
  private drainWaiter: { resolve: (ok: boolean) => void; timer: NodeJS.Timeout } | undefined;
  private closeReason: SseCloseReason | undefined;
  private readonly closedPromise: Promise<SseCloseReason>;
  private resolveClosed!: (reason: SseCloseReason) => void;

  constructor(
    private readonly res: ServerResponse,
    private readonly options: SseStreamOptions,
  ) {
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    // 'close' without 'finish' first: the client went away (or the socket was destroyed here).
    res.on('close', () => this.finish(res.writableFinished ? 'done' : 'client'));
    res.on('error', () => this.finish('client'));
    res.on('drain', () => this.settleDrain(true));
    this.armPing();
  }

  /** True until the stream ends, for whatever reason. */
  get open(): boolean {
    return this.closeReason === undefined;
  }

  /** Resolves with the reason once the stream has ended. */
  get closed(): Promise<SseCloseReason> {
    return this.closedPromise;
  }

  /** Bytes written but not yet handed to the kernel (Node's buffer and the socket's). */
  get bufferedBytes(): number {
    return this.open ? this.res.writableLength : 0;
  }

  /** Writes one frame; resolves true when the next may follow, false once the stream is closed. */
  async send(frame: string): Promise<boolean> {
    if (!this.open) return false;
    this.armPing();
    if (this.write(frame)) return true;
    if (!this.open) return false;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.drainWaiter = undefined;
        this.disconnect('slow');
        resolve(false);
      }, this.options.drainTimeoutMs);
      this.drainWaiter = { resolve, timer };
    });
  }

  /** Ends the response gracefully (what is buffered is flushed first), or destroys it if that takes too long. */
  end(reason: SseCloseReason = 'done'): Promise<SseCloseReason> {
    if (!this.open) return this.closedPromise;
    this.closeReason = reason;
    this.stopTimers();
    const force = setTimeout(() => this.res.destroy(), END_FLUSH_MS);
    force.unref();
    this.res.end(() => clearTimeout(force));
    this.settle(reason);
    return this.closedPromise;
  }

  /** Drops the connection at once, discarding what is buffered. */
  disconnect(reason: SseCloseReason): void {
    if (!this.open) return;
    this.closeReason = reason;
    this.stopTimers();
    this.res.destroy();
    this.settle(reason);
  }

  /** Whether more may be written now; false means wait for 'drain'. Disconnects a client over the limit. */
  private write(frame: string): boolean {
    const more = this.res.write(frame);
    if (this.res.writableLength > this.options.bufferLimitBytes) {
      this.disconnect('slow');
      return false;
    }
    return more;
  }

  private armPing(): void {
    clearTimeout(this.pingTimer);
    if (!this.open) return;
    this.pingTimer = setTimeout(() => {
      // While the client has not drained, a ping would only add to what it cannot read.
      if (this.open && !this.res.writableNeedDrain) this.write(PING_FRAME);
      this.armPing();
    }, this.options.pingIntervalMs);
    this.pingTimer.unref();
  }

  private settleDrain(ok: boolean): void {
    const waiter = this.drainWaiter;
    if (waiter === undefined) return;
    this.drainWaiter = undefined;
    clearTimeout(waiter.timer);
    waiter.resolve(ok);
  }

  private finish(reason: SseCloseReason): void {
    if (this.open) this.closeReason = reason;
    this.stopTimers();
    this.settle(this.closeReason ?? reason);
  }

  private stopTimers(): void {
    clearTimeout(this.pingTimer);
    this.pingTimer = undefined;
    this.settleDrain(false);
  }

  private settled = false;

  private settle(reason: SseCloseReason): void {
    if (this.settled) return;
    this.settled = true;
    this.options.onClose?.(reason);
    this.resolveClosed(reason);
  }
}
