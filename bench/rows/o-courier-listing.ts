/**
 * Row (o) (issue 17): the cached listing on a server without CONDSTORE. An 18,000-message Courier
 * mailbox (test/support/courier.ts, unpacked Debian packages, needs root), the newest 50 through the
 * gateway with its listing cache on, warm (200 from the cache) and conditional (304), against imapflow
 * in this process doing the same validation work on a kept session with INBOX selected: NOOP, then FETCH
 * of UID and FLAGS for the newest 50. Target: p50 ≤ 1.3 × that, for both.
 *
 * For a note: the full page FETCH (what a validation cost before: envelopes and structures of 50).
 */
import { randomBytes } from 'node:crypto';
import { chownSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import { SUMMARY_FETCH_QUERY } from '../../src/mail/imap/summary.js';
import { courierMaildir, createCourierUser, startCourier, type CourierServer } from '../../test/support/courier.js';
import { textMessage } from '../../test/support/messages.js';
import type { Gateway } from '../gateway.js';
import { callRun, failureNotes, httpRun, interleave, summarize } from '../load.js';
import { check, ms, notRun, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_O = 'cached listing on a Courier mailbox (no CONDSTORE), warm and 304, vs imapflow NOOP + FETCH FLAGS';

const ACCOUNT = 'bench-courier';

/** Message files straight into the Maildir's cur/ (Courier numbers them at the first SELECT), every third seen. */
function seed(courier: CourierServer, username: string, count: number): void {
  const maildir = courierMaildir(courier, username);
  const stamp = Math.floor(Date.now() / 1000);
  for (let i = 0; i < count; i++) {
    const base = `${stamp}.M${String(i).padStart(6, '0')}P${process.pid}.${os.hostname()}`;
    const tmp = path.join(maildir, 'tmp', base);
    writeFileSync(tmp, textMessage({ subject: `courier ${i}`, body: `Body ${i} ${randomBytes(60).toString('base64')}` }));
    chownSync(tmp, 65534, 65534);
    renameSync(tmp, path.join(maildir, 'cur', `${base}:2,${i % 3 === 0 ? 'S' : ''}`));
  }
}

export async function rowO(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const count = ctx.options.courierMailboxMessages;
  const title = `${TITLE_O}${count < 18_000 ? ` (quick: ${count.toLocaleString('en-US')} messages)` : ''}`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return notRun('o', title, 'Courier runs in a mount namespace, which needs root');
  const courier = await startCourier();
  let client: ImapFlow | undefined;
  try {
    const user = await createCourierUser(courier, 'bench');
    seed(courier, user.username, count);
    client = new ImapFlow({ host: '127.0.0.1', port: courier.imapPort, secure: false, doSTARTTLS: false, auth: { user: user.username, pass: user.password }, logger: false });
    client.on('error', () => undefined);
    await client.connect();
    const firstSelect = performance.now();
    await client.mailboxOpen('INBOX');
    const firstSelectMs = performance.now() - firstSelect;
    if (client.mailbox === false || client.mailbox.exists !== count) throw new Error(`row (o): Courier shows ${client.mailbox ? client.mailbox.exists : 0} messages, not ${count}`);
    const created = await gateway.createAccount(ACCOUNT, 'imap', user, { port: courier.imapPort });
    if (created.status !== 201) throw new Error(`row (o): creating the Courier account: ${created.status} ${created.body}`);
    const url = gateway.listingUrl(ACCOUNT);
    const first = await fetch(url);
    await first.arrayBuffer();
    const etag = first.headers.get('etag');
    if (first.status !== 200 || etag === null) throw new Error(`row (o): the first listing answered ${first.status} without an ETag`);

    const session = client;
    const newest = async (query: object): Promise<void> => {
      await session.noop();
      const exists = session.mailbox ? session.mailbox.exists : 0;
      let fetched = 0;
      for await (const _msg of session.fetch(`${Math.max(1, exists - 49)}:${exists}`, query)) fetched += 1;
      if (fetched !== 50) throw new Error(`row (o): the FETCH answered ${fetched} messages, not 50`);
    };
    const { direct, warm, notModified } = await interleave(
      {
        direct: (seconds) => callRun(() => newest({ uid: true, flags: true }), seconds),
        warm: (seconds) => httpRun(url, gateway.pid, 1, seconds),
        notModified: (seconds) => httpRun(url, gateway.pid, 1, seconds, { headers: { 'if-none-match': etag }, expectStatus: 304 }),
      },
      ctx.options.schedule,
    );
    const fullPage = summarize([await callRun(() => newest(SUMMARY_FETCH_QUERY), ctx.options.schedule.seconds / 3)]);
    return {
      id: 'o',
      title,
      status: 'measured',
      measured: `warm: p50 ${ms(warm.p50Ms)}, p99 ${ms(warm.p99Ms)}; 304: p50 ${ms(notModified.p50Ms)}, p99 ${ms(notModified.p99Ms)}`,
      baseline: `imapflow NOOP + FETCH (UID FLAGS) of 50: p50 ${ms(direct.p50Ms)}`,
      checks: [check('(o) warm p50 / imapflow p50', warm.p50Ms / direct.p50Ms, '<=', 1.3), check('(o) 304 p50 / imapflow p50', notModified.p50Ms / direct.p50Ms, '<=', 1.3)],
      notes: [
        `a full page FETCH (envelopes, structures: what each validation cost before) takes p50 ${ms(fullPage.p50Ms)} on the same session`,
        `Courier's first SELECT of the ${count.toLocaleString('en-US')} new messages took ${ms(firstSelectMs)}`,
        ...failureNotes({ warm, '304': notModified }),
      ],
      raw: { direct, warm, notModified, fullPage, firstSelectMs, messages: count },
    };
  } finally {
    await gateway.deleteAccount(ACCOUNT).catch(() => undefined);
    await client?.logout().catch(() => undefined);
    await courier.stop();
  }
}
