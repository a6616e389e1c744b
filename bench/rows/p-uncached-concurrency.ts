/**
 * Row (p) (issue 18): the uncached listing at 4 and 16 connections, against imapflow itself with as
 * many kept sessions behind the thinnest HTTP server (bench/children/imapflow-server.ts), both driven
 * by the same load generator and interleaved. Targets: throughput ≥ 0.8 × and CPU per listing ≤ 1.2 ×
 * imapflow's, at each connection count.
 */
import type { Gateway } from '../gateway.js';
import { failureNotes, httpRun, interleave, type LoadStats } from '../load.js';
import { startChild } from '../processes.js';
import { check, cpu, ms, rps, type Check, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_P = 'uncached listing at 4 and 16 conns, against imapflow behind node:http';

const CONNECTIONS = [4, 16] as const;

export async function rowP(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const { dovecot, small } = ctx.servers;
  const measured: Array<{ connections: number; gateway: LoadStats; direct: LoadStats }> = [];
  for (const connections of CONNECTIONS) {
    const direct = await startChild({
      name: `imapflow-server-${connections}`,
      script: 'bench/children/imapflow-server.ts',
      readyPath: '/ready',
      env: { IMAP_PORT: String(dovecot.imapPort), IMAP_USER: small.username, IMAP_PASS: small.password, SESSIONS: String(connections) },
    });
    try {
      const stats = await interleave(
        {
          gateway: (seconds) => httpRun(gateway.listingUrl(ctx.accounts.small), gateway.pid, connections, seconds),
          direct: (seconds) => httpRun(`${direct.url}/newest`, direct.pid, connections, seconds),
        },
        ctx.options.schedule,
      );
      measured.push({ connections, ...stats });
    } finally {
      await direct.stop();
    }
  }
  const checks: Check[] = measured.flatMap(({ connections, gateway: g, direct: d }) => [
    check(`rps @${connections}: gateway / imapflow`, g.rps / d.rps, '>=', 0.8),
    check(`CPU/listing @${connections}: gateway / imapflow`, g.cpuMsPerRequest / d.cpuMsPerRequest, '<=', 1.2),
  ]);
  const line = (s: LoadStats): string => `${rps(s.rps)}, p50 ${ms(s.p50Ms)}, ${cpu(s.cpuMsPerRequest)}`;
  return {
    id: 'p',
    title: TITLE_P,
    status: 'measured',
    measured: measured.map(({ connections, gateway: g }) => `@${connections}: ${line(g)}`).join('; '),
    baseline: measured.map(({ connections, direct: d }) => `@${connections}: ${line(d)}`).join('; '),
    checks,
    notes: measured.flatMap(({ connections, gateway: g, direct: d }) => failureNotes({ [`gateway @${connections}`]: g, [`imapflow @${connections}`]: d })),
    raw: Object.fromEntries(measured.map(({ connections, gateway: g, direct: d }) => [`c${connections}`, { gateway: g, direct: d }])),
  };
}
