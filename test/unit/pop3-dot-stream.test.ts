/**
 * The POP3 byte-level parsers without a connection: the dot decoder (RFC 1939 §3 byte-stuffing and the
 * `CRLF.CRLF` terminator) under every split of its input, the line reader, and reply parsing.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DotDecoder } from '../../src/mail/pop3/dot-stream.js';
import { LineReader, LineTooLongError } from '../../src/mail/pop3/line-reader.js';
import { parseCapabilities, parseReply, parseScanListing } from '../../src/mail/pop3/responses.js';
import { errorForReply } from '../../src/mail/pop3/errors.js';

/** The server side of RFC 1939 §3, written independently of the decoder: stuff, end in CRLF, add `.CRLF`. */
function stuff(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const withFinalCrlf = text.endsWith('\r\n') ? text : `${text}\r\n`;
  const stuffed = withFinalCrlf
    .split('\r\n')
    .slice(0, -1)
    .map((line) => (line.startsWith('.') ? `.${line}` : line))
    .join('\r\n');
  return Buffer.from(`${stuffed}\r\n.\r\n`, 'latin1');
}

/** Feeds `chunks` through a fresh decoder; returns the decoded bytes, whether it ended and what came after. */
function decode(chunks: Buffer[]): { data: Buffer; done: boolean; rest: Buffer } {
  const decoder = new DotDecoder();
  const out: Buffer[] = [];
  const rest: Buffer[] = [];
  let done = false;
  for (const chunk of chunks) {
    const result = decoder.write(chunk);
    out.push(...result.data);
    if (result.done) {
      done = true;
      rest.push(result.rest);
    }
  }
  return { data: Buffer.concat(out), done, rest: Buffer.concat(rest) };
}

function splitAt(buf: Buffer, ...offsets: number[]): Buffer[] {
  const points = [0, ...offsets, buf.length];
  return points.slice(1).map((end, i) => buf.subarray(points[i], end));
}

const TRICKY = Buffer.concat([
  Buffer.from('Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n'.replace('.\r\n', '. \r\n'), 'latin1'),
  Buffer.from('a line\r\n.\r\x00not the end\r\n', 'latin1'),
  Buffer.from([0xe4, 0xf6, 0xfc, 0x80, 0xff, 0x0d, 0x0a]), // 8-bit bytes, not UTF-8
  Buffer.from('.\r\r\n', 'latin1'), // a stuffed line whose content is a bare CR
  Buffer.from('last line\r\n', 'latin1'),
]);

describe('DotDecoder', () => {
  it('gives back exactly the message bytes, final CRLF kept, 8-bit bytes untouched', () => {
    const wire = stuff(TRICKY);
    const { data, done, rest } = decode([wire]);
    expect(done).toBe(true);
    expect(rest.length).toBe(0);
    expect(data.equals(TRICKY)).toBe(true);
    expect(data.subarray(-2).toString('latin1')).toBe('\r\n');
  });

  it('survives a split at every offset of the response (terminator and stuffed lines included)', () => {
    const wire = stuff(TRICKY);
    for (let i = 0; i <= wire.length; i++) {
      const { data, done } = decode(splitAt(wire, i));
      expect(done, `split at ${i}`).toBe(true);
      expect(data.equals(TRICKY), `split at ${i}`).toBe(true);
    }
  });

  it('survives every pair of split offsets within the terminator region and one byte per chunk', () => {
    const wire = stuff(TRICKY);
    const from = wire.length - 12;
    for (let i = from; i <= wire.length; i++) {
      for (let j = i; j <= wire.length; j++) {
        const { data, done } = decode(splitAt(wire, i, j));
        expect(done, `split at ${i},${j}`).toBe(true);
        expect(data.equals(TRICKY), `split at ${i},${j}`).toBe(true);
      }
    }
    const bytes = [...wire].map((b) => Buffer.of(b));
    const single = decode(bytes);
    expect(single.done).toBe(true);
    expect(single.data.equals(TRICKY)).toBe(true);
  });

  it('undoes dot-stuffing split at every offset of a stuffed line', () => {
    const message = Buffer.from('A\r\n..\r\n...\r\n.x.\r\n', 'latin1');
    const wire = stuff(message);
    expect(wire.toString('latin1')).toBe('A\r\n...\r\n....\r\n..x.\r\n.\r\n');
    for (let i = 0; i <= wire.length; i++) {
      for (let j = i; j <= wire.length; j++) {
        expect(decode(splitAt(wire, i, j)).data.toString('latin1'), `split at ${i},${j}`).toBe(message.toString('latin1'));
      }
    }
  });

  it('does not end at a dot that is not alone on its line, nor at ".CRLF" inside a line', () => {
    const message = Buffer.from('x.\r\n.\r\ny\r\n', 'latin1'); // server stuffs the middle line to "..\r\n"
    const { data, done } = decode([stuff(message)]);
    expect(done).toBe(true);
    expect(data.equals(message)).toBe(true);
    const unfinished = decode([Buffer.from('abc\r\n.x\r\n', 'latin1')]);
    expect(unfinished.done).toBe(false);
    expect(unfinished.data.toString('latin1')).toBe('abc\r\nx\r\n');
  });

  it('ends an empty body at once and hands back the bytes after the terminator', () => {
    const { data, done, rest } = decode([Buffer.from('.\r\n+OK next\r\n', 'latin1')]);
    expect(done).toBe(true);
    expect(data.length).toBe(0);
    expect(rest.toString('latin1')).toBe('+OK next\r\n');
  });

  it('round-trips random binary content at random splits', () => {
    for (let round = 0; round < 50; round++) {
      // Random bytes with many CRLFs and dots, so stuffed lines and near-terminators are common.
      const alphabet = Buffer.from('.\r\n.\r\na\x00\xff.', 'latin1');
      const raw = Buffer.from([...randomBytes(600)].map((b) => alphabet[b % alphabet.length]!));
      // The server's message is CRLF-clean: make every CR and LF part of a CRLF.
      const message = Buffer.from(raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
      const wire = stuff(message);
      const cuts = [...randomBytes(8)].map((b) => Math.floor((b / 256) * wire.length)).sort((a, b) => a - b);
      const { data, done } = decode(splitAt(wire, ...cuts));
      expect(done).toBe(true);
      const expected = message.toString('latin1').endsWith('\r\n') ? message : Buffer.concat([message, Buffer.from('\r\n')]);
      expect(data.equals(expected)).toBe(true);
    }
  });
});

describe('LineReader', () => {
  it('returns lines without CRLF however the bytes were cut, and hands on the rest untouched', () => {
    const wire = Buffer.from('+OK hello\r\n-ERR [IN-USE] busy\r\nrest\xff', 'latin1');
    for (let i = 0; i <= wire.length; i++) {
      const reader = new LineReader();
      const lines: string[] = [];
      for (const part of splitAt(wire, i)) {
        reader.push(part);
        for (let line = reader.nextLine(); line !== null; line = reader.nextLine()) lines.push(line.toString('latin1'));
      }
      expect(lines, `split at ${i}`).toEqual(['+OK hello', '-ERR [IN-USE] busy']);
      expect(reader.takeRest().toString('latin1')).toBe('rest\xff');
      expect(reader.bufferedBytes).toBe(0);
    }
  });

  it('refuses a line longer than its bound', () => {
    const reader = new LineReader(16);
    reader.push(Buffer.alloc(17, 0x41));
    expect(() => reader.nextLine()).toThrow(LineTooLongError);
  });
});

describe('replies', () => {
  it('parses status indicators and RFC 2449 / RFC 3206 response codes', () => {
    expect(parseReply(Buffer.from('+OK Dovecot ready.'))).toEqual({ kind: 'ok', code: null, text: 'Dovecot ready.' });
    expect(parseReply(Buffer.from('+OK'))).toEqual({ kind: 'ok', code: null, text: '' });
    expect(parseReply(Buffer.from('-ERR [IN-USE] Mailbox locked'))).toEqual({ kind: 'err', code: 'IN-USE', text: 'Mailbox locked' });
    expect(parseReply(Buffer.from('-ERR [sys/temp] try later'))).toEqual({ kind: 'err', code: 'SYS/TEMP', text: 'try later' });
    expect(parseReply(Buffer.from('+ '))).toEqual({ kind: 'continue', code: null, text: '' });
    expect(parseReply(Buffer.from('* OK imap'))).toBeNull();
    expect(parseReply(Buffer.from('+OKAY'))).toBeNull();
  });

  it('maps -ERR answers to stable codes', () => {
    const inUse = errorForReply('PASS', { kind: 'err', code: 'IN-USE', text: 'locked' }, { login: true });
    expect(inUse.code).toBe('POOL_EXHAUSTED');
    expect(inUse.status).toBe(503);
    expect(inUse.retryAfterSeconds).toBeGreaterThan(0);
    expect(errorForReply('PASS', { kind: 'err', code: 'AUTH', text: 'no' }, { login: true }).code).toBe('UPSTREAM_AUTH_FAILED');
    expect(errorForReply('PASS', { kind: 'err', code: null, text: 'no' }, { login: true }).code).toBe('UPSTREAM_AUTH_FAILED');
    expect(errorForReply('PASS', { kind: 'err', code: 'SYS/TEMP', text: 'x' }, { login: true }).code).toBe('UPSTREAM_ERROR');
    expect(errorForReply('RETR', { kind: 'err', code: null, text: 'no such message' }).code).toBe('UPSTREAM_ERROR');
  });

  it('parses CAPA and scan listings', () => {
    const caps = parseCapabilities(Buffer.from('TOP\r\nUIDL\r\nSASL PLAIN LOGIN\r\nSTLS\r\nuser\r\n'));
    expect(caps.get('SASL')).toEqual(['PLAIN', 'LOGIN']);
    expect(caps.has('USER')).toBe(true);
    expect(parseScanListing(Buffer.from('1 120\r\n2 3400\r\n'), 'LIST')).toEqual([
      { number: 1, value: '120' },
      { number: 2, value: '3400' },
    ]);
    expect(() => parseScanListing(Buffer.from('x y\r\n'), 'UIDL')).toThrow(SyntaxError);
  });
});
