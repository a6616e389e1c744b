/**
 * Row (k): 1,000 accounts watched by one gateway process (50 in quick mode), against a bare process
 * holding as many imapflow connections IDLE on INBOX (bench/children/idle-holder.ts), measured one
 * after the other on the same Dovecot users:
 * - RSS growth per account: the process's resident memory once every account is live, above what it
 *   held before (for the gateway: accounts registered, nothing watched yet);
 * - idle CPU: CPU time over a quiet stretch with every account live and nothing changing;
 * - INBOX event p99 while all are watched: APPENDs to random accounts' INBOXes, timed to their
 *   `message.new` on one `/v1/events` stream that covers every account.
 * Each user runs under a uid of its own (as root), so Dovecot's IDLE stays driven by inotify
 * (whose instances the kernel caps per uid) instead of falling back to polling.
 */
import { randomBytes } from 'node:crypto';
import type { DovecotUser } from '../../test/support/dovecot.js';
import { appendAt, changer, metricValue, openEvents, pause, quantile, sampleSubject, sseArrival, untilReporting } from '../events.js';
import type { Gateway } from '../gateway.js';
import { procCpuMs, procStatusKb, procThreadCpuMs, startWorker } from '../processes.js';
import { check, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_K = 'many watched accounts in one process';

/** Uids of the row's users (above the shared mail uid, 65534, Dovecot's first_valid_uid here). */
const FIRST_UID = 100_000;
const REGISTER_CONCURRENCY = 8;
/** The gateway's open IMAP sessions (watchers' and pool's), as its metrics say. */
const OPEN_IMAP_SESSIONS = 'mailgw_pool_sessions\\{protocol="imap",state="open"\\}';

export async function rowK(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const count = ctx.options.quick ? 50 : 1_000;
  const idleSeconds = ctx.options.quick ? 5 : 30;
  const samples = ctx.options.quick ? 5 : 30;
  const { dovecot } = ctx.servers;
  const tag = randomBytes(3).toString('hex');
  const users: DovecotUser[] = [];
  for (let i = 0; i < count; i++) {
    const user = { username: `bench-k-${tag}-${i}`, password: randomBytes(9).toString('base64url') };
    await dovecot.addUser(user.username, user.password, { ownUid: FIRST_UID + i });
    users.push(user);
  }
  const notes: string[] = [];

  // The bare process: every user's INBOX held IDLE.
  const holder = await startWorker('bench/children/idle-holder.ts', { IMAP_PORT: String(dovecot.imapPort) });
  let bare: { rssKbPerAccount: number; idleCpuMs: number };
  try {
    const pid = (await holder.ask<{ pid: number }>({ pid: true })).pid;
    const before = await procStatusKb(pid, 'VmRSS');
    const holdStart = performance.now();
    await holder.ask({ hold: users });
    notes.push(`bare: ${count} connections IDLE in ${Math.round(performance.now() - holdStart)} ms`);
    await pause(2_000);
    const after = await procStatusKb(pid, 'VmRSS');
    const cpuBefore = await procCpuMs(pid);
    const threadsBefore = await procThreadCpuMs(pid);
    await pause(idleSeconds * 1000);
    bare = { rssKbPerAccount: (after - before) / count, idleCpuMs: (await procCpuMs(pid)) - cpuBefore };
    notes.push(`bare idle CPU by thread (user/system ms over ${idleSeconds} s): ${threadCpuDelta(threadsBefore, await procThreadCpuMs(pid))}`);
    await holder.ask({ release: true });
  } finally {
    await holder.stop();
  }

  // The gateway: the same users as accounts, all covered by one stream. Sessions that earlier rows
  // left open on this gateway (their accounts still watched, say) are not this row's to wait for.
  const earlierSessions = (await metricValue(gateway.url, OPEN_IMAP_SESSIONS)) || 0;
  const accounts = users.map((u) => u.username);
  let next = 0;
  const register = async (): Promise<void> => {
    while (next < users.length) {
      const user = users[next++]!;
      const res = await gateway.createAccount(user.username, 'imap', user);
      if (res.status !== 201) throw new Error(`creating ${user.username}: ${res.status} ${res.body}`);
    }
  };
  await Promise.all(Array.from({ length: REGISTER_CONCURRENCY }, register));
  const other = await changer(ctx.servers, users[0]!);
  let gatewayFigures: { rssKbPerAccount: number; idleCpuMs: number; watchMs: number };
  const latencies: number[] = [];
  const ready = new Set<string>();
  let settleMs = NaN;
  try {
    // The sessions that checked each account's login at registration close first (10 s idle).
    await untilSessionsAtMost(gateway, earlierSessions, notes);
    await pause(2_000);
    const before = await procStatusKb(gateway.pid, 'VmRSS');
    const heapBefore = await heapFigures(gateway);
    const watchStart = performance.now();
    const stream = await openEvents(`${gateway.url}/v1/events`);
    try {
      const deadline = Date.now() + 10 * 60_000;
      while ((await metricValue(gateway.url, 'mailgw_watched_accounts')) < count) {
        if (Date.now() > deadline) throw new Error(`only ${await metricValue(gateway.url, 'mailgw_watched_accounts')} of ${count} accounts watched after 10 min`);
        await pause(500);
      }
      const watchMs = performance.now() - watchStart;
      // Every watcher's first look recorded what was there (its events from then on): the gateway's
      // CPU falls quiet once the queue of first looks is through; then each sampled account is
      // checked to report (untilReporting) before its change is timed.
      for (let quiet = 0; quiet < 2; ) {
        const cpu = await procCpuMs(gateway.pid);
        await pause(2_000);
        quiet = (await procCpuMs(gateway.pid)) - cpu < 200 ? quiet + 1 : 0;
      }
      // Quiet accounts hold their watcher's session only: the pool sessions of the first looks close
      // once idle (IMAP_SESSION_IDLE_TIMEOUT_MS, 10 s on this gateway).
      await untilSessionsAtMost(gateway, earlierSessions + count, notes);
      settleMs = performance.now() - watchStart;
      await pause(5_000);
      const after = await procStatusKb(gateway.pid, 'VmRSS');
      const heapAfter = await heapFigures(gateway);
      // Where the growth is: the JS heap, buffers outside it, or memory the allocator keeps.
      notes.push(
        `gateway memory growth: RSS +${((after - before) / 1024).toFixed(1)} MB, JS heap used +${(heapAfter.heapMb - heapBefore.heapMb).toFixed(1)} MB, external +${(heapAfter.externalMb - heapBefore.externalMb).toFixed(1)} MB`,
      );
      const cpuBefore = await procCpuMs(gateway.pid);
      const threadsBefore = await procThreadCpuMs(gateway.pid);
      await pause(idleSeconds * 1000);
      const idleCpuMs = (await procCpuMs(gateway.pid)) - cpuBefore;
      notes.push(`gateway idle CPU by thread (user/system ms over ${idleSeconds} s): ${threadCpuDelta(threadsBefore, await procThreadCpuMs(gateway.pid))}`);
      gatewayFigures = { rssKbPerAccount: (after - before) / count, idleCpuMs, watchMs };
      notes.push(`gateway: every account watched after ${(watchMs / 1000).toFixed(1)} s, first looks through and their sessions closed after ${(settleMs / 1000).toFixed(1)} s`);

      for (let i = 0; i < samples; i++) {
        const user = users[Math.floor(Math.random() * count)]!;
        const client = user === users[0] ? other : await changer(ctx.servers, user);
        if (!ready.has(user.username)) {
          await untilReporting(stream, client, 60_000);
          ready.add(user.username);
        }
        const subject = sampleSubject(`k-${i}`);
        const startMs = await appendAt(client, 'INBOX', subject);
        latencies.push((await sseArrival(stream, subject, 30_000)) - startMs);
        if (client !== other) await client.logout().catch(() => undefined);
        await pause(200 + Math.random() * 300);
      }
    } finally {
      stream.close();
    }
  } finally {
    await other.logout().catch(() => undefined);
    for (const id of accounts) await gateway.deleteAccount(id);
  }
  const p99 = quantile(latencies, 0.99);
  const kb = (value: number): string => `${value.toFixed(0)} kB`;
  const cpuShare = (cpuMs: number): string => `${((cpuMs / (idleSeconds * 1000)) * 100).toFixed(2)} % of a core`;
  // A bare process that holds sockets does nearly nothing: its idle CPU can be a tick or two, so the
  // ratio is taken against at least one tick (10 ms) over the stretch.
  const bareCpu = Math.max(10, bare.idleCpuMs);
  return {
    id: 'k',
    title: TITLE_K,
    status: 'measured',
    measured: `${count.toLocaleString('en-US')} accounts watched in ${(gatewayFigures.watchMs / 1000).toFixed(1)} s: RSS +${kb(gatewayFigures.rssKbPerAccount)}/account, idle CPU ${cpuShare(gatewayFigures.idleCpuMs)}; INBOX event p50 ${ms(quantile(latencies, 0.5))}, p99 ${ms(p99)} (${samples} changes)`,
    baseline: `bare imapflow, ${count.toLocaleString('en-US')} IDLE connections: RSS +${kb(bare.rssKbPerAccount)}/connection, idle CPU ${cpuShare(bare.idleCpuMs)}`,
    checks: [
      check('(k) RSS per account / bare', gatewayFigures.rssKbPerAccount / bare.rssKbPerAccount, '<=', 1.5),
      check('(k) idle CPU / bare', gatewayFigures.idleCpuMs / bareCpu, '<=', 2),
      check('(k) INBOX event p99, ms', p99, '<=', 1_000),
    ],
    notes,
    raw: { count, idleSeconds, bare, gateway: gatewayFigures, latenciesMs: latencies },
  };
}

/** The threads that used CPU between two readings, busiest first: `name user/system`. */
function threadCpuDelta(before: Map<string, { userMs: number; systemMs: number }>, after: Map<string, { userMs: number; systemMs: number }>): string {
  const used = [...after].map(([name, cpu]) => {
    const was = before.get(name) ?? { userMs: 0, systemMs: 0 };
    return { name, userMs: cpu.userMs - was.userMs, systemMs: cpu.systemMs - was.systemMs };
  });
  const busy = used.filter((t) => t.userMs + t.systemMs > 0).sort((a, b) => b.userMs + b.systemMs - (a.userMs + a.systemMs));
  return busy.length === 0 ? 'none' : busy.map((t) => `${t.name} ${t.userMs.toFixed(0)}/${t.systemMs.toFixed(0)}`).join(', ');
}

async function heapFigures(gateway: Gateway): Promise<{ heapMb: number; externalMb: number }> {
  const mb = (bytes: number): number => bytes / 1024 / 1024;
  return {
    heapMb: mb(await metricValue(gateway.url, 'nodejs_heap_size_used_bytes')),
    externalMb: mb(await metricValue(gateway.url, 'nodejs_external_memory_bytes')),
  };
}

/** Waits (at most 2 min, noting it otherwise) until the gateway holds at most `max` IMAP sessions. */
async function untilSessionsAtMost(gateway: Gateway, max: number, notes: string[]): Promise<void> {
  const deadline = Date.now() + 2 * 60_000;
  while ((await metricValue(gateway.url, OPEN_IMAP_SESSIONS)) > max) {
    if (Date.now() > deadline) {
      notes.push(`gateway: still ${await metricValue(gateway.url, OPEN_IMAP_SESSIONS)} IMAP sessions open after 2 min (expected at most ${max})`);
      return;
    }
    await pause(1_000);
  }
}
