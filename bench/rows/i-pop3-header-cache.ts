/**
 * Row (i): a POP3 listing of the newest 50 through the gateway, the second call against the first
 * (the first fetches headers with TOP, the second should find them cached by UIDL). Each sample is
 * a freshly registered account (cached headers are per account), listed twice, then deleted.
 * Until the POP3 backend is wired into the app, registering answers 422 and the row is skipped.
 */
import { randomBytes } from 'node:crypto';
import type { Gateway } from '../gateway.js';
import { timedGet } from '../http.js';
import { median } from '../load.js';
import { check, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_I = 'POP3 listing newest 50, 2nd vs 1st call';

export async function rowI(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const first: number[] = [];
  const second: number[] = [];
  for (let sample = 0; sample < ctx.options.pop3Samples; sample++) {
    const id = `bench-pop3-${randomBytes(4).toString('hex')}`;
    const created = await gateway.createAccount(id, 'pop3', ctx.servers.small);
    if (created.status === 422) {
      return {
        id: 'i',
        title: TITLE_I,
        status: 'skipped',
        measured: 'skipped: POP3 backend not wired',
        baseline: '',
        checks: [],
        notes: [`POST /v1/accounts with protocol pop3 answered 422: ${created.body.slice(0, 200)}`],
      };
    }
    if (created.status !== 201) throw new Error(`creating a POP3 account: ${created.status} ${created.body}`);
    try {
      for (const into of [first, second]) {
        const res = await timedGet(gateway.listingUrl(id));
        if (res.status !== 200) throw new Error(`POP3 listing answered ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
        into.push(res.ms);
      }
    } finally {
      await gateway.deleteAccount(id);
    }
  }
  const f = median(first);
  const s = median(second);
  return {
    id: 'i',
    title: TITLE_I,
    status: 'measured',
    measured: `second call: median ${ms(s)} (${second.length} accounts)`,
    baseline: `first call: median ${ms(f)}`,
    checks: [check('(i) second / first (medians)', s / f, '<=', 0.1)],
    notes: [],
    raw: { firstMs: first, secondMs: second },
  };
}
