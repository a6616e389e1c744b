/**
 * Rows (c) and (d), interleaved, at 16 connections:
 * (c) the gateway's listing with the listing cache on. Each call is still validated against the
 *     server (a NOOP, or a STATUS on a session without INBOX selected; calls that arrive before a
 *     check is sent share it, as designed); the gateway's own metrics tell how many calls the cache
 *     answered and how many checks that took;
 * (d) bare Fastify in its own process answering the very bytes the gateway sent for that listing,
 *     from memory: the ceiling for a cached call (HTTP parsing, routing and writing, nothing else).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Gateway } from '../gateway.js';
import { timedGet } from '../http.js';
import { failureNotes, httpRun, interleave } from '../load.js';
import { startChild } from '../processes.js';
import { check, cpu, ms, rps, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_C = 'gateway listing newest 50, cache on, 16 conns';
export const TITLE_D = 'bare Fastify, same bytes from memory, 16 conns';

/** Listing cache hits and misses, and the state checks (NOOP or STATUS) the hits were validated by. */
export async function listingCacheCounts(gateway: Gateway): Promise<{ hit: number; miss: number; checks: number }> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const count = (pattern: string): number => {
    const match = new RegExp(`^${pattern} (\\d+)`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  };
  return {
    hit: count('mailgw_cache_requests_total\\{kind="listing",result="hit"\\}'),
    miss: count('mailgw_cache_requests_total\\{kind="listing",result="miss"\\}'),
    checks: count('mailgw_upstream_operation_duration_seconds_count\\{protocol="imap",operation="check_listing"\\}'),
  };
}

export async function rowsCD(ctx: RowContext, gateway: Gateway): Promise<{ c: RowResult; d: RowResult }> {
  const url = gateway.listingUrl(ctx.accounts.small);
  const listing = await timedGet(url);
  if (listing.status !== 200) throw new Error(`the listing answered ${listing.status}: ${listing.body.toString('utf8').slice(0, 300)}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-bench-body-'));
  const bodyFile = path.join(dir, 'listing.json');
  await writeFile(bodyFile, listing.body);
  const bare = await startChild({ name: 'bare-fastify', script: 'bench/children/bare-fastify.ts', readyPath: '/ready', env: { BODY_FILE: bodyFile } });
  try {
    const bareUrl = `${bare.url}/v1/accounts/${ctx.accounts.small}/mailboxes/INBOX/messages?limit=50`;
    const before = await listingCacheCounts(gateway);
    const { cached, ceiling } = await interleave(
      { cached: (seconds) => httpRun(url, gateway.pid, 16, seconds), ceiling: (seconds) => httpRun(bareUrl, bare.pid, 16, seconds) },
      ctx.options.schedule,
    );
    const after = await listingCacheCounts(gateway);
    const hits = after.hit - before.hit;
    const misses = after.miss - before.miss;
    const checks = after.checks - before.checks;
    const notes = failureNotes({ cached });
    if (hits === 0) notes.push('the listing cache answered no call: the figure is not that of a cached listing');
    const c: RowResult = {
      id: 'c',
      title: TITLE_C,
      status: 'measured',
      measured: `${rps(cached.rps)}, p50 ${ms(cached.p50Ms)}; ${cpu(cached.cpuMsPerRequest)}; listing cache hits ${hits}, misses ${misses}, state checks ${checks} (${(checks / Math.max(1, hits)).toFixed(2)} per hit)`,
      baseline: `(d) ${rps(ceiling.rps)}`,
      checks: [check('(c) rps / (d) rps', cached.rps / ceiling.rps, '>=', 0.5)],
      notes,
      raw: { cached, cacheHits: hits, cacheMisses: misses, stateChecks: checks },
    };
    const d: RowResult = {
      id: 'd',
      title: TITLE_D,
      status: 'measured',
      measured: `${rps(ceiling.rps)}, p50 ${ms(ceiling.p50Ms)}; ${cpu(ceiling.cpuMsPerRequest)} (${listing.body.length.toLocaleString('en-US')} bytes each)`,
      baseline: '',
      checks: [],
      notes: failureNotes({ ceiling }),
      raw: { ceiling, bodyBytes: listing.body.length },
    };
    return { c, d };
  } finally {
    await bare.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
