/**
 * The chunk-by-chunk transfer decoders against libbase64's and libqp's decoder streams (what
 * mailparser, the message view's parser, decodes with) given the whole input: the same bytes
 * wherever the input is cut.
 */
import { randomBytes } from 'node:crypto';
import type { Transform } from 'node:stream';
import libbase64 from 'libbase64';
import libqp from 'libqp';
import { describe, expect, it } from 'vitest';
import { Base64Decoder, QuotedPrintableDecoder, transferDecoding, type ChunkDecoder } from '../../src/mail/mime/transfer-decoding.js';

/** `input` through a fresh decoder, cut at `cuts` (sorted offsets). */
function decodeCut(make: () => ChunkDecoder, input: Buffer, cuts: number[]): Buffer {
  const decoder = make();
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(decoder.write(input.subarray(from, cut)));
    from = cut;
  }
  out.push(decoder.end());
  return Buffer.concat(out);
}

/** Every single cut, every pair of adjacent cuts, and a few random multi-cuts, all equal to `expected`. */
function expectEveryCut(make: () => ChunkDecoder, input: Buffer, expected: Buffer): void {
  const differs: string[] = [];
  const check = (cuts: number[]): void => {
    const got = decodeCut(make, input, cuts);
    if (!got.equals(expected) && differs.length < 5) differs.push(`cuts ${JSON.stringify(cuts)}: ${JSON.stringify(got.toString('latin1'))}`);
  };
  check([]);
  for (let i = 0; i <= input.length; i++) {
    check([i]);
    if (i + 1 <= input.length) check([i, i + 1]);
    if (i + 2 <= input.length) check([i, i + 2]);
  }
  for (let round = 0; round < 20; round++) {
    const cuts = Array.from({ length: 1 + (round % 7) }, () => Math.floor(Math.random() * (input.length + 1))).sort((a, b) => a - b);
    check(cuts);
  }
  // One byte at a time.
  check(Array.from({ length: input.length }, (_, i) => i));
  expect(differs, `input ${JSON.stringify(input.toString('latin1'))}, expected ${JSON.stringify(expected.toString('latin1'))}`).toEqual([]);
}

/** What mailparser's decoder stream makes of the whole input. */
async function reference(decoder: Transform, input: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  decoder.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise((resolve, reject) => decoder.on('end', resolve).on('error', reject));
  decoder.end(input);
  await done;
  return Buffer.concat(out);
}

const base64 = async (input: Buffer) => expectEveryCut(() => new Base64Decoder(), input, await reference(new libbase64.Decoder(), input));
const qp = async (input: Buffer) => expectEveryCut(() => new QuotedPrintableDecoder(), input, await reference(new libqp.Decoder(), input));
const latin1 = (text: string) => Buffer.from(text, 'latin1');

describe('Base64Decoder', () => {
  it('decodes wrapped base64 of random bytes of many lengths back to the bytes, at every cut', async () => {
    for (const length of [0, 1, 2, 3, 4, 5, 56, 57, 58, 100, 301]) {
      const bytes = randomBytes(length);
      for (const lineLength of [76, 4, 7, 1000]) {
        const encoded = latin1(bytes.toString('base64').replace(new RegExp(`.{${lineLength}}`, 'g'), '$&\r\n'));
        expectEveryCut(() => new Base64Decoder(), encoded, bytes);
      }
    }
  });

  it('skips bytes outside the alphabet (bare LF, blanks, 8-bit, base64url) as libbase64 does', async () => {
    await base64(latin1('QU JD\nRE\tVG\r\n\r\n'));
    await base64(latin1('QUJ\xe9DRA-_=='));
    await base64(latin1('  \r\n'));
  });

  it('ends a quantum at `=` and decodes on after it (concatenated bodies), as libbase64 does', async () => {
    await base64(latin1('QQ==QUJD'));
    await base64(latin1('QUI=QUJDRA=='));
    await base64(latin1('Q=QUJD'));
    await base64(latin1('=QUJD='));
    await base64(latin1('QUJDRA'));
    await base64(latin1('QUJDR'));
    await base64(latin1('QUJDRA====RUY'));
  });

  it('matches libbase64 on random inputs from a base64-ish alphabet', async () => {
    const alphabet = 'ABCxyz019+/==\r\n \t-*';
    for (let round = 0; round < 40; round++) {
      const text = Array.from({ length: 1 + Math.floor(Math.random() * 40) }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
      await base64(latin1(text));
    }
  });
});

describe('QuotedPrintableDecoder', () => {
  it('decodes escapes of either case and keeps other bytes', async () => {
    await qp(latin1('caf=C3=A9 na=c3=afve =3D equals\r\n'));
    expect(decodeCut(() => new QuotedPrintableDecoder(), latin1('caf=C3=A9'), [4])).toEqual(Buffer.from('café'));
  });

  it('drops soft line breaks (= before CRLF or LF, and at the end), even with blanks after the =', async () => {
    await qp(latin1('a long line that is wr=\r\napped, and w=\nrapped again, and ends on a soft break='));
    await qp(latin1('blanks after the soft break=  \t\r\nare transport padding'));
    await qp(latin1('=4=\r\n1 is an escape cut by a soft break'));
  });

  it('drops blanks before a line end and at the very end, keeps them elsewhere', async () => {
    await qp(latin1('trailing   \r\nblanks\t \nin  the middle   '));
    await qp(latin1('   \r\n \r\n'));
    await qp(latin1('a =20\r\n'));
  });

  it('leaves malformed escapes as they are, and looks again at what follows a lone =', async () => {
    await qp(latin1('=ZZ =4 ==41 =\r= =G1 =1'));
    await qp(latin1('=\r'));
    await qp(latin1('=\rx'));
    await qp(latin1('=\r\r\n'));
    await qp(latin1('=4'));
    await qp(latin1('=='));
  });

  it('passes 8-bit bytes through', async () => {
    await qp(Buffer.from([0xe9, 0x20, 0x0a, 0xff, 0x3d, 0x0d, 0x0a, 0x80]));
  });

  it('matches libqp on random inputs from a QP-ish alphabet', async () => {
    const alphabet = '==aF09G \t\r\n\r\nx';
    for (let round = 0; round < 60; round++) {
      const text = Array.from({ length: 1 + Math.floor(Math.random() * 30) }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
      await qp(latin1(text));
    }
  });

  it('round-trips libqp-encoded random bytes', async () => {
    for (const length of [0, 1, 10, 100, 400]) {
      const bytes = randomBytes(length);
      const encoded = Buffer.from(libqp.wrap(libqp.encode(bytes), 76), 'latin1');
      expect(await reference(new libqp.Decoder(), encoded)).toEqual(bytes);
      expectEveryCut(() => new QuotedPrintableDecoder(), encoded, bytes);
    }
  });
});

describe('transferDecoding', () => {
  it('decodes base64 and quoted-printable (any case), passes 7bit, 8bit, binary and none through, and names what it does not know', async () => {
    expect(transferDecoding('BASE64')).toMatchObject({ kind: 'decoded', encoding: 'base64' });
    expect(transferDecoding('Quoted-Printable')).toMatchObject({ kind: 'decoded', encoding: 'quoted-printable' });
    for (const identity of ['7bit', '8BIT', 'binary', '', undefined]) expect(transferDecoding(identity)).toEqual({ kind: 'identity' });
    expect(transferDecoding('x-uuencode')).toEqual({ kind: 'unknown', encoding: 'x-uuencode' });
  });
});
