/**
 * Rows (a) and (b), interleaved: the newest 50 of the 2,000-message INBOX, one call at a time.
 * (a) imapflow directly, in this process, one kept session with INBOX selected: NOOP, then FETCH of
 *     the newest 50 with the items the gateway's listing asks for (envelope, flags, size, dates,
 *     BODYSTRUCTURE), so that only the gateway's own work differs;
 * (b) the gateway's listing (cache off) at 1 connection.
 */
import { SUMMARY_FETCH_QUERY } from '../../src/mail/imap/summary.js';
import type { Gateway } from '../gateway.js';
import { callRun, failureNotes, httpRun, interleave, summarize } from '../load.js';
import { openImap } from '../servers.js';
import { check, cpu, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_A = 'imapflow direct: NOOP + FETCH newest 50';
export const TITLE_B = 'gateway listing newest 50, cache off, 1 conn';

export async function rowsAB(ctx: RowContext, gateway: Gateway): Promise<{ a: RowResult; b: RowResult }> {
  const client = await openImap(ctx.servers, ctx.servers.small);
  try {
    await client.mailboxOpen('INBOX');
    const newestFifty = async (query: object): Promise<number> => {
      await client.noop();
      const exists = client.mailbox ? client.mailbox.exists : 0;
      let count = 0;
      for await (const _msg of client.fetch(`${Math.max(1, exists - 49)}:${exists}`, query)) count += 1;
      return count;
    };
    const call = async (): Promise<void> => {
      if ((await newestFifty(SUMMARY_FETCH_QUERY)) !== 50) throw new Error('row (a): the FETCH did not answer 50 messages');
    };
    const url = gateway.listingUrl(ctx.accounts.small);
    const { direct, listing } = await interleave(
      { direct: (seconds) => callRun(call, seconds), listing: (seconds) => httpRun(url, gateway.pid, 1, seconds) },
      ctx.options.schedule,
    );
    // For a note: the literal "envelopes only" FETCH (a third of the time, after the rest).
    const envelopes = summarize([await callRun(() => newestFifty({ uid: true, envelope: true }), ctx.options.schedule.seconds / 3)]);
    // And the listing's items but BODYSTRUCTURE, which only `hasAttachments` needs (issue 18).
    const { bodyStructure: _structure, ...withoutStructure } = SUMMARY_FETCH_QUERY;
    const noStructure = summarize([await callRun(() => newestFifty(withoutStructure), ctx.options.schedule.seconds / 3)]);
    const a: RowResult = {
      id: 'a',
      title: TITLE_A,
      status: 'measured',
      measured: `p50 ${ms(direct.p50Ms)}, p99 ${ms(direct.p99Ms)}; ${cpu(direct.cpuMsPerRequest)}`,
      baseline: '',
      checks: [],
      notes: [
        `NOOP + FETCH of ENVELOPE alone: p50 ${ms(envelopes.p50Ms)}, ${cpu(envelopes.cpuMsPerRequest)}; the listing also needs FLAGS, INTERNALDATE, RFC822.SIZE and BODYSTRUCTURE, so (a) asks for them too`,
        `the same FETCH without BODYSTRUCTURE (what only hasAttachments needs): p50 ${ms(noStructure.p50Ms)}, ${cpu(noStructure.cpuMsPerRequest)}`,
      ],
      raw: { direct, envelopeOnly: envelopes, withoutBodyStructure: noStructure },
    };
    const b: RowResult = {
      id: 'b',
      title: TITLE_B,
      status: 'measured',
      measured: `p50 ${ms(listing.p50Ms)}, p99 ${ms(listing.p99Ms)}; ${cpu(listing.cpuMsPerRequest)}`,
      baseline: `(a) p50 ${ms(direct.p50Ms)}`,
      checks: [check('(b) p50 / (a) p50', listing.p50Ms / direct.p50Ms, '<=', 1.3)],
      notes: failureNotes({ listing }),
      raw: { listing },
    };
    return { a, b };
  } finally {
    await client.logout();
  }
}
