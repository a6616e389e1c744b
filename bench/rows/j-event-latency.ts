/**
 * Row (j): how soon a change made by another client is an event on the gateway's stream. Another
 * IMAP client APPENDs to INBOX, and to a second folder; the time until the `message.new` arrives on
 * `/v1/accounts/{account}/events` is set against a bare imapflow client IDLEing on the same INBOX
 * (its EXISTS), for the very same APPENDs. INBOX is pushed to the gateway's watcher by IDLE; the
 * other folder by NOTIFY (Dovecot offers it), else by the LIST-STATUS poll every
 * EVENTS_POLL_INTERVAL_MS (default 2,000 ms): the target there is that interval plus 1 s.
 */
import { randomBytes } from 'node:crypto';
import { BareIdler, appendAt, changer, openEvents, pause, quantile, sampleSubject, sseArrival, untilReporting } from '../events.js';
import type { Gateway } from '../gateway.js';
import { check, ms, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_J = 'change → SSE event, INBOX and another folder';

/** The gateway's default (src/config.ts), which the bench's gateway runs with. */
const POLL_INTERVAL_MS = 2_000;
const FOLDER = 'Work';
const WAIT_MS = 15_000;

export async function rowJ(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const { dovecot } = ctx.servers;
  const user = { username: `bench-events-${randomBytes(3).toString('hex')}`, password: randomBytes(9).toString('base64url') };
  await dovecot.addUser(user.username, user.password);
  const other = await changer(ctx.servers, user);
  await other.mailboxCreate(FOLDER);
  const account = user.username;
  const created = await gateway.createAccount(account, 'imap', user);
  if (created.status !== 201) throw new Error(`creating ${account}: ${created.status} ${created.body}`);
  const bare = await BareIdler.start(ctx.servers, user);
  const stream = await openEvents(`${gateway.url}/v1/accounts/${account}/events`);
  const samples = ctx.options.quick ? 5 : 40;
  const inbox = { sse: [] as number[], bare: [] as number[] };
  const folder: number[] = [];
  try {
    // Warm-up: the watcher's first look records what is there; a change after it is an event.
    await untilReporting(stream, other, 60_000);
    for (let i = 0; i < samples; i++) {
      const subject = sampleSubject(`j-inbox-${i}`);
      const seen = bare.nextExists(WAIT_MS);
      const startMs = await appendAt(other, 'INBOX', subject);
      const [bareAt, sseAt] = await Promise.all([seen, sseArrival(stream, subject, WAIT_MS)]);
      inbox.bare.push(bareAt - startMs);
      inbox.sse.push(sseAt - startMs);
      await pause(150 + Math.random() * 150);

      const elsewhere = sampleSubject(`j-folder-${i}`);
      const folderStart = await appendAt(other, FOLDER, elsewhere);
      folder.push((await sseArrival(stream, elsewhere, WAIT_MS)) - folderStart);
      // Apart by more than the watcher's follow-up look (500 ms), at a random phase of its poll.
      await pause(600 + Math.random() * 400);
    }
  } finally {
    stream.close();
    await bare.stop();
    await other.logout().catch(() => undefined);
    await gateway.deleteAccount(account);
  }
  const p = (values: number[], q: number): number => quantile(values, q);
  return {
    id: 'j',
    title: TITLE_J,
    status: 'measured',
    measured: `INBOX: p50 ${ms(p(inbox.sse, 0.5))}, p99 ${ms(p(inbox.sse, 0.99))}; ${FOLDER}: p50 ${ms(p(folder, 0.5))}, p99 ${ms(p(folder, 0.99))} (${samples} changes each)`,
    baseline: `bare imapflow IDLE on INBOX: p50 ${ms(p(inbox.bare, 0.5))}, p99 ${ms(p(inbox.bare, 0.99))}`,
    checks: [
      check('(j) INBOX p50 / bare IDLE p50', p(inbox.sse, 0.5) / p(inbox.bare, 0.5), '<=', 1.5),
      check(`(j) ${FOLDER} p99, ms (poll ${POLL_INTERVAL_MS} ms + 1 s)`, p(folder, 0.99), '<=', POLL_INTERVAL_MS + 1_000),
    ],
    notes: [],
    raw: { inboxSseMs: inbox.sse, inboxBareMs: inbox.bare, folderSseMs: folder },
  };
}
