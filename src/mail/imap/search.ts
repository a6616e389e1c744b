/**
 * Listing filters → an imapflow search object (RFC 9051 §6.4.4 SEARCH keys, combined with AND).
 * imapflow adds `CHARSET UTF-8` when a term is not ASCII. Dates compare with INTERNALDATE (arrival),
 * the same clock the listing is ordered by.
 */
import type { SearchObject } from 'imapflow';
import type { MessageFilters } from '../filters.js';

export function toSearchObject(filters: MessageFilters): SearchObject {
  const search: SearchObject = {};
  if (filters.from !== undefined) search.from = filters.from;
  if (filters.to !== undefined) search.to = filters.to;
  if (filters.subject !== undefined) search.subject = filters.subject;
  if (filters.text !== undefined) search.text = filters.text;
  if (filters.since !== undefined) search.since = filters.since;
  if (filters.before !== undefined) search.before = filters.before;
  if (filters.seen !== undefined) search.seen = filters.seen;
  if (filters.flagged !== undefined) search.flagged = filters.flagged;
  if (filters.answered !== undefined) search.answered = filters.answered;
  if (filters.larger !== undefined) search.larger = filters.larger;
  if (filters.smaller !== undefined) search.smaller = filters.smaller;
  if (Object.keys(search).length === 0) search.all = true;
  return search;
}

/**
 * Expands an ESEARCH `ALL` sequence set ("1:3,7,9:10", RFC 4731 §3.1) into the numbers it holds,
 * highest first, stopping once `limit` numbers below `below` are found — so a wide match costs
 * only the page it serves.
 */
export function highestBelow(sequenceSet: string, below: number, limit: number): number[] {
  const ranges = sequenceSet
    .split(',')
    .filter((part) => part.length > 0)
    .map((part) => {
      const [a = '0', b = a] = part.split(':');
      const x = Number(a);
      const y = Number(b);
      return [Math.min(x, y), Math.max(x, y)] as const;
    })
    .sort((p, q) => q[1] - p[1]);
  const out: number[] = [];
  for (const [low, high] of ranges) {
    for (let n = Math.min(high, below - 1); n >= low && out.length < limit; n--) out.push(n);
    if (out.length >= limit) break;
  }
  return out;
}
