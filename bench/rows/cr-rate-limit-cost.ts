/**
 * Row (cr): what the per-caller rate-limit check costs the cached listing path (row c), as an A/B in
 * one run: the row (c) gateway (limits on, counted in Redis, `RATE_LIMIT_ENV`) against a second
 * gateway process that differs only in having every limit off (`RATE_LIMIT_PER_MINUTE=0`,
 * `RATE_LIMIT_ANONYMOUS_PER_MINUTE=0`), both on the same Redis, account and listing, 16 connections.
 *
 * On this shared 2-core machine identical runs differ by up to 30 %, more than the cost looked for,
 * so the two are measured in many short rounds, alternating (A B, B A, A B, ...), and each round's
 * pair of bursts, a few seconds apart, gives a ratio of its own: load from elsewhere falls on both
 * halves of a pair alike. The figure is the median of those ratios, with their range; CPU per
 * request, which hardly moves with the machine's load, is compared the same way.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { registerRateLimits, type CallerLimit } from '../../src/tenants/rate-limits.js';
import type { Gateway } from '../gateway.js';
import { mustCreateAccount, RATE_LIMIT_ENV, startGateway } from '../gateway.js';
import { timedGet } from '../http.js';
import { alternate, failureNotes, httpRun, median, summarize, trueMedian, type Sample } from '../load.js';
import { check, cpu, rps, type RowResult } from '../table.js';
import type { RowContext } from './context.js';
import { listingCacheCounts } from './cd-cached-vs-bare.js';

export const TITLE_CR = 'rate-limit check on the cached listing: on vs off, 16 conns';

/** Every limit off: the per-caller check is skipped (allowList) and so is the anonymous pre-check. */
export const LIMITS_OFF_ENV = { RATE_LIMIT_PER_MINUTE: '0', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '0' };

const rate = (sample: Sample): number => sample.latenciesMs.length / Math.max(sample.seconds, 1e-9);
const cpuPerRequest = (sample: Sample): number => sample.cpuMs / Math.max(1, sample.latenciesMs.length);
const range = (values: number[]): string => `${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)}`;

export async function rowCr(ctx: RowContext, limited: Gateway): Promise<RowResult> {
  const off = await startGateway(ctx.servers, {
    name: 'gateway-cache-on-limits-off',
    listingCache: true,
    profile: ctx.options.profile,
    env: { ...ctx.options.gatewayEnv, ...LIMITS_OFF_ENV },
  });
  try {
    await mustCreateAccount(off, ctx.accounts.small, 'imap', ctx.servers.small);
    const onUrl = limited.listingUrl(ctx.accounts.small);
    const offUrl = off.listingUrl(ctx.accounts.small);
    // Each side is what it says: the limited one answers with RateLimit headers, the other without.
    const [onProbe, offProbe] = [await timedGet(onUrl), await timedGet(offUrl)];
    if (onProbe.status !== 200 || offProbe.status !== 200) throw new Error(`the listing answered ${onProbe.status} (limits on) and ${offProbe.status} (off)`);
    const limit = onProbe.headers['ratelimit-limit'];
    if (limit === undefined) throw new Error('the limited gateway sent no RateLimit-Limit: its check is not on');
    if (offProbe.headers['ratelimit-limit'] !== undefined) throw new Error('the gateway with limits off sent RateLimit-Limit');
    if (!onProbe.body.equals(offProbe.body)) throw new Error('the two gateways answered different listings');

    const countsBefore = await Promise.all([listingCacheCounts(limited), listingCacheCounts(off)]);
    const rounds = await alternate(
      { on: (seconds) => httpRun(onUrl, limited.pid, 16, seconds), off: (seconds) => httpRun(offUrl, off.pid, 16, seconds) },
      ctx.options.abSchedule,
    );
    const countsAfter = await Promise.all([listingCacheCounts(limited), listingCacheCounts(off)]);
    const misses = countsAfter.reduce((sum, c, i) => sum + c.miss - countsBefore[i]!.miss, 0);
    const hits = countsAfter.reduce((sum, c, i) => sum + c.hit - countsBefore[i]!.hit, 0);

    const rpsRatios = rounds.on.map((sample, i) => rate(sample) / rate(rounds.off[i]!));
    const cpuRatios = rounds.on.map((sample, i) => cpuPerRequest(sample) / cpuPerRequest(rounds.off[i]!));
    const [on, offStats] = [summarize(rounds.on), summarize(rounds.off)];
    // With an even number of rounds the median is the mean of the middle two (not the lower one).
    const rpsRatio = trueMedian(rpsRatios);
    const cpuRatio = trueMedian(cpuRatios);
    const notes = failureNotes({ on, off: offStats });
    if (hits === 0 || misses > 2) notes.push(`listing cache: ${hits} hits, ${misses} misses: not (only) the cached path`);
    notes.push(
      `per round (${rounds.on.length} × ${(ctx.options.abSchedule.seconds / ctx.options.abSchedule.rounds).toFixed(1)} s a side, ABBA): ` +
        `rps on/off ${rpsRatios.map((r) => r.toFixed(3)).join(' ')}; CPU/req on/off ${cpuRatios.map((r) => r.toFixed(3)).join(' ')}`,
    );
    // The check alone, timed in this process (CPU time, which the machine's other load hardly moves).
    const alone = await timeTheCheck(ctx.servers.redis.url);
    const share = (alone.onMicros - alone.offMicros) / 1000 / on.cpuMsPerRequest;
    notes.push(
      `the check alone, in this process: ${alone.onMicros.toFixed(2)} µs a request with limits on, ${alone.offMicros.toFixed(2)} µs off ` +
        `(median of ${alone.rounds} rounds of ${alone.iterations.toLocaleString('en-US')}); the difference is ${(share * 100).toFixed(1)} % of a cached listing's CPU with limits on (without the three RateLimit headers' bytes)`,
    );
    return {
      id: 'cr',
      title: TITLE_CR,
      status: 'measured',
      measured:
        `limits on (RATE_LIMIT_PER_MINUTE=${limit}): ${rps(trueMedian(rounds.on.map(rate)))}, ${cpu(on.cpuMsPerRequest)}; ` +
        `per-round rps on/off median ${rpsRatio.toFixed(3)} (${range(rpsRatios)}), CPU/req on/off median ${cpuRatio.toFixed(3)} (${range(cpuRatios)})`,
      baseline: `limits off: ${rps(trueMedian(rounds.off.map(rate)))}, ${cpu(offStats.cpuMsPerRequest)}`,
      checks: [check('(cr) rps on / off (median of rounds)', rpsRatio, '>=', 0.95), check('(cr) CPU/req on / off (median of rounds)', cpuRatio, '<=', 1.05)],
      notes,
      raw: { on, off: offStats, rpsRatios, cpuRatios, rounds, checkAlone: alone, cacheHits: hits, cacheMisses: misses, limitsOffEnv: LIMITS_OFF_ENV },
    };
  } finally {
    await off.stop();
  }
}

/**
 * The per-caller check as the access hook runs it (refuseGuessing, then count), limits on (the bench's)
 * and off, in this process against the run's Redis, in alternating rounds of CPU time: its cost apart
 * from everything else a request does. The reply is a stand-in that takes the three headers.
 */
async function timeTheCheck(redisUrl: string): Promise<{ onMicros: number; offMicros: number; rounds: number; iterations: number }> {
  const redis = new Redis(redisUrl);
  const apps = [Fastify(), Fastify()];
  try {
    const [on, off] = await Promise.all([
      registerRateLimits(apps[0]!, { perMinute: Number(RATE_LIMIT_ENV.RATE_LIMIT_PER_MINUTE), anonymousPerMinute: 60, accountCreationPerMinute: 0 }, redis),
      registerRateLimits(apps[1]!, { perMinute: 0, anonymousPerMinute: 0, accountCreationPerMinute: 0 }, redis),
    ]);
    const headers: Record<string, string> = {};
    const reply = { header: (name: string, value: string) => ((headers[name] = value), reply) } as unknown as FastifyReply;
    const request = { ip: '127.0.0.1', principal: { kind: 'admin', keyDigest: 'bench' } } as unknown as FastifyRequest;
    const iterations = 100_000;
    const run = async (limit: CallerLimit): Promise<number> => {
      const before = process.cpuUsage();
      for (let i = 0; i < iterations; i++) {
        limit.refuseGuessing(request);
        const counting = limit.count(request, reply);
        if (counting !== undefined) await counting;
      }
      const used = process.cpuUsage(before);
      return (used.user + used.system) / iterations;
    };
    const times = { on: [] as number[], off: [] as number[] };
    const rounds = 7;
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) times[side].push(await run(side === 'on' ? on : off));
    }
    return { onMicros: median(times.on), offMicros: median(times.off), rounds, iterations };
  } finally {
    await Promise.all(apps.map((app) => app.close()));
    redis.disconnect();
  }
}
