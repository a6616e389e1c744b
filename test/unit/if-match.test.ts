import { describe, expect, it } from 'vitest';
import { parseIfMatch } from '../../src/http/if-match.js';
import { decodePageState, encodePageState } from '../../src/mail/imap/page-state.js';
import { thrown } from '../support/assertions.js';

describe('If-Match (RFC 9110 §13.1.1)', () => {
  it('is absent when the header is', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
  });

  it('takes one strong tag, and a list of them in order', () => {
    expect(parseIfMatch('"abc"')).toEqual({ kind: 'states', states: ['abc'] });
    expect(parseIfMatch('"a", "b",\t"c"')).toEqual({ kind: 'states', states: ['a', 'b', 'c'] });
    // Empty list elements are allowed (§5.6.1); a comma inside a tag is part of it (etagc).
    expect(parseIfMatch(' , "a.b,c" ,, "d" ')).toEqual({ kind: 'states', states: ['a.b,c', 'd'] });
    expect(parseIfMatch('""')).toEqual({ kind: 'states', states: [''] });
  });

  it('answers * as any existing message', () => {
    expect(parseIfMatch('*')).toEqual({ kind: 'any' });
    expect(parseIfMatch(' * ')).toEqual({ kind: 'any' });
  });

  it('leaves weak tags out: they never match under strong comparison', () => {
    expect(parseIfMatch('W/"abc"')).toEqual({ kind: 'states', states: [] });
    expect(parseIfMatch('W/"a", "b"')).toEqual({ kind: 'states', states: ['b'] });
  });

  it('refuses what the grammar does not allow with 400 VALIDATION_FAILED', () => {
    for (const header of ['abc', '"abc', 'abc"', '"a" "b"', 'w/"a"', 'W/ "a"', '*, "a"', '"a", *', '', ' ', ',', '"a b"', '"a"x', '"tab\there"']) {
      const err = thrown(() => parseIfMatch(header));
      expect(err.code, JSON.stringify(header)).toBe('VALIDATION_FAILED');
      expect(err.message).toContain('headers/if-match');
    }
  });
});

describe('the page state of a server without CONDSTORE', () => {
  it('carries the page UIDs as a sequence set, so a check can fetch them again', () => {
    const page = [
      { uid: 9, flags: ['\\Seen'] },
      { uid: 4, flags: [] },
      { uid: 3, flags: ['$Work'] },
      { uid: 2, flags: [] },
    ];
    const state = encodePageState('aTEuMS4xMC40Li0', page);
    expect(decodePageState(state)).toMatchObject({ mailboxState: 'aTEuMS4xMC40Li0', uids: '2:4,9' });
    expect(decodePageState(encodePageState('aTEuMS4xLjAuLQ', []))).toMatchObject({ uids: null });
  });

  it('changes when a flag on the page does, and is not mistaken for other tokens', () => {
    const a = encodePageState('aTEuMS4xMC40Li0', [{ uid: 9, flags: [] }]);
    const b = encodePageState('aTEuMS4xMC40Li0', [{ uid: 9, flags: ['\\Flagged'] }]);
    expect(a).not.toBe(b);
    expect(decodePageState('aTEuMS4xMC40LjI')).toBeNull();
    expect(decodePageState('p13.abcdefghijklmnopqrstuvwxyz0')).toBeNull();
    expect(decodePageState('x.0123456789abcdef.1:2;3')).toBeNull();
  });
});
