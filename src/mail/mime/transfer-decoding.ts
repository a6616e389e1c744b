/**
 * Content-Transfer-Encoding (RFC 2045 §6) undone chunk by chunk: the bytes of a body part arrive in
 * pieces cut anywhere (partial FETCHes of a fixed size), so each decoder keeps what a cut left
 * unfinished (a base64 quantum, a quoted-printable `=` escape or soft line break, trailing blanks
 * whose line end has not come yet) and finishes it with the next piece or at the end.
 *
 * The output is what mailparser, the message view's parser, decodes from the whole part (it uses
 * libbase64 and libqp), whatever the cuts: so an attachment's download has the `size` its listing
 * says, byte for byte. The unit tests compare the two at every cut.
 */

/** Decodes a stream of pieces; `write` may hold back a few bytes until the next piece or `end`. */
export interface ChunkDecoder {
  write(chunk: Buffer): Buffer;
  end(): Buffer;
}

export type TransferDecoding =
  /** base64 or quoted-printable: undone here. */
  | { kind: 'decoded'; encoding: 'base64' | 'quoted-printable'; decoder: ChunkDecoder }
  /** 7bit, 8bit, binary (or none declared): the bytes are the content. */
  | { kind: 'identity' }
  /** An encoding the gateway does not know (x-uuencode, a typo): the bytes go out as they are. */
  | { kind: 'unknown'; encoding: string };

/** How to undo a part's transfer encoding, as BODYSTRUCTURE names it (any case; absent means 7bit). */
export function transferDecoding(encoding: string | undefined): TransferDecoding {
  const name = (encoding ?? '').trim().toLowerCase();
  switch (name) {
    case 'base64':
      return { kind: 'decoded', encoding: name, decoder: new Base64Decoder() };
    case 'quoted-printable':
      return { kind: 'decoded', encoding: name, decoder: new QuotedPrintableDecoder() };
    case '':
    case '7bit':
    case '8bit':
    case 'binary':
      return { kind: 'identity' };
    default:
      return { kind: 'unknown', encoding: name };
  }
}

// --- base64 (RFC 2045 §6.8) ------------------------------------------------------------------------

/** Sextet value of each byte; SKIP for bytes outside the alphabet (line breaks, blanks, garbage). */
const SKIP = -1;
const PAD = -2;
const SEXTETS = (() => {
  const table = new Int8Array(256).fill(SKIP);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  table[0x3d] = PAD;
  return table;
})();

/**
 * Every byte outside the alphabet is skipped (RFC 2045 §6.8: "must be ignored"). A `=` ends the
 * quantum in progress (two sextets give one byte, three give two, one gives none) and decoding goes
 * on after it, so parts made of several padded bodies decode whole, as libbase64 does. The quantum
 * in progress is carried from one piece to the next, so a piece may end anywhere.
 */
export class Base64Decoder implements ChunkDecoder {
  /** The sextets of the quantum in progress, most significant first. */
  private bits = 0;
  private sextets = 0;

  write(chunk: Buffer): Buffer {
    const out = Buffer.allocUnsafe(Math.ceil(((this.sextets + chunk.length) * 3) / 4));
    let o = 0;
    let bits = this.bits;
    let sextets = this.sextets;
    for (let i = 0; i < chunk.length; i++) {
      const value = SEXTETS[chunk[i]!]!;
      if (value >= 0) {
        bits = (bits << 6) | value;
        if (++sextets === 4) {
          out[o++] = (bits >> 16) & 0xff;
          out[o++] = (bits >> 8) & 0xff;
          out[o++] = bits & 0xff;
          bits = 0;
          sextets = 0;
        }
      } else if (value === PAD) {
        o = partialQuantum(out, o, bits, sextets);
        bits = 0;
        sextets = 0;
      }
    }
    this.bits = bits;
    this.sextets = sextets;
    return out.subarray(0, o);
  }

  end(): Buffer {
    const out = Buffer.allocUnsafe(2);
    const o = partialQuantum(out, 0, this.bits, this.sextets);
    this.bits = 0;
    this.sextets = 0;
    return out.subarray(0, o);
  }
}

/** The whole bytes of an unfinished quantum (RFC 2045 §6.8's padding cases); answers the new offset. */
function partialQuantum(out: Buffer, o: number, bits: number, sextets: number): number {
  if (sextets === 2) {
    out[o++] = (bits >> 4) & 0xff;
  } else if (sextets === 3) {
    out[o++] = (bits >> 10) & 0xff;
    out[o++] = (bits >> 2) & 0xff;
  }
  return o;
}

// --- quoted-printable (RFC 2045 §6.7) --------------------------------------------------------------

const EQUALS = 0x3d;
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

/**
 * Three steps, as libqp takes them over the whole text, each one here a small state machine that
 * carries what a cut left undecided:
 *   1. blanks (space, tab) right before a line end, or at the very end, are dropped (rule 3: they
 *      were added in transport);
 *   2. soft line breaks go: `=` before LF or CRLF, and a `=` that ends the part (rule 5);
 *   3. `=XX` with two hex digits (either case) is that byte; any other `=` stays as it is, as do
 *      all other bytes (rule 1, and the "robust implementation" of its note).
 * Cuts may fall inside a run of blanks, between `=` and its CR or LF, or inside an escape.
 */
export class QuotedPrintableDecoder implements ChunkDecoder {
  /** Step 1: blanks seen whose fate waits on what follows them. */
  private blanks: number[] = [];
  /** Step 2: 0 nothing held, 1 a `=`, 2 a `=` then CR. */
  private softBreak = 0;
  /** Step 3: a `=` and up to one byte after it, until the escape is known to be one or not. */
  private escape: number[] = [];
  private out: Buffer = Buffer.alloc(0);
  private o = 0;

  write(chunk: Buffer): Buffer {
    // Steps only drop bytes or give back held ones (blanks, `=` CR, `=` and one more), never add.
    this.out = Buffer.allocUnsafe(chunk.length + this.blanks.length + 4);
    this.o = 0;
    for (let i = 0; i < chunk.length; i++) this.stepBlanks(chunk[i]!);
    return this.out.subarray(0, this.o);
  }

  end(): Buffer {
    this.out = Buffer.allocUnsafe(4);
    this.o = 0;
    // Blanks at the very end are dropped (step 1); so is a `=` that ends the part (step 2).
    this.blanks = [];
    if (this.softBreak === 2) {
      this.stepEscapes(EQUALS);
      this.stepEscapes(CR);
    }
    this.softBreak = 0;
    // An unfinished escape stays as it is (step 3).
    for (const byte of this.escape) this.emit(byte);
    this.escape = [];
    return this.out.subarray(0, this.o);
  }

  private stepBlanks(byte: number): void {
    if (byte === SPACE || byte === TAB) {
      this.blanks.push(byte);
      return;
    }
    if (this.blanks.length > 0) {
      if (byte !== CR && byte !== LF) for (const blank of this.blanks) this.stepSoftBreaks(blank);
      this.blanks = [];
    }
    this.stepSoftBreaks(byte);
  }

  private stepSoftBreaks(byte: number): void {
    if (this.softBreak === 1) {
      if (byte === LF) {
        this.softBreak = 0;
        return;
      }
      if (byte === CR) {
        this.softBreak = 2;
        return;
      }
      this.softBreak = 0;
      this.stepEscapes(EQUALS);
    } else if (this.softBreak === 2) {
      this.softBreak = 0;
      if (byte === LF) return;
      this.stepEscapes(EQUALS);
      this.stepEscapes(CR);
    }
    if (byte === EQUALS) {
      this.softBreak = 1;
      return;
    }
    this.stepEscapes(byte);
  }

  private stepEscapes(byte: number): void {
    const escape = this.escape;
    if (escape.length === 0) {
      if (byte === EQUALS) escape.push(byte);
      else this.emit(byte);
      return;
    }
    if (escape.length === 1) {
      escape.push(byte);
      return;
    }
    const high = hexValue(escape[1]!);
    const low = hexValue(byte);
    if (high >= 0 && low >= 0) {
      this.emit(high * 16 + low);
      this.escape = [];
      return;
    }
    // Not an escape: the `=` goes out as it is, and the two bytes after it are looked at again.
    const [, second] = escape;
    this.escape = [];
    this.emit(EQUALS);
    this.stepEscapes(second!);
    this.stepEscapes(byte);
  }

  private emit(byte: number): void {
    if (this.o === this.out.length) {
      const grown = Buffer.allocUnsafe(this.out.length * 2 + 16);
      this.out.copy(grown, 0, 0, this.o);
      this.out = grown;
    }
    this.out[this.o++] = byte;
  }
}
