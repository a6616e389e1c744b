/**
 * Row (n): sending (POST …/send) through a real MTA: a private Postfix 3 (test/support/mta.ts, started
 * by bench/servers.ts) that checks SMTP AUTH against the bench's Dovecot and delivers into it over LMTP.
 *
 * Latency: one 20 KB message (a text part and a small attachment, composed by the gateway from JSON)
 * from the POST until the MTA accepted it: the moment the gateway noted the MTA's 250 (the entry's
 * `sentAt`, whole ms on the same clock as this process's Date.now()), with `saveToSent: false`, so
 * that the gateway does the work the baseline does: compose, queue durably, submit. Against
 * nodemailer in this process composing the same parts and sending them over a pooled connection
 * (`pool: true`) to the same MTA, until sendMail resolved (its 250). The two sides alternate (ABBA)
 * message by message, each send followed by a 20 ms pause for the MTA's delivery into Dovecot, and
 * send to the same recipient with the same login. What a client waiting for the outcome sees is a
 * note: the `message.sent` event on an SSE stream opened before (pushed, no polling).
 *
 * Memory: the gateway's peak resident memory (VmHWM after resetting it, and VmRSS sampled every
 * 10 ms) above what it held just before (after the 20 KB sends and a quiet pause; the bench has no way
 * to make the gateway collect garbage), while one message with a 10 MB random attachment (base64 in
 * the JSON body) goes from the POST to its copy saved in Sent (the real path, `saveToSent` on). The
 * first such send of the process is the check; a second one (full runs) is a note.
 */
import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { SseClient } from '../../test/support/sse-client.js';
import { metricValue, openEvents, pause, quantile } from '../events.js';
import type { Gateway } from '../gateway.js';
import { timedGet, timedPost } from '../http.js';
import { procStatusKb, resetPeakRss } from '../processes.js';
import { openImap } from '../servers.js';
import { check, mb, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_N = 'send a 20 KB message until the MTA accepted it, against nodemailer pooled';

const RSS_SAMPLE_MS = 10;
/** Pause after each 20 KB send (see `settle`). */
const SETTLE_MS = 20;
const BIG_ATTACHMENT_BYTES = 10 * 1024 * 1024;
const SEND_TIMEOUT_MS = 60_000;
/** The 20 KB message: a text part and an attachment whose base64 makes up most of it. */
const TEXT_BYTES = 4_000;
const ATTACHMENT_BYTES = 11_500;

interface OutboxEntryView {
  status: string;
  sentCopy: string;
  sentAt: string | null;
  size: number;
  error: string | null;
  recipients: Array<{ address: string; status: string; response: string | null }>;
}

interface GatewaySend {
  /** POST until the gateway noted the MTA's 250 (`sentAt`, whole ms on the same clock). */
  acceptedMs: number;
  /** POST until the `message.sent` event reached the stream (after the copy in Sent, when there is one). */
  eventMs: number;
  /** POST until its 202. */
  postMs: number;
  size: number;
  /** performance.now() at the POST, its 202, and the event. */
  at: { start: number; accepted202: number; event: number };
}

/** One send through the gateway: POST, the `message.sent` (or `message.failed`) event on `stream`, then the entry. */
async function viaGateway(gateway: Gateway, stream: SseClient, account: string, body: string): Promise<GatewaySend> {
  const startWallMs = Date.now();
  const start = performance.now();
  const res = await timedPost(`${gateway.url}/v1/accounts/${account}/send`, body, { 'content-type': 'application/json' });
  const accepted202 = performance.now();
  if (res.status !== 202) throw new Error(`POST …/send answered ${res.status}: ${res.body.toString().slice(0, 500)}`);
  const { queueId } = JSON.parse(res.body.toString()) as { queueId: string };
  const outcome = (): { event: string; receivedAtMs: number } | undefined =>
    stream.events.find((e) => (e.event === 'message.sent' || e.event === 'message.failed') && e.data.includes(queueId));
  await stream.waitUntil(() => outcome() !== undefined, SEND_TIMEOUT_MS, () => `no message.sent for ${queueId}`);
  const event = outcome()!;
  const got = await timedGet(`${gateway.url}/v1/accounts/${account}/outbox/${queueId}`);
  const entry = JSON.parse(got.body.toString()) as OutboxEntryView;
  if (event.event !== 'message.sent' || entry.status !== 'sent' || entry.sentCopy === 'failed') {
    throw new Error(`outbox entry ${queueId} is ${entry.status} (copy ${entry.sentCopy}): ${entry.error ?? JSON.stringify(entry.recipients)}`);
  }
  return {
    acceptedMs: Date.parse(entry.sentAt!) - startWallMs,
    eventMs: event.receivedAtMs - start,
    postMs: accepted202 - start,
    size: entry.size,
    at: { start, accepted202, event: event.receivedAtMs },
  };
}

interface RssSample {
  atMs: number;
  kb: number;
}

/** Peak resident bytes of `pid` above those just before, while `work` runs, and the VmRSS samples taken meanwhile. */
async function peakRssGrowth<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; growthBytes: number; beforeBytes: number; samples: RssSample[] }> {
  const beforeKb = await procStatusKb(pid, 'VmRSS');
  const hwmReset = await resetPeakRss(pid);
  const samples: RssSample[] = [];
  const sampler = setInterval(() => {
    const atMs = performance.now();
    procStatusKb(pid, 'VmRSS').then((kb) => samples.push({ atMs, kb }), () => undefined);
  }, RSS_SAMPLE_MS);
  try {
    const value = await work();
    const peakKb = Math.max(beforeKb, ...samples.map((x) => x.kb), hwmReset ? await procStatusKb(pid, 'VmHWM') : 0, await procStatusKb(pid, 'VmRSS'));
    return { value, growthBytes: (peakKb - beforeKb) * 1024, beforeBytes: beforeKb * 1024, samples };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * Where in a big send the memory grew: the highest sampled VmRSS above `beforeBytes` up to the 202
 * (HTTP body, JSON, composing, queueing) and up to the event (submission, then the copy in Sent).
 */
function phaseGrowth(run: { beforeBytes: number; samples: RssSample[]; send: GatewaySend }): string {
  const { at } = run.send;
  const upTo = (endMs: number): number => Math.max(run.beforeBytes, ...run.samples.filter((x) => x.atMs <= endMs).map((x) => x.kb * 1024)) - run.beforeBytes;
  return `sampled RSS peak above before: by the 202 +${mb(upTo(at.accepted202))}, by the event (sent, copy saved) +${mb(upTo(at.event))}`;
}

export async function rowN(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  if (ctx.servers.mta === undefined) throw new Error('row (n) needs the MTA, which startMailServers starts only as root');
  const { server: mta, sender, recipient } = ctx.servers.mta;
  const account = sender.username;
  const transport = nodemailer.createTransport({
    pool: true,
    host: mta.host,
    port: mta.port,
    secure: false,
    ignoreTLS: true,
    auth: { user: sender.username, pass: sender.password },
  });
  let created = false;
  try {
    const res = await gateway.createAccount(account, 'imap', sender, {
      email: mta.address(sender.username),
      smtp: { host: mta.host, port: mta.port, security: 'none' },
    });
    if (res.status !== 201) throw new Error(`creating ${account}: ${res.status} ${res.body}`);
    created = true;

    const to = mta.address(recipient.username);
    const from = mta.address(sender.username);
    const subject = 'A 20 KB message';
    const text = `${'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(TEXT_BYTES / 45))}`.slice(0, TEXT_BYTES);
    const attachment = randomBytes(ATTACHMENT_BYTES);
    const parts = { subject, text, attachments: [{ filename: 'report.bin', contentType: 'application/octet-stream', content: attachment.toString('base64') }] };
    const body = (saveToSent: boolean): string => JSON.stringify({ to: [{ address: to }], ...parts, saveToSent });
    const bareMessage = { from, to, subject, text, attachments: [{ filename: 'report.bin', contentType: 'application/octet-stream', content: attachment }] };
    const viaNodemailer = async (): Promise<number> => {
      const start = performance.now();
      const info = await transport.sendMail(bareMessage);
      const elapsed = performance.now() - start;
      if (info.accepted.length !== 1) throw new Error(`nodemailer: not accepted: ${JSON.stringify(info)}`);
      return elapsed;
    };
    let sends = 0;
    const stream = await openEvents(`${gateway.url}/v1/accounts/${account}/events`);
    try {
      // After each send, a pause for the MTA's delivery of it into Dovecot (after the 250, part of
      // neither side), so that it does not compete for the two cores with the next measured send.
      const settle = (): Promise<void> => pause(SETTLE_MS);
      const gatewaySend = async (saveToSent = false): Promise<GatewaySend> => {
        sends++;
        const run = await viaGateway(gateway, stream, account, body(saveToSent));
        await settle();
        return run;
      };
      const bareSend = async (): Promise<number> => {
        sends++;
        const elapsed = await viaNodemailer();
        await settle();
        return elapsed;
      };

      // Warm-up: the gateway's SMTP pool logs in, the paths are compiled, Postfix has its smtpd running.
      for (let i = 0; i < ctx.options.sendWarmup; i++) {
        await gatewaySend();
        await bareSend();
      }
      const smtpBefore = await smtpAttempts(gateway);
      const gatewayRuns: GatewaySend[] = [];
      const bareMs: number[] = [];
      for (let i = 0; i < ctx.options.sendSamples; i++) {
        // ABBA: each side goes first in half the pairs.
        if (i % 2 === 0) {
          gatewayRuns.push(await gatewaySend());
          bareMs.push(await bareSend());
        } else {
          bareMs.push(await bareSend());
          gatewayRuns.push(await gatewaySend());
        }
      }
      const smtpAfter = await smtpAttempts(gateway);
      const smtpMeanMs = ((smtpAfter.seconds - smtpBefore.seconds) * 1000) / (smtpAfter.count - smtpBefore.count);

      // A note: the same message with the Sent copy on (the event follows the copy).
      const copySamples = ctx.options.quick ? 5 : 30;
      const withCopy: GatewaySend[] = [];
      for (let i = 0; i < copySamples; i++) withCopy.push(await gatewaySend(true));

      // Memory: a 10 MB attachment, Sent copy on, after a quiet pause; the second one (full runs) for a note.
      const bigBody = JSON.stringify({
        to: [{ address: to }],
        subject: 'A 10 MB attachment',
        text: 'See the attachment.',
        attachments: [{ filename: 'big.bin', contentType: 'application/octet-stream', content: randomBytes(BIG_ATTACHMENT_BYTES).toString('base64') }],
      });
      const bigRuns: Array<{ growthBytes: number; beforeBytes: number; samples: RssSample[]; send: GatewaySend }> = [];
      for (let i = 0; i < (ctx.options.quick ? 1 : 2); i++) {
        await pause(ctx.options.quick ? 500 : 1_000);
        sends++;
        const { value, ...memory } = await peakRssGrowth(gateway.pid, () => viaGateway(gateway, stream, account, bigBody));
        bigRuns.push({ ...memory, send: value });
      }

      // The MTA kept up: every message reached the recipient's INBOX (delivery runs after the 250).
      const lastSentAt = performance.now();
      const delivered = await deliveredCount(ctx, recipient, sends, 60_000);
      const deliveredAfterMs = performance.now() - lastSentAt;

      const p50 = (values: number[]): number => quantile(values, 0.5);
      const p99 = (values: number[]): number => quantile(values, 0.99);
      const accepted = gatewayRuns.map((r) => r.acceptedMs);
      const events = gatewayRuns.map((r) => r.eventMs);
      const first = bigRuns[0]!;
      const second = bigRuns[1];
      const size = gatewayRuns[0]!.size;
      const bigLine = (run: (typeof bigRuns)[number]): string =>
        `RSS before ${mb(run.beforeBytes)}; ${phaseGrowth(run)}; POST → 202 ${ms(run.send.postMs)}, → 250 (sentAt) ${ms(run.send.acceptedMs)}, → event ${ms(run.send.eventMs)}`;
      return {
        id: 'n',
        title: TITLE_N,
        status: 'measured',
        measured:
          `gateway POST → the MTA's 250 (sentAt): p50 ${ms(p50(accepted))}, p99 ${ms(p99(accepted))} (${gatewayRuns.length} sends of ${(size / 1024).toFixed(1)} KB, Sent copy off); ` +
          `10 MB attachment POST → Sent copy saved: peak RSS +${mb(first.growthBytes)} (${(first.send.eventMs / 1000).toFixed(2)} s)`,
        baseline: `nodemailer pooled, same parts, same MTA, to its 250: p50 ${ms(p50(bareMs))}, p99 ${ms(p99(bareMs))}`,
        checks: [
          check('(n) gateway p50 / nodemailer p50', p50(accepted) / p50(bareMs), '<=', 1.5),
          check('(n) peak RSS growth, 10 MB attachment, MB', first.growthBytes / 1024 / 1024, '<=', 32),
        ],
        notes: [
          `gateway: POST → 202 p50 ${ms(p50(gatewayRuns.map((r) => r.postMs)))}; POST → message.sent on SSE p50 ${ms(p50(events))}, p99 ${ms(p99(events))} ` +
            `(${(p50(events) / p50(bareMs)).toFixed(2)}× nodemailer's p50); the gateway's own SMTP attempts (mailgw_smtp_attempt_duration_seconds, pooled connection to the answer to DATA) took ${ms(smtpMeanMs)} on average`,
          `with the Sent copy on (${copySamples} sends): POST → message.sent (after the copy) p50 ${ms(p50(withCopy.map((r) => r.eventMs)))}, POST → 250 (sentAt) p50 ${ms(p50(withCopy.map((r) => r.acceptedMs)))}`,
          `10 MB attachment (${mb(bigBody.length)} JSON body, ${mb(first.send.size)} message): ${bigLine(first)}`,
          ...(second === undefined ? [] : [`a second 10 MB attachment: peak RSS +${mb(second.growthBytes)}; ${bigLine(second)}`]),
          `the MTA kept up: ${delivered} of ${sends} messages in the recipient's INBOX ${(deliveredAfterMs / 1000).toFixed(1)} s after the last send`,
        ],
        raw: {
          messageBytes: size,
          gatewayRuns,
          nodemailerMs: bareMs,
          gatewaySmtpAttemptMeanMs: smtpMeanMs,
          withCopy,
          bigRuns: bigRuns.map(({ samples, ...run }) => ({ ...run, rssSamplesKb: samples.map((x) => [Math.round(x.atMs - run.send.at.start), x.kb]) })),
          sends,
          delivered,
        },
      };
    } finally {
      stream.close();
    }
  } finally {
    transport.close();
    if (created) await gateway.deleteAccount(account).catch(() => undefined);
  }
}

/** The gateway's SMTP attempt histogram so far: total seconds and count. */
async function smtpAttempts(gateway: Gateway): Promise<{ seconds: number; count: number }> {
  return {
    seconds: await metricValue(gateway.url, 'mailgw_smtp_attempt_duration_seconds_sum'),
    count: await metricValue(gateway.url, 'mailgw_smtp_attempt_duration_seconds_count'),
  };
}

/** Messages in `user`'s INBOX once it holds `expected` (or after `timeoutMs`, however many then). */
async function deliveredCount(ctx: RowContext, user: { username: string; password: string }, expected: number, timeoutMs: number): Promise<number> {
  const client = await openImap(ctx.servers, user);
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await client.status('INBOX', { messages: true });
      const messages = status === false ? 0 : (status.messages ?? 0);
      if (messages >= expected || Date.now() > deadline) return messages;
      await pause(100);
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}
