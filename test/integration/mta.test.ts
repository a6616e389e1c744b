/**
 * The test MTA itself (test/support/mta.ts): a real Postfix on a port of its own, SMTP AUTH checked by
 * the run's Dovecot, delivering into that Dovecot over LMTP. Submissions go in with nodemailer (as the
 * gateway's sending will) and come back out over IMAP, so each case fails if any link of the harness
 * is broken: AUTH, the recipient maps, the refusals, the LMTP hop or the byte fidelity settings.
 */
import nodemailer, { type NodemailerError, type SMTPSentMessageInfo } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directImapClient } from '../support/imap-client.js';
import { canRunMta, startMta, type TestMta } from '../support/mta.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();

const DELIVERY_TIMEOUT_MS = 5_000;

let mta: TestMta;
let sender: DovecotUser;
let recipient: DovecotUser;
let mixedRecipient: DovecotUser;

/** A plain-SMTP submission client (no STARTTLS: the test MTA offers none, and must not need it). */
function submitter(auth?: { user: string; pass: string }) {
  return nodemailer.createTransport({ host: mta.host, port: mta.port, secure: false, ignoreTLS: true, ...(auth ? { auth } : {}) });
}

async function submit(to: string[], raw: Buffer, auth = { user: sender.username, pass: sender.password }): Promise<SMTPSentMessageInfo> {
  const transport = submitter(auth);
  try {
    return await transport.sendMail({ envelope: { from: mta.address(sender.username), to }, raw });
  } finally {
    transport.close();
  }
}

/** The error a submission fails with (the test fails if it succeeds). */
async function submitError(...args: Parameters<typeof submit>): Promise<NodemailerError> {
  const error = await submit(...args).then(
    (info) => new Error(`expected a refusal, got ${JSON.stringify(info)}`),
    (error: unknown) => error as NodemailerError,
  );
  if (!('code' in error)) throw error;
  return error;
}

/** The raw source of each message in `user`'s INBOX once it holds `count`; the MTA's log explains a timeout. */
async function inboxOnceItHolds(user: DovecotUser, count: number): Promise<Buffer[]> {
  const client = directImapClient(dovecot, user);
  await client.connect();
  try {
    const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
    let messages = 0;
    while ((messages = (await client.status('INBOX', { messages: true }) || { messages: 0 }).messages ?? 0) < count) {
      if (Date.now() > deadline) throw new Error(`${user.username}'s INBOX holds ${messages} of ${count} messages after ${DELIVERY_TIMEOUT_MS} ms; maillog:\n${await mta.log()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await client.mailboxOpen('INBOX', { readOnly: true });
    const sources: Buffer[] = [];
    for await (const message of client.fetch('1:*', { source: true })) if (message.source) sources.push(message.source);
    return sources;
  } finally {
    await client.logout().catch(() => undefined);
  }
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const TRACE_FIELDS = new Set(['return-path', 'delivered-to', 'received']);

/**
 * Splits a delivered message into the trace fields the MTA and Dovecot put on top (names, and each
 * field's text) and the rest, which should be the submitted bytes.
 */
function splitTrace(source: Buffer): { trace: Array<{ name: string; text: string }>; rest: Buffer } {
  const trace: Array<{ name: string; text: string }> = [];
  let offset = 0;
  for (;;) {
    const match = /^([A-Za-z-]+):/.exec(source.subarray(offset, offset + 100).toString('latin1'));
    if (!match || !TRACE_FIELDS.has(match[1]!.toLowerCase())) break;
    // A field ends at the CRLF that is not followed by folding white space (RFC 5322, 2.2.3).
    let end = source.indexOf('\r\n', offset);
    while (end !== -1 && (source[end + 2] === 0x20 || source[end + 2] === 0x09)) end = source.indexOf('\r\n', end + 2);
    if (end === -1) break;
    trace.push({ name: match[1]!, text: source.subarray(offset, end).toString('latin1') });
    offset = end + 2;
  }
  return { trace, rest: source.subarray(offset) };
}

/**
 * What Postfix would change with its defaults: no Message-ID (it would add one, and a Date, for a
 * local client), a Bcc (dropped), 8-bit text (made quoted-printable), a line beyond 998 bytes (folded),
 * a line starting with a dot (stuffed on the wire, unstuffed twice on the way), trailing white space.
 */
function submittedMessage(from: string, to: string, subject: string): Buffer {
  return Buffer.from(
    [
      `From: Sender <${from}>`,
      `To: <${to}>`,
      'Bcc: <hidden@example.com>',
      `Subject: ${subject}`,
      'Date: Thu, 01 Jan 2026 00:00:00 +0000',
      'X-Harness:   spaced\tvalue  ',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Grüße, 日本語, ½ — 8-bit text',
      '.a line that starts with a dot',
      '..and one with two',
      'trailing white space \t ',
      `${'x'.repeat(1_500)} a line of 1,500+ bytes`,
      '',
      'the end',
      '',
    ].join('\r\n'),
    'utf8',
  );
}

describe.skipIf(!canRunMta)(canRunMta ? 'the test MTA (Postfix into the test Dovecot)' : 'the test MTA (skipped: a private Postfix needs root)', () => {
  beforeAll(async () => {
    [sender, recipient, mixedRecipient] = await Promise.all([dovecot.createUser('mta-from'), dovecot.createUser('mta-to'), dovecot.createUser('mta-mixed')]);
    mta = await startMta({ dovecot, users: [sender, recipient, mixedRecipient] });
  });

  afterAll(async () => {
    await mta?.stop();
  });

  it('delivers an authenticated submission into the recipient INBOX, byte for byte behind the trace fields', async () => {
    const to = mta.address(recipient.username);
    const raw = submittedMessage(mta.address(sender.username), to, 'harness check');

    const info = await submit([to], raw);
    expect(info.accepted).toEqual([to]);
    expect(info.rejected).toEqual([]);
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);

    const [source, ...more] = await inboxOnceItHolds(recipient, 1);
    expect(more).toHaveLength(0);
    const { trace, rest } = splitTrace(source!);
    expect(rest.toString('latin1')).toBe(raw.toString('latin1'));
    expect(rest.equals(raw)).toBe(true);
    expect(trace.map((field) => field.name)).toEqual(['Return-Path', 'Delivered-To', 'Received', 'Received']);
    expect(trace[0]!.text).toBe(`Return-Path: <${mta.address(sender.username)}>`);
    expect(trace[1]!.text).toBe(`Delivered-To: ${to}`);
    // Dovecot's LMTP hop, then Postfix's: an authenticated (ESMTPA) submission from loopback.
    expect(trace[2]!.text).toMatch(new RegExp(`^Received: from ${escapeRegExp(`mta.${mta.domain}`)}\\s.*\\bwith LMTP\\b`, 's'));
    expect(trace[3]!.text).toMatch(/^Received: from \S+ \(localhost \[127\.0\.0\.1\]\)\s+by mta\.\S+ \(Postfix\) with ESMTPA /);
  });

  it('refuses a wrong password with 535 and, without AUTH, takes nothing (554 at RCPT)', async () => {
    const to = mta.address(recipient.username);
    const raw = submittedMessage(mta.address(sender.username), to, 'must not arrive');

    const wrong = await submitError([to], raw, { user: sender.username, pass: `${sender.password}-wrong` });
    expect(wrong.code).toBe('EAUTH');
    expect(wrong.responseCode).toBe(535);
    expect(wrong.response).toMatch(/^535 5\.7\.8 /);

    const transport = submitter();
    try {
      const anonymous = await transport.sendMail({ envelope: { from: mta.address(sender.username), to: [to] }, raw }).then(
        () => undefined,
        (error: unknown) => error as NodemailerError,
      );
      expect(anonymous?.code).toBe('EENVELOPE');
      expect(anonymous?.responseCode).toBe(554);
      expect(anonymous?.response).toMatch(/^554 5\.7\.1 .*Access denied/);
    } finally {
      transport.close();
    }
  });

  it('refuses nobody@ with 550 and defers later@ with 451 at RCPT; a mixed list delivers to the good one only', async () => {
    const { permanent, temporary, text } = mta.refused;
    const raw = submittedMessage(mta.address(sender.username), permanent, 'refusals');

    const refused = await submitError([permanent], raw);
    expect(refused.code).toBe('EENVELOPE');
    expect(refused.responseCode).toBe(550);
    expect(refused.rejected).toEqual([permanent]);
    // The access map's own text: not some other 550 (an unknown user, say).
    expect(refused.response).toMatch(new RegExp(`^550 5\\.1\\.1 <${escapeRegExp(permanent)}>: Recipient address rejected: ${escapeRegExp(text)}`));

    const deferred = await submitError([temporary], raw);
    expect(deferred.code).toBe('EENVELOPE');
    expect(deferred.responseCode).toBe(451);
    expect(deferred.rejected).toEqual([temporary]);
    expect(deferred.response).toMatch(new RegExp(`^451 4\\.3\\.2 <${escapeRegExp(temporary)}>: Recipient address rejected: ${escapeRegExp(text)}`));

    const good = mta.address(mixedRecipient.username);
    const info = await submit([permanent, good, temporary], raw);
    expect(info.accepted).toEqual([good]);
    expect(info.rejected).toEqual([permanent, temporary]);
    expect(info.rejectedErrors?.map((error) => [error.recipient, error.responseCode])).toEqual([
      [permanent, 550],
      [temporary, 451],
    ]);

    const [source, ...more] = await inboxOnceItHolds(mixedRecipient, 1);
    expect(more).toHaveLength(0);
    expect(splitTrace(source!).rest.equals(raw)).toBe(true);
  });
});
