/**
 * `npm run bench [-- --quick] [-- --profile] [-- --only=b,c]`: the benchmark suite of issue 6.
 *
 * Starts its own Dovecot and Redis, seeds the mailboxes, runs the gateway (and the two comparison
 * servers) as child processes, drives them with autocannon from this process, and prints one table,
 * also written to bench/results/latest.json; a run with any flag writes bench/results/partial.json
 * instead, so it never replaces the plain run's figures. Every target is a ratio against a baseline
 * measured in the same run, interleaved with it; nothing here asserts on timings (the exit code is 1
 * only when a row failed to run). How to read the rows: docs/benchmarks.md.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sbinEnv } from '../test/support/dovecot.js';
import { mustCreateAccount, startGateway, type Gateway } from './gateway.js';
import { parseOptions, ROW_IDS, type RowId } from './options.js';
import { REPO_ROOT, RESULTS_DIR } from './processes.js';
import { rowsAB, TITLE_A, TITLE_B } from './rows/ab-direct-vs-gateway.js';
import { rowsCD, TITLE_C, TITLE_D } from './rows/cd-cached-vs-bare.js';
import type { RowContext } from './rows/context.js';
import { rowE, TITLE_E } from './rows/e-naive-gateway.js';
import { rowF, titleF } from './rows/f-large-mailbox.js';
import { rowG, TITLE_G } from './rows/g-download.js';
import { rowH, TITLE_H } from './rows/h-listing-during-download.js';
import { rowI, TITLE_I } from './rows/i-pop3-header-cache.js';
import { rowCr, TITLE_CR } from './rows/cr-rate-limit-cost.js';
import { rowJ, TITLE_J } from './rows/j-event-latency.js';
import { rowK, TITLE_K } from './rows/k-many-accounts.js';
import { rowsLM, TITLE_L, TITLE_M } from './rows/lm-webhooks.js';
import { rowN, TITLE_N } from './rows/n-send.js';
import { rowO, TITLE_O } from './rows/o-courier-listing.js';
import { rowP, TITLE_P } from './rows/p-uncached-concurrency.js';
import { startMailServers } from './servers.js';
import { failed, formatTable, notRun, writeResults, type RowResult } from './table.js';

const run = promisify(execFile);
const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const titles: Record<RowId, string> = {
    a: TITLE_A, b: TITLE_B, c: TITLE_C, d: TITLE_D, e: TITLE_E,
    f: titleF(options.largeMailboxMessages), g: TITLE_G, h: TITLE_H, i: TITLE_I, cr: TITLE_CR, j: TITLE_J, k: TITLE_K, l: TITLE_L, m: TITLE_M,
    n: TITLE_N, o: TITLE_O, p: TITLE_P,
  };
  const results = new Map<RowId, RowResult>();
  /** Runs the measurement behind `ids` (rows measured together) if any of them was asked for. */
  const measure = async (ids: RowId[], work: () => Promise<RowResult[]>): Promise<void> => {
    if (!ids.some((id) => options.rows.has(id))) return;
    log(`row ${ids.map((id) => `(${id})`).join(' ')} ${ids.map((id) => titles[id]).join(' / ')} ...`);
    try {
      for (const row of await work()) {
        results.set(row.id, row);
        log(`row (${row.id}): ${row.measured}`);
      }
    } catch (error) {
      for (const id of ids) results.set(id, failed(id, titles[id], error));
      log(`row ${ids.join(', ')} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  };
  const uses = (ids: RowId[]): boolean => ids.some((id) => options.rows.has(id));

  log(`seeding ${options.smallMailboxMessages.toLocaleString('en-US')} and ${options.largeMailboxMessages.toLocaleString('en-US')} messages${options.quick ? ' (quick mode)' : ''} ...`);
  const servers = await startMailServers(options);
  const cleanups: Array<() => Promise<void>> = [() => servers.stop()];
  const cleanUp = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  process.once('SIGINT', () => {
    log('interrupted; stopping servers');
    void cleanUp().then(() => process.exit(130));
  });
  log(`setup (ms): ${JSON.stringify(servers.timings)}`);
  const ctx: RowContext = { options, servers, accounts: { small: 'bench-small', large: 'bench-large' } };
  const profiles: string[] = [];
  /** Runs rows against one gateway process, stopped afterwards (which writes its profile). */
  /** The events gateway's settings besides the defaults (see below). */
  const EVENTS_GATEWAY_ENV = { IMAP_SESSION_IDLE_TIMEOUT_MS: '10000' };
  const withGateway = async (
    name: string,
    listingCache: boolean,
    work: (gateway: Gateway) => Promise<void>,
    { accounts = true, env = {} }: { accounts?: boolean; env?: Record<string, string> } = {},
  ): Promise<void> => {
    const gateway = await startGateway(servers, { name, listingCache, profile: options.profile, env: { ...env, ...options.gatewayEnv } });
    cleanups.push(() => gateway.stop());
    try {
      if (accounts) {
        await mustCreateAccount(gateway, ctx.accounts.small, 'imap', servers.small);
        await mustCreateAccount(gateway, ctx.accounts.large, 'imap', servers.large);
      }
      await work(gateway);
    } finally {
      await gateway.stop();
      if (gateway.profilePath) profiles.push(gateway.profilePath);
    }
  };

  try {
    if (uses(['a', 'b', 'e', 'f', 'g', 'h', 'i', 'p'])) {
      await withGateway('gateway-cache-off', false, async (gateway) => {
        await measure(['a', 'b'], async () => Object.values(await rowsAB(ctx, gateway)));
        await measure(['e'], async () => [await rowE(ctx, gateway)]);
        await measure(['p'], async () => [await rowP(ctx, gateway)]);
        await measure(['f'], async () => [await rowF(ctx, gateway)]);
        await measure(['g'], async () => [await rowG(ctx, gateway)]);
        await measure(['h'], async () => [await rowH(ctx, gateway)]);
        await measure(['i'], async () => [await rowI(ctx, gateway)]);
      });
    }
    if (uses(['c', 'd', 'cr', 'o'])) {
      await withGateway('gateway-cache-on', true, async (gateway) => {
        await measure(['c', 'd'], async () => Object.values(await rowsCD(ctx, gateway)));
        await measure(['cr'], async () => [await rowCr(ctx, gateway)]);
        await measure(['o'], async () => [await rowO(ctx, gateway)]);
      });
    }
    // Row (n) needs the private Postfix that startMailServers starts only as root.
    const sendRow = options.rows.has('n') && servers.mta !== undefined;
    if (options.rows.has('n') && !sendRow) {
      results.set('n', notRun('n', titles.n, 'needs the private Postfix of test/support/mta.ts, which runs only as root'));
    }
    if (uses(['j', 'k', 'l', 'm']) || sendRow) {
      // A gateway of its own, without the two big mailboxes registered: row (k)'s stream covers every
      // account the gateway has, and the watchers' first looks would record 102,000 messages. Idle
      // pool sessions close after 10 s rather than 5 min, so that row (k) measures quiet accounts as
      // they settle (one watcher session each) without waiting five minutes for the first looks'
      // sessions to go. Row (n) (sending) runs here too, last.
      await withGateway(
        'gateway-events',
        false,
        async (gateway) => {
          await measure(['j'], async () => [await rowJ(ctx, gateway)]);
          // (k) before (l) and (m): its RSS growth is read against this process's memory, which the
          // 10,000 events of (m) would have grown and left to be reused.
          await measure(['k'], async () => [await rowK(ctx, gateway)]);
          await measure(['l', 'm'], async () => Object.values(await rowsLM(ctx, gateway)));
          // (n) last: its 10 MB sends leave memory behind for no later row to read its figures against.
          if (sendRow) await measure(['n'], async () => [await rowN(ctx, gateway)]);
        },
        { accounts: false, env: EVENTS_GATEWAY_ENV },
      );
    }
  } finally {
    await cleanUp();
  }

  const rows = ROW_IDS.map((id) => results.get(id) ?? notRun(id, titles[id]));
  process.stdout.write(`\n${formatTable(rows)}\n\n`);
  const plain =
    !options.quick && !options.profile && options.rows.size === ROW_IDS.length && Object.keys(options.gatewayEnv).length === 0 && options.abSchedule.rounds === 10;
  const file = path.join(RESULTS_DIR, plain ? 'latest.json' : 'partial.json');
  await writeResults(file, rows, {
    quick: options.quick,
    startedAt: startedAt.toISOString(),
    seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    schedule: options.schedule,
    gatewayEnv: options.gatewayEnv,
    largeMailboxMessages: options.largeMailboxMessages,
    setupMs: servers.timings,
    loadAverage: { before: loadBefore, after: os.loadavg() },
    dovecotVersion: await output('dovecot', ['--version']),
    gitCommit: await output('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']),
    srcChangedSinceCommit: (await output('git', ['-C', REPO_ROOT, 'status', '--porcelain', 'src'])).length > 0,
    profiles,
  });
  log(`written to ${path.relative(process.cwd(), file)}${profiles.length > 0 ? `; profiles: ${profiles.join(', ')}` : ''}`);
  if (options.quick) log('quick mode: short runs and a smaller large mailbox; figures are indicative only');
  return rows.some((row) => row.status === 'error') ? 1 : 0;
}

async function output(command: string, args: string[]): Promise<string> {
  return run(command, args, { env: sbinEnv() }).then(
    ({ stdout }) => stdout.trim(),
    () => 'unknown',
  );
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
