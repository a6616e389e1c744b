/**
 * Row (h): listing latency (cache off, 1 connection) while a download of the large message from the
 * same account is under way, read slowly, against the same listing with the gateway otherwise idle;
 * interleaved, each "during" round with a download of its own paced to outlast it. The pool keeps a
 * session free for listings; this checks that a slow download also takes nothing else from them
 * (event loop, memory, the server).
 */
import type { Gateway } from '../gateway.js';
import { download } from '../http.js';
import { failureNotes, httpRun, interleave, type Sample } from '../load.js';
import { check, mb, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';
import { rawUrl } from './g-download.js';

export const TITLE_H = 'listing during a slow download, same account';

/** Starts a download paced to last `seconds` + 2, measures the listing for `seconds` half a second in. */
async function duringDownload(ctx: RowContext, gateway: Gateway, seconds: number, overlaps: boolean[]): Promise<Sample> {
  const abort = new AbortController();
  let done = false;
  const slow = download(rawUrl(ctx, gateway), { bytesPerSecond: ctx.servers.bigMessage.bytes / (seconds + 2), signal: abort.signal }).then(
    (result) => {
      done = true;
      if (result.status !== 200) throw new Error(`the slow download answered ${result.status}`);
    },
    (error: unknown) => {
      done = true;
      if (!abort.signal.aborted) throw error;
    },
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const sample = await httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, 1, seconds);
  overlaps.push(!done);
  abort.abort();
  await slow;
  return sample;
}

export async function rowH(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const overlaps: boolean[] = [];
  const { idle, during } = await interleave(
    {
      idle: (seconds) => httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, 1, seconds),
      during: (seconds) => duringDownload(ctx, gateway, seconds, overlaps),
    },
    ctx.options.schedule,
  );
  const notes = failureNotes({ idle, during });
  if (overlaps.includes(false)) notes.push('a download ended before its measurement did: the figure is partly idle');
  const roundSeconds = ctx.options.schedule.seconds / ctx.options.schedule.rounds;
  return {
    id: 'h',
    title: TITLE_H,
    status: 'measured',
    measured: `during: p50 ${ms(during.p50Ms)}, p99 ${ms(during.p99Ms)} (${mb(ctx.servers.bigMessage.bytes)} read over ${roundSeconds + 2} s)`,
    baseline: `idle: p50 ${ms(idle.p50Ms)}, p99 ${ms(idle.p99Ms)}`,
    checks: [check('(h) p99 during / p99 idle', during.p99Ms / idle.p99Ms, '<=', 2)],
    notes,
    raw: { idle, during, overlaps },
  };
}
