import { describe, expect, it } from 'vitest';
import { pickFilters, type MessageFilters } from '../../src/mail/filters.js';
import { highestBelow, toSearchObject } from '../../src/mail/imap/search.js';

describe('listing filters → imapflow search (RFC 9051 §6.4.4)', () => {
  it('turns each filter into its SEARCH key', () => {
    const cases: Array<[MessageFilters, Record<string, unknown>]> = [
      [{ from: 'alice@example.com' }, { from: 'alice@example.com' }],
      [{ to: 'bob' }, { to: 'bob' }],
      [{ subject: 'Invoice' }, { subject: 'Invoice' }],
      [{ text: 'tracking number' }, { text: 'tracking number' }],
      [{ since: '2024-03-01' }, { since: '2024-03-01' }],
      [{ before: '2024-04-01' }, { before: '2024-04-01' }],
      [{ seen: true }, { seen: true }],
      [{ seen: false }, { seen: false }],
      [{ flagged: true }, { flagged: true }],
      [{ answered: false }, { answered: false }],
      [{ larger: 1_000_000 }, { larger: 1_000_000 }],
      [{ smaller: 2048 }, { smaller: 2048 }],
    ];
    for (const [filters, search] of cases) expect(toSearchObject(filters), JSON.stringify(filters)).toEqual(search);
  });

  it('combines several filters with AND: one search object carrying every key', () => {
    expect(toSearchObject({ from: 'alice', seen: false, since: '2024-01-01', larger: 10 })).toEqual({
      from: 'alice',
      seen: false,
      since: '2024-01-01',
      larger: 10,
    });
  });

  it('keeps non-ASCII terms as given (imapflow adds CHARSET UTF-8)', () => {
    expect(toSearchObject({ subject: 'Größe — 日本' })).toEqual({ subject: 'Größe — 日本' });
  });

  it('searches ALL when no filter is set', () => {
    expect(toSearchObject({})).toEqual({ all: true });
  });

  it('takes from the query string only the filters that are set', () => {
    expect(pickFilters({ limit: 20, cursor: undefined, from: 'alice', seen: false })).toEqual({ from: 'alice', seen: false });
    expect(pickFilters({ limit: 20, cursor: 'abc' })).toBeUndefined();
    expect(pickFilters({ smaller: 0 })).toEqual({ smaller: 0 });
  });
});

describe('highestBelow (ESEARCH ALL, RFC 4731 §3.1)', () => {
  it('expands a sequence set highest first, below the cursor, up to the page size', () => {
    expect(highestBelow('1:3,7,9:10', Number.POSITIVE_INFINITY, 10)).toEqual([10, 9, 7, 3, 2, 1]);
    expect(highestBelow('1:3,7,9:10', 9, 3)).toEqual([7, 3, 2]);
    expect(highestBelow('5:1', 100, 2)).toEqual([5, 4]);
    expect(highestBelow('', 100, 5)).toEqual([]);
  });

  it('costs only the page it serves for a wide match', () => {
    expect(highestBelow('1:4000000000', 4000000001, 3)).toEqual([4000000000, 3999999999, 3999999998]);
  });
});
