/**
 * `Range: bytes=...` (RFC 9110 §14). One range is served as 206; a header this parser does not
 * understand, or several ranges, is ignored and the whole representation is sent (§14.2 allows it).
 * A range that starts past the end is 416 with `Content-Range: bytes *\/size`.
 */
import { GatewayError } from '../errors.js';
import type { ByteRange } from '../mail/types.js';

export function rangeSelector(header: string | undefined): ((size: number) => ByteRange | undefined) | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  return (size: number) => {
    let start: number;
    let end: number; // exclusive
    if (first === '') {
      // Suffix range: the last N bytes.
      const suffix = Number(last);
      if (suffix === 0) throw unsatisfiable(size);
      start = Math.max(0, size - suffix);
      end = size;
    } else {
      start = Number(first);
      end = last === '' ? size : Math.min(Number(last) + 1, size);
      if (last !== '' && Number(last) < start) return undefined; // invalid: ignored
    }
    if (start >= size) throw unsatisfiable(size);
    return { start, end };
  };
}

function unsatisfiable(size: number): GatewayError {
  return new GatewayError('RANGE_NOT_SATISFIABLE', `The message has ${size} bytes; the range asked for starts past its end`, {
    headers: { 'content-range': `bytes */${size}` },
  });
}
