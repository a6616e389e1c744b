/**
 * Row (e), interleaved with (b) at 4 connections: a naive gateway (bench/children/naive-gateway.ts:
 * connect, LOGIN, SELECT, FETCH, LOGOUT per request). The target is (b)'s throughput over this.
 */
import type { Gateway } from '../gateway.js';
import { failureNotes, httpRun, interleave } from '../load.js';
import { startChild } from '../processes.js';
import { check, cpu, ms, rps, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_E = 'naive gateway (a session per call), 4 conns';

export async function rowE(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const { dovecot, small } = ctx.servers;
  const naive = await startChild({
    name: 'naive-gateway',
    script: 'bench/children/naive-gateway.ts',
    readyPath: '/ready',
    env: { IMAP_PORT: String(dovecot.imapPort), IMAP_USER: small.username, IMAP_PASS: small.password },
  });
  try {
    const naiveUrl = `${naive.url}/v1/accounts/${ctx.accounts.small}/mailboxes/INBOX/messages?limit=50`;
    const { pooled, perCall } = await interleave(
      {
        pooled: (seconds) => httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, 4, seconds),
        perCall: (seconds) => httpRun(naiveUrl, naive.pid, 4, seconds),
      },
      ctx.options.schedule,
    );
    return {
      id: 'e',
      title: TITLE_E,
      status: 'measured',
      measured: `${rps(perCall.rps)}, p50 ${ms(perCall.p50Ms)}; ${cpu(perCall.cpuMsPerRequest)} (gateway side only)`,
      baseline: `(b) at 4 conns: ${rps(pooled.rps)}, p50 ${ms(pooled.p50Ms)}; ${cpu(pooled.cpuMsPerRequest)}`,
      checks: [check('(b) rps @4 / (e) rps @4', pooled.rps / perCall.rps, '>=', 4)],
      notes: failureNotes({ '(b) at 4 conns': pooled, '(e)': perCall }),
      raw: { pooled, perCall },
    };
  } finally {
    await naive.stop();
  }
}
