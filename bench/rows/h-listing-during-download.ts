/**
 * Row (h): listing latency (cache off, 1 connection) while a download of the large message from the
 * same account is under way, read slowly, against the same listing with the gateway otherwise idle;
 * interleaved, each "during" round with a download of its own paced to outlast it. The pool keeps a
 * session free for listings; this checks that a slow download also takes nothing else from them
 * (event loop, memory, the server). The variant runs 10 slow readers of the message at once, more
 * than the account has sessions: a download holds a session only while a chunk is fetched, so all
 * are served, listings stay fast, and the gateway's memory grows by at most 64 MB.
 */
import type { Gateway } from '../gateway.js';
import { download } from '../http.js';
import { failureNotes, httpRun, interleave, type Sample } from '../load.js';
import { check, mb, ms, type RowResult } from '../table.js';
import { procStatusKb } from '../processes.js';
import type { RowContext } from './context.js';
import { rawUrl } from './g-download.js';

export const TITLE_H = 'listing during a slow download, same account';

/** Slow readers in the variant: more than the account has sessions (4), all of one message. */
export const SLOW_READERS = 10;

/**
 * Starts `readers` downloads paced to last `seconds` + 2, measures the listing for `seconds` half a
 * second in, and the gateway's peak RSS growth meanwhile (VmRSS sampled every 50 ms).
 */
async function duringDownloads(
  ctx: RowContext,
  gateway: Gateway,
  seconds: number,
  readers: number,
  overlaps: boolean[],
  rssGrowthKb: number[],
): Promise<Sample> {
  const abort = new AbortController();
  let done = 0;
  const beforeKb = await procStatusKb(gateway.pid, 'VmRSS');
  let peakKb = beforeKb;
  const sampler = setInterval(() => {
    procStatusKb(gateway.pid, 'VmRSS').then((kb) => (peakKb = Math.max(peakKb, kb)), () => undefined);
  }, 50);
  const slow = Array.from({ length: readers }, () =>
    download(rawUrl(ctx, gateway), { bytesPerSecond: ctx.servers.bigMessage.bytes / (seconds + 2), signal: abort.signal }).then(
      (result) => {
        done += 1;
        if (result.status !== 200) throw new Error(`a slow download answered ${result.status}`);
      },
      (error: unknown) => {
        done += 1;
        if (!abort.signal.aborted) throw error;
      },
    ),
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const sample = await httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, 1, seconds);
  overlaps.push(done === 0);
  clearInterval(sampler);
  rssGrowthKb.push(peakKb - beforeKb);
  abort.abort();
  await Promise.all(slow);
  return sample;
}

export async function rowH(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const overlaps: boolean[] = [];
  const rssGrowthKb: number[] = [];
  const { idle, during, duringMany } = await interleave(
    {
      idle: (seconds) => httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, 1, seconds),
      during: (seconds) => duringDownloads(ctx, gateway, seconds, 1, overlaps, []),
      duringMany: (seconds) => duringDownloads(ctx, gateway, seconds, SLOW_READERS, overlaps, rssGrowthKb),
    },
    ctx.options.schedule,
  );
  const notes = failureNotes({ idle, during, duringMany });
  if (overlaps.includes(false)) notes.push('a download ended before its measurement did: the figure is partly idle');
  const manyRssMb = Math.max(0, ...rssGrowthKb) / 1024;
  const roundSeconds = ctx.options.schedule.seconds / ctx.options.schedule.rounds;
  return {
    id: 'h',
    title: TITLE_H,
    status: 'measured',
    measured:
      `during: p50 ${ms(during.p50Ms)}, p99 ${ms(during.p99Ms)} (${mb(ctx.servers.bigMessage.bytes)} read over ${roundSeconds + 2} s); ` +
      `with ${SLOW_READERS} slow readers: p50 ${ms(duringMany.p50Ms)}, p99 ${ms(duringMany.p99Ms)}, peak RSS +${manyRssMb.toFixed(1)} MB`,
    baseline: `idle: p50 ${ms(idle.p50Ms)}, p99 ${ms(idle.p99Ms)}`,
    checks: [
      check('(h) p99 during / p99 idle', during.p99Ms / idle.p99Ms, '<=', 2),
      check(`(h) p99 with ${SLOW_READERS} slow readers / p99 idle`, duringMany.p99Ms / idle.p99Ms, '<=', 2),
      check(`(h) peak RSS growth with ${SLOW_READERS} slow readers, MB`, manyRssMb, '<=', 64),
    ],
    notes,
    raw: { idle, during, duringMany, overlaps, rssGrowthKb },
  };
}
