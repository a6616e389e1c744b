/** The resume cursor of GET /v1/events: what it encodes, and what it refuses to decode. */
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../src/events/cursor.js';

const validId = (id: string): boolean => /^\d{1,20}-\d{1,20}$/.test(id);
const raw = (json: string): string => `c1.${deflateRawSync(Buffer.from(json)).toString('base64url')}`;

describe('event stream cursor', () => {
  it('round-trips positions, in an SSE-safe alphabet', () => {
    const positions = new Map([
      ['alice', '1718000000000-0'],
      ['bob.b_2-x', '0-0'],
      ['__proto__', '1718000000001-18446744073709551615'],
    ]);
    const cursor = encodeCursor(positions);
    expect(cursor).toMatch(/^c1\.[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, validId)).toEqual({ positions });
    expect(decodeCursor(encodeCursor(new Map()), validId)).toEqual({ positions: new Map() });
  });

  it('stays well inside a request head for a thousand accounts', () => {
    const positions = new Map(Array.from({ length: 1000 }, (_, i) => [`account-${i}`, `${1718000000000 + i * 37}-${i % 3}`]));
    const cursor = encodeCursor(positions);
    expect(cursor.length).toBeLessThan(16_000);
    expect(decodeCursor(cursor, validId)).toEqual({ positions });
  });

  it.each([
    ['another prefix', 'c2.AAAA'],
    ['an event id', '1718000000000-0'],
    ['not base64url', 'c1.a+b/c='],
    ['not deflate', 'c1.AAAAAAAA'],
    ['not JSON', raw('{nope')],
    ['an array', raw('[["alice","1-0"]]')],
    ['a number', raw('7')],
    ['an id the log did not issue', raw('{"alice":"tomorrow"}')],
    ['an id that is no string', raw('{"alice":12}')],
    ['a bad account id', raw('{"a/b":"1-0"}')],
    ['a dot-segment account', raw('{"..":"1-0"}')],
  ])('refuses %s', (_what, cursor) => {
    const decoded = decodeCursor(cursor, validId);
    expect(decoded).toHaveProperty('problem');
    expect((decoded as { problem: string }).problem.length).toBeGreaterThan(5);
  });

  it('refuses a cursor that inflates beyond any it could have issued', () => {
    const bomb = `c1.${deflateRawSync(Buffer.alloc(10 * 1024 * 1024, 0x20)).toString('base64url')}`;
    expect(bomb.length).toBeLessThan(16_000);
    expect(decodeCursor(bomb, validId)).toEqual({ problem: 'it does not decode' });
  });
});
