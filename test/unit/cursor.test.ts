import { describe, expect, it } from 'vitest';
import { thrown } from '../support/assertions.js';
import {
  decodeImapCursor,
  decodeImapState,
  decodePop3Cursor,
  encodeImapCursor,
  encodeImapState,
  encodePop3Cursor,
  encodePop3State,
} from '../../src/mail/cursor.js';

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

describe('IMAP cursors', () => {
  it('round-trip, URL-safe', () => {
    const cursor = { uidValidity: '4294967295', beforeUid: 1234 };
    const token = encodeImapCursor(cursor);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeImapCursor(token)).toEqual(cursor);
  });

  it('rejects garbage and tampered cursors with VALIDATION_FAILED (400) naming the parameter', () => {
    const good = encodeImapCursor({ uidValidity: '7', beforeUid: 10 });
    const tampered = [
      'not a cursor!',
      '',
      good.slice(0, -3),
      b64('{"v":1'),
      b64({ v: 2, uv: '7', b: 10 }),
      b64({ v: 1, uv: 7, b: 10 }),
      b64({ v: 1, uv: '7x', b: 10 }),
      b64({ v: 1, uv: '7', b: 0 }),
      b64({ v: 1, uv: '7', b: 1.5 }),
      b64({ v: 1, uv: '7', b: '10' }),
      b64(null),
      // Beyond what a 32-bit UID or UIDVALIDITY can be (RFC 9051 §2.3.1.1): never issued here.
      b64({ v: 1, uv: '7', b: 1e300 }),
      b64({ v: 1, uv: '7', b: 2 ** 53 + 2 }),
      b64({ v: 1, uv: '7', b: 2 ** 32 + 2 }),
      b64({ v: 1, uv: '4294967296', b: 10 }),
      b64({ v: 1, uv: '9'.repeat(400), b: 10 }),
      b64({ v: 1, uv: '0', b: 10 }),
    ];
    expect(decodeImapCursor(b64({ v: 1, uv: '7', b: 2 ** 32 }))).toEqual({ uidValidity: '7', beforeUid: 2 ** 32 });
    for (const token of tampered) {
      const err = thrown(() => decodeImapCursor(token));
      expect({ token, code: err.code, status: err.status }).toEqual({ token, code: 'VALIDATION_FAILED', status: 400 });
      expect(err.message).toBe('query/cursor is not a cursor this gateway issued');
    }
  });

  it('a POP3 cursor is not an IMAP cursor, nor the other way round', () => {
    const pop3 = encodePop3Cursor({ anchorUidl: 'abc', anchorNumber: 3, following: [] });
    expect(thrown(() => decodeImapCursor(pop3)).code).toBe('VALIDATION_FAILED');
    expect(thrown(() => decodePop3Cursor(encodeImapCursor({ uidValidity: '1', beforeUid: 5 }))).code).toBe('VALIDATION_FAILED');
  });
});

describe('IMAP states', () => {
  it('round-trip, with and without HIGHESTMODSEQ', () => {
    for (const state of [
      { uidValidity: '1', uidNext: 42, exists: 41, highestModseq: '18446744073709551615' },
      { uidValidity: '3857529045', uidNext: 1, exists: 0, highestModseq: null },
    ]) {
      expect(decodeImapState(encodeImapState(state))).toEqual(state);
    }
  });

  it('differ whenever the mailbox state differs (they are strong ETags)', () => {
    const base = { uidValidity: '1', uidNext: 42, exists: 41, highestModseq: '9' };
    const variants = [base, { ...base, uidValidity: '2' }, { ...base, uidNext: 43 }, { ...base, exists: 40 }, { ...base, highestModseq: '10' }, { ...base, highestModseq: null }];
    expect(new Set(variants.map(encodeImapState)).size).toBe(variants.length);
    expect(encodeImapState({ ...base })).toBe(encodeImapState(base));
  });

  it('rejects what the gateway did not issue as VALIDATION_FAILED on `since`', () => {
    const good = encodeImapState({ uidValidity: '1', uidNext: 2, exists: 1, highestModseq: '5' });
    for (const token of ['garbage', b64('i1.1.2.1'), b64('i2.1.2.1.5'), b64('i1.1.x.1.5'), b64('i1.1.2.1.5.6'), b64('i1.1.2.1.abc'), good + 'AA', b64('i1.1.99999999999999999999.1.5'), b64('i1.1.4294967297.1.5'), b64('i1.4294967296.2.1.5'), b64('i1.1.2.99999999999.5')]) {
      const err = thrown(() => decodeImapState(token));
      expect(err.code, token).toBe('VALIDATION_FAILED');
      expect(err.message).toBe('query/since is not a state this gateway issued');
    }
  });
});

describe('POP3 cursors and states', () => {
  it('round-trip', () => {
    const cursor = { anchorUidl: 'UID-0001', anchorNumber: 17, following: ['UID-0000', 'x!~'] };
    expect(decodePop3Cursor(encodePop3Cursor(cursor))).toEqual(cursor);
  });

  it('reject a UIDL RFC 1939 §7 does not allow, a bad number or too many followers', () => {
    const bad = [
      { v: 1, p: 'pop3', a: 'has space', n: 1, f: [] },
      { v: 1, p: 'pop3', a: 'x'.repeat(71), n: 1, f: [] },
      { v: 1, p: 'pop3', a: 'ok', n: 0, f: [] },
      { v: 1, p: 'pop3', a: 'ok', n: 1, f: Array.from({ length: 17 }, (_, i) => `u${i}`) },
      { v: 1, p: 'pop3', a: 'ok', n: 1, f: ['bad uidl'] },
      { v: 1, p: 'imap', a: 'ok', n: 1, f: [] },
    ];
    for (const body of bad) expect(thrown(() => decodePop3Cursor(b64(body))).code, JSON.stringify(body)).toBe('VALIDATION_FAILED');
  });

  it('states are equal for the same UIDL list and differ when a message arrives, goes or moves', () => {
    const uidls = ['a', 'b', 'c'];
    expect(encodePop3State([...uidls])).toBe(encodePop3State(uidls));
    const others = [['a', 'b'], ['a', 'b', 'c', 'd'], ['a', 'c', 'b'], ['ab', 'c'], []];
    expect(new Set([uidls, ...others].map(encodePop3State)).size).toBe(others.length + 1);
  });
});
