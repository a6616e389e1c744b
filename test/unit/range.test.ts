import { describe, expect, it } from 'vitest';
import type { GatewayError } from '../../src/errors.js';
import { thrown } from '../support/assertions.js';
import { rangeSelector } from '../../src/http/range.js';

/** The byte range a `Range` header picks from a representation of `size` bytes (end exclusive). */
function pick(header: string | undefined, size: number): { start: number; end: number } | undefined | 'ignored' {
  const select = rangeSelector(header);
  if (select === undefined) return 'ignored';
  return select(size);
}

function unsatisfiable(header: string, size: number): GatewayError {
  const select = rangeSelector(header);
  expect(select, header).toBeDefined();
  return thrown(() => select!(size));
}

describe('Range: bytes=… (RFC 9110 §14)', () => {
  it('bytes=a-b picks a..b inclusive, clamped to the end', () => {
    expect(pick('bytes=0-9', 100)).toEqual({ start: 0, end: 10 });
    expect(pick('bytes=10-19', 100)).toEqual({ start: 10, end: 20 });
    expect(pick('bytes=90-1000', 100)).toEqual({ start: 90, end: 100 });
    expect(pick('bytes=99-99', 100)).toEqual({ start: 99, end: 100 });
    expect(pick(' Bytes = 5 - 6 ', 100)).toEqual({ start: 5, end: 7 });
  });

  it('bytes=a- picks from a to the end', () => {
    expect(pick('bytes=40-', 100)).toEqual({ start: 40, end: 100 });
    expect(pick('bytes=0-', 100)).toEqual({ start: 0, end: 100 });
  });

  it('bytes=-n picks the last n bytes, or the whole representation when n exceeds it', () => {
    expect(pick('bytes=-10', 100)).toEqual({ start: 90, end: 100 });
    expect(pick('bytes=-500', 100)).toEqual({ start: 0, end: 100 });
  });

  it('ignores what it does not understand, several ranges included: the whole representation is sent (§14.2)', () => {
    for (const header of [undefined, 'bytes=0-1,5-9', 'bytes=-', 'bytes=a-b', 'items=0-9', 'bytes 0-9', 'bytes=1-2-3', '']) {
      expect(pick(header, 100), String(header)).toBe('ignored');
    }
  });

  it('ignores a range whose last byte comes before its first (invalid, §14.1.1)', () => {
    expect(pick('bytes=20-10', 100)).toBeUndefined();
  });

  it('answers a range starting past the end with 416 and Content-Range: bytes */size (§14.4, §15.5.17)', () => {
    for (const header of ['bytes=100-', 'bytes=100-200', 'bytes=5000-5001', 'bytes=-0']) {
      const err = unsatisfiable(header, 100);
      expect({ header, code: err.code, status: err.status }).toEqual({ header, code: 'RANGE_NOT_SATISFIABLE', status: 416 });
      expect(err.headers).toEqual({ 'content-range': 'bytes */100' });
    }
    expect(unsatisfiable('bytes=0-', 0).headers).toEqual({ 'content-range': 'bytes */0' });
  });
});
