/**
 * Repairs of message structure that mailparser (mailsplit) gets wrong, made on the bytes before it
 * reads them (feed.ts), so that both parses of a message (the view's and a download's) see the same:
 *
 * - RFC 2046 §5.1.5: in a `multipart/digest`, a part without a Content-Type is `message/rfc822`, not
 *   `text/plain`. mailsplit applies the general default everywhere, so a digest's entries were pasted
 *   into the message's text; such parts get the header the RFC implies, `Content-Type: message/rfc822`.
 * - The header block of a multipart ends at its first line that cannot be a header field: not a
 *   continuation (leading white space) and without a colon (RFC 5322 §2.2), once the block has declared
 *   its boundary. Senders that forget the empty line after the headers write the preamble next ("This is
 *   a multi-part message in MIME format."); mailsplit took it, and every line up to the next empty one,
 *   for headers, losing the first body part. The empty line is put in. Elsewhere such lines stay in the
 *   header as mailsplit reads them (an mbox `From ` line, the obsolete syntax of RFC 5322 §4.5).
 *
 * Every other byte passes through unchanged. Line-oriented and streaming: it follows the MIME structure
 * only as far as needed (header blocks, which it parses for Content-Type and boundary, and boundary
 * lines), holding at most one header block (MAX_HEADER_BLOCK; past that it stops repairing). Bodies
 * stream through.
 */

const DIGEST_PART_TYPE = Buffer.from('Content-Type: message/rfc822\r\n');
/** A header block longer than this is passed through as it is, and rewriting stops (a broken message). */
const MAX_HEADER_BLOCK = 256 * 1024;

interface Multipart {
  boundary: string;
  digest: boolean;
}

type State =
  /** Reading a header block: `defaultRfc822` when it is a digest entry's; `part` when it follows a boundary. */
  | { kind: 'header'; lines: Buffer[]; size: number; defaultRfc822: boolean }
  | { kind: 'body' }
  | { kind: 'off' };

export class MimeRepairs {
  private state: State = { kind: 'header', lines: [], size: 0, defaultRfc822: false };
  private readonly open: Multipart[] = [];
  /** The start of a line whose end has not come yet. */
  private partial: Buffer | null = null;
  private out: Buffer[] = [];

  /** The bytes to hand to the parser for this chunk (possibly fewer now, the rest later). */
  push(chunk: Buffer): Buffer {
    const data = this.partial === null ? chunk : Buffer.concat([this.partial, chunk]);
    this.partial = null;
    let start = 0;
    for (;;) {
      const end = data.indexOf(0x0a, start);
      if (end < 0) break;
      this.line(data.subarray(start, end + 1));
      start = end + 1;
    }
    if (start < data.length) {
      const rest = data.subarray(start);
      // A body line without its end yet goes now when it cannot be a boundary (RFC 2046 §5.1.1: at most
      // 70 characters and some padding); else it waits for its end.
      const mayBeBoundary = rest.length < 2 || (rest[0] === 0x2d && rest[1] === 0x2d && rest.length <= 1024);
      if (this.state.kind === 'off' || (this.state.kind === 'body' && !mayBeBoundary)) this.emit(rest);
      else if (rest.length > MAX_HEADER_BLOCK) this.giveUp(rest);
      else this.partial = Buffer.from(rest);
    }
    return this.take();
  }

  /** What is left at the end of the source. */
  end(): Buffer {
    if (this.partial !== null) {
      this.line(this.partial);
      this.partial = null;
    }
    if (this.state.kind === 'header') {
      this.emit(...this.state.lines);
      this.state = { kind: 'off' };
    }
    return this.take();
  }

  /** Queues output; pieces that follow each other in one chunk are joined without copying. */
  private emit(...pieces: Buffer[]): void {
    for (const piece of pieces) {
      const last = this.out[this.out.length - 1];
      if (last !== undefined && last.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
        this.out[this.out.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + piece.length);
      } else this.out.push(piece);
    }
  }

  private take(): Buffer {
    const out = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
    this.out = [];
    return out;
  }

  private line(line: Buffer): void {
    const state = this.state;
    if (state.kind === 'off') {
      this.emit(line);
      return;
    }
    if (state.kind === 'header') {
      if (isBlank(line)) return this.endHeader(state, line);
      if (!mayBeHeaderLine(line) && contentTypeOf(state.lines)?.boundary) {
        // The sender forgot the empty line after a multipart's headers: the block ends here, this line is its preamble.
        this.endHeader(state, line.includes(0x0d) ? CRLF : LF);
        return this.line(line);
      }
      state.lines.push(line);
      state.size += line.length;
      if (state.size > MAX_HEADER_BLOCK) this.giveUp(null);
      return;
    }
    this.emit(line);
    if (line.length < 3 || line[0] !== 0x2d || line[1] !== 0x2d || this.open.length === 0) return;
    const text = line.toString('latin1').replace(/[ \t\r\n]+$/, '');
    for (let i = this.open.length - 1; i >= 0; i--) {
      const { boundary, digest } = this.open[i]!;
      if (text === `--${boundary}--`) {
        this.open.length = i;
        return;
      }
      if (text === `--${boundary}`) {
        this.open.length = i + 1;
        this.state = { kind: 'header', lines: [], size: 0, defaultRfc822: digest };
        return;
      }
    }
  }

  /** Passes everything through from here on: what is held first, then `rest`. */
  private giveUp(rest: Buffer | null): void {
    if (this.state.kind === 'header') this.emit(...this.state.lines);
    if (rest !== null) this.emit(rest);
    this.state = { kind: 'off' };
  }

  private endHeader(state: Extract<State, { kind: 'header' }>, blank: Buffer): void {
    const type = contentTypeOf(state.lines);
    this.emit(...state.lines);
    if (type === null && state.defaultRfc822) this.emit(DIGEST_PART_TYPE);
    this.emit(blank);
    const effective = type ?? (state.defaultRfc822 ? { value: 'message/rfc822', boundary: null } : { value: 'text/plain', boundary: null });
    if (effective.value.startsWith('multipart/') && effective.boundary !== null) {
      this.open.push({ boundary: effective.boundary, digest: effective.value === 'multipart/digest' });
    }
    // An encapsulated message's body starts with its own header block.
    this.state = effective.value === 'message/rfc822' ? { kind: 'header', lines: [], size: 0, defaultRfc822: false } : { kind: 'body' };
  }
}

const CRLF = Buffer.from('\r\n');
const LF = Buffer.from('\n');

/** A header field line (it has a colon) or the continuation of one (it starts with white space). */
function mayBeHeaderLine(line: Buffer): boolean {
  return line[0] === 0x20 || line[0] === 0x09 || line.includes(0x3a);
}

function isBlank(line: Buffer): boolean {
  return line.length === 0 || (line.length === 1 && line[0] === 0x0a) || (line.length === 2 && line[0] === 0x0d && line[1] === 0x0a);
}

/** The Content-Type of a header block (its value lower-cased and its boundary), or null when it has none. */
function contentTypeOf(lines: Buffer[]): { value: string; boundary: string | null } | null {
  const text = Buffer.concat(lines).toString('latin1').replace(/\r?\n(?=[ \t])/g, '');
  const field = /^content-type[ \t]*:(.*)$/im.exec(text);
  if (field === null) return null;
  const header = field[1]!;
  const value = header.split(';')[0]!.trim().toLowerCase();
  const boundary = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(header);
  return { value, boundary: boundary ? (boundary[1] ?? boundary[2] ?? '').trimEnd() || null : null };
}
