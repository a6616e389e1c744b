/**
 * The body of a POP3 multi-line response (RFC 1939 §3) turned back into the exact bytes it carries.
 *
 * On the wire every line ends in CRLF, a line that starts with "." has one more "." put in front of it
 * (byte-stuffing), and the response ends with a line holding just "." — so the message's own last CRLF
 * is followed by `.CRLF`. Undoing that:
 * - a "." at the start of a line is dropped, unless the line is exactly ".", which ends the response;
 * - everything else passes through untouched: 8-bit bytes, NULs, bare CRs; the message's final CRLF
 *   is kept (it belongs to the message, the terminator is only `.CRLF`);
 * - the state lives between chunks, so the terminator or a stuffed dot split across packets at any
 *   offset is recognised the same way.
 * A line starts after every LF. Servers send CRLF only (Dovecot converts bare LF on the way out), so
 * this matters only for a server that leaves bare LFs in; treating them as line ends is what such a
 * server means when it stuffs the dot after one.
 *
 * `DotDecoder` is the pure state machine; `MessageStream` is the Readable a caller gets for RETR/TOP,
 * with backpressure: when its buffer is full it asks the connection to pause the socket, and asks it
 * to resume when the reader wants more, so a slow reader never makes the client hold the message.
 */
import { Readable } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CR_BYTE = Buffer.of(CR);

const enum State {
  /** At the first byte of a line. */
  LineStart,
  /** Inside a line; the next LF ends it. */
  InLine,
  /** A line started with "." (not passed on: it is stuffing or the terminator). */
  Dot,
  /** A line started with ".\r" (the CR is held back until we know it is not the terminator). */
  DotCr,
  /** The terminator was seen. */
  Done,
}

export interface DecodeResult {
  /** Message bytes, in order (slices of the input where possible). */
  data: Buffer[];
  /** True once the terminating `.CRLF` line has been consumed. */
  done: boolean;
  /** Bytes after the terminator (the start of whatever the server sent next); empty otherwise. */
  rest: Buffer;
}

const EMPTY = Buffer.alloc(0);

export class DotDecoder {
  private state = State.LineStart;

  get done(): boolean {
    return this.state === State.Done;
  }

  write(chunk: Buffer): DecodeResult {
    const data: Buffer[] = [];
    if (this.state === State.Done) return { data, done: true, rest: chunk };
    let segmentStart = -1; // start of the pass-through run being collected, or -1
    let i = 0;
    const flush = (end: number): void => {
      if (segmentStart !== -1 && end > segmentStart) data.push(chunk.subarray(segmentStart, end));
      segmentStart = -1;
    };
    while (i < chunk.length) {
      switch (this.state) {
        case State.LineStart:
          if (chunk[i] === DOT) {
            flush(i);
            this.state = State.Dot;
            i += 1;
          } else {
            if (segmentStart === -1) segmentStart = i;
            this.state = State.InLine;
          }
          break;
        case State.InLine: {
          if (segmentStart === -1) segmentStart = i;
          const lf = chunk.indexOf(LF, i);
          if (lf === -1) {
            i = chunk.length;
          } else {
            i = lf + 1;
            this.state = State.LineStart;
          }
          break;
        }
        case State.Dot:
          if (chunk[i] === CR) {
            this.state = State.DotCr;
            i += 1;
          } else {
            // A stuffed line: the dot is dropped and the rest of the line is content.
            segmentStart = i;
            this.state = State.InLine;
          }
          break;
        case State.DotCr:
          if (chunk[i] === LF) {
            this.state = State.Done;
            return { data, done: true, rest: chunk.subarray(i + 1) };
          }
          // ".\r" then something else: a stuffed line whose content starts with the held-back CR.
          data.push(CR_BYTE);
          segmentStart = i;
          this.state = State.InLine;
          break;
        default:
          return { data, done: true, rest: chunk.subarray(i) };
      }
    }
    flush(chunk.length);
    return { data, done: false, rest: EMPTY };
  }
}

/** How a MessageStream reaches back into the connection it reads from. */
export interface FlowControl {
  /** The reader is behind: stop reading from the socket. */
  pause(): void;
  /** The reader wants more. */
  resume(): void;
  /** The reader destroyed the stream before its end: the rest of the response is not wanted. */
  abandon(): void;
}

/** The decoded bytes of one RETR or TOP response, as they arrive. */
export class MessageStream extends Readable {
  /** Decoded bytes handed to this stream so far. */
  bytesDecoded = 0;
  private complete = false;

  constructor(
    private readonly flow: FlowControl,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }

  /** Called by the connection with decoded bytes. */
  deliver(data: Buffer): void {
    if (this.destroyed || data.length === 0) return;
    this.bytesDecoded += data.length;
    if (!this.push(data)) this.flow.pause();
  }

  /** Called by the connection once the terminator was read. */
  finish(): void {
    this.complete = true;
    if (!this.destroyed) this.push(null);
  }

  /** True once the whole response was received (the reader may still be reading). */
  get received(): boolean {
    return this.complete;
  }

  override _read(): void {
    this.flow.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.complete) this.flow.abandon();
    callback(err);
  }
}
