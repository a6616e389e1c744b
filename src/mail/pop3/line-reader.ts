/**
 * Splits the bytes of a POP3 connection into response lines (RFC 1939 §3: lines end in CRLF), however
 * the stream was cut into packets. A line may arrive one byte per packet, or share a packet with the
 * start of a multi-line response; `takeRest()` hands those bytes on unchanged to the dot decoder.
 *
 * Lines are returned as bytes without their line end: nothing is decoded as UTF-8 here. A bare LF is
 * accepted as a line end too (some servers send one in greetings); the CR before it is then absent.
 */

const LF = 0x0a;
const CR = 0x0d;

export class LineTooLongError extends Error {
  constructor(readonly maxLineBytes: number) {
    super(`The server sent a line longer than ${maxLineBytes} bytes`);
    this.name = 'LineTooLongError';
  }
}

export class LineReader {
  /** Unconsumed bytes; `start` is where the unread part begins (no copy per line). */
  private buffer: Buffer = Buffer.alloc(0);
  private start = 0;
  /** Where the search for LF resumes, so a line that trickles in is scanned once (no quadratic rescans). */
  private scanFrom = 0;

  /**
   * @param maxLineBytes longest line accepted (RFC 2449 §4 caps responses at 512 octets; servers
   *   exceed it in greetings and CAPA, so the default bound is generous but finite).
   */
  constructor(private readonly maxLineBytes = 64 * 1024) {}

  /** Bytes held and not yet returned. */
  get bufferedBytes(): number {
    return this.buffer.length - this.start;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.bufferedBytes === 0) {
      // The common case: nothing pending, keep the chunk itself (no copy).
      this.buffer = chunk;
      this.start = 0;
      this.scanFrom = 0;
      return;
    }
    const pending = this.buffer.subarray(this.start);
    this.scanFrom -= this.start;
    this.buffer = Buffer.concat([pending, chunk]);
    this.start = 0;
  }

  /**
   * The next complete line without its CRLF, or null when none is complete yet.
   * Throws LineTooLongError when more than `maxLineBytes` are pending without a line end.
   */
  nextLine(): Buffer | null {
    const lf = this.buffer.indexOf(LF, Math.max(this.start, this.scanFrom));
    if (lf === -1) {
      this.scanFrom = this.buffer.length;
      if (this.bufferedBytes > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
      return null;
    }
    if (lf - this.start > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
    const end = lf > this.start && this.buffer[lf - 1] === CR ? lf - 1 : lf;
    const line = this.buffer.subarray(this.start, end);
    this.start = lf + 1;
    this.scanFrom = this.start;
    return line;
  }

  /** Everything buffered and not yet returned as a line; the reader is empty afterwards. */
  takeRest(): Buffer {
    const rest = this.buffer.subarray(this.start);
    this.buffer = Buffer.alloc(0);
    this.start = 0;
    this.scanFrom = 0;
    return rest;
  }
}
