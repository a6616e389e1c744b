/**
 * Subjects and addresses in listings and in the message view, for headers the server cannot decode
 * (issue "Message fidelity"): raw 8-bit bytes in a charset the header does not name, raw 8-bit bytes
 * inside an encoded word, and addresses the server replaces with placeholders. The listing may take
 * ENVELOPE for speed but decodes these from the header bytes; the view uses its own header parse.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { testServers } from '../support/servers.js';

const { dovecot } = testServers();

const header = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const message = (subjectAndFrom: Buffer[], bodyCharset: string): Buffer =>
  Buffer.concat([
    ...subjectAndFrom.flatMap((line) => [line, Buffer.from('\r\n')]),
    Buffer.from(`To: Rcpt <rcpt@example.com>\r\nDate: Wed, 01 May 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=${bodyCharset}\r\n\r\nbody\r\n`),
  ]);

const CASES = [
  {
    // Big5 bytes, no encoded word: the body's charset says how to read them.
    source: message([header('Subject: ', [0xa4, 0xa4, 0xa4, 0xe5]), header('From: ', [0xa4, 0xa4], ' <big5@example.com>')], 'big5'),
    subject: '中文',
    from: [{ name: '中', address: 'big5@example.com' }],
  },
  {
    // Raw Latin-1 bytes inside an encoded word that names Latin-1.
    source: message([header('Subject: =?iso-8859-1?Q?Gr', [0xfc, 0xdf], 'e?='), header('From: =?iso-8859-1?Q?J', [0xf6], 'rg?= <joerg@example.com>')], 'us-ascii'),
    subject: 'Grüße',
    from: [{ name: 'Jörg', address: 'joerg@example.com' }],
  },
  {
    // No address the server can read: Dovecot's ENVELOPE says MISSING_DOMAIN / MISSING_MAILBOX.
    source: message([header('Subject: no address'), header('From: undisclosed')], 'us-ascii'),
    subject: 'no address',
    from: [],
  },
];

let gw: TestGateway;
let account: string;

beforeAll(async () => {
  const user = await dovecot.createUser('headers');
  await dovecot.seedMaildir(user.username, CASES.map((c) => c.source));
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
});

afterAll(async () => {
  await gw?.close();
});

interface Listed {
  id: string;
  subject: string | null;
  from: Array<{ name: string; address: string }>;
}

describe('header text the server cannot decode', () => {
  it('is decoded from the header bytes in the listing and in the view, and a placeholder is never an address', async () => {
    const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).not.toMatch(/MISSING_|SYNTAX_ERROR|\uFFFD/);
    const listed = (res.json() as { messages: Listed[] }).messages.reverse();
    expect(listed.map((m) => m.subject)).toEqual(CASES.map((c) => c.subject));
    for (const [i, c] of CASES.entries()) {
      // The listing keeps a name without an address (the view lists addresses only).
      expect(listed[i]!.from.filter((a) => a.address !== ''), c.subject).toEqual(c.from);
      const view = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${listed[i]!.id}` });
      expect(view.statusCode, view.body).toBe(200);
      expect(view.json(), c.subject).toMatchObject({ subject: c.subject, from: c.from });
    }
  });

  it('is decoded the same in the summaries of /changes (and so of events)', async () => {
    const base = `/v1/accounts/${account}/mailboxes/INBOX`;
    const page = (await gw.app.inject({ url: `${base}/messages` })).json() as { state: string; messages: Listed[] };
    for (const m of page.messages) {
      const res = await gw.app.inject({ method: 'PATCH', url: `${base}/messages/${m.id}`, payload: { flagged: true } });
      expect(res.statusCode, res.body).toBe(200);
    }
    const changes = await gw.app.inject({ url: `${base}/changes?since=${encodeURIComponent(page.state)}` });
    expect(changes.statusCode, changes.body).toBe(200);
    const updated = (changes.json() as { updated: Listed[] }).updated;
    expect(updated.map((m) => m.subject).sort()).toEqual(CASES.map((c) => c.subject).sort());
    expect(changes.body).not.toMatch(/MISSING_|SYNTAX_ERROR|\uFFFD/);
  });
});
