/**
 * The order of event ids. Both logs issue `<ms>-<seq>` (what Redis Streams issue, events/types.ts),
 * compared as two unsigned integers; `seq` may pass 2^53, so BigInt.
 */

const ID = /^(\d{1,20})-(\d{1,20})$/;

/** Negative, zero or positive as `a` is before, equal to or after `b`; undefined when either is not `<ms>-<seq>`. */
export function compareEventIds(a: string, b: string): number | undefined {
  const x = ID.exec(a);
  const y = ID.exec(b);
  if (x === null || y === null) return undefined;
  const ms = BigInt(x[1] ?? '0') - BigInt(y[1] ?? '0');
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(x[2] ?? '0') - BigInt(y[2] ?? '0');
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}
