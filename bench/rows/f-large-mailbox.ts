/**
 * Row (f): the same listing (cache off, 1 connection) on the large mailbox against the 2,000-message
 * one, interleaved. The newest 50 cost the same FETCH in both; what may grow is the server's index
 * work and anything the gateway does per message of the mailbox.
 */
import type { Gateway } from '../gateway.js';
import { failureNotes, httpRun, interleave } from '../load.js';
import { check, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const titleF = (largeMessages: number): string =>
  `listing on ${largeMessages.toLocaleString('en-US')} vs 2,000 messages${largeMessages < 100_000 ? ' (quick: not 100,000)' : ''}`;

export async function rowF(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const { large, small } = await interleave(
    {
      large: (seconds) => httpRun(gateway.listingUrl(ctx.accounts.large), gateway.pid, 1, seconds),
      small: (seconds) => httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, 1, seconds),
    },
    ctx.options.schedule,
  );
  return {
    id: 'f',
    title: titleF(ctx.options.largeMailboxMessages),
    status: 'measured',
    measured: `large: p50 ${ms(large.p50Ms)}, p99 ${ms(large.p99Ms)}`,
    baseline: `2,000: p50 ${ms(small.p50Ms)}, p99 ${ms(small.p99Ms)}`,
    checks: [check('(f) p50 large / p50 2,000', large.p50Ms / small.p50Ms, '<=', 1.5)],
    notes: failureNotes({ large, '2,000': small }),
    raw: { large, small, largeMailboxMessages: ctx.options.largeMailboxMessages },
  };
}
