import { createHash, randomBytes } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import { directImapClient } from '../support/imap-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { messageWithAttachment, textMessage } from '../support/messages.js';

const { dovecot } = testServers();

interface Summary {
  id: string;
  uid: number;
  subject: string;
  flags: string[];
  seen: boolean;
  size: number;
  hasAttachments: boolean | null;
}
interface Page {
  messages: Summary[];
  nextCursor: string | null;
  total: number;
  state: string;
}

function imapClient(user: DovecotUser): ImapFlow {
  return directImapClient(dovecot, user);
}

let gw: TestGateway;
let user: DovecotUser;
let account: string;
const attachmentBytes = randomBytes(300_000);

beforeAll(async () => {
  user = await dovecot.createUser('read');
  const messages = [];
  for (let i = 1; i <= 30; i++) messages.push(textMessage({ subject: `Message ${i}` }));
  await dovecot.seedMaildir(user.username, messages);
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
});

afterAll(async () => {
  await gw?.close();
});

async function list(query = '', headers: Record<string, string> = {}) {
  return gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages${query}`, headers });
}

describe('listing', () => {
  it('lists newest first with a total and a state that doubles as ETag', async () => {
    const res = await list('?limit=10');
    expect(res.statusCode).toBe(200);
    const page = res.json() as Page;
    expect(page.total).toBe(30);
    expect(page.messages).toHaveLength(10);
    expect(page.messages.map((m) => m.subject)).toEqual(
      Array.from({ length: 10 }, (_, i) => `Message ${30 - i}`),
    );
    const uids = page.messages.map((m) => m.uid);
    expect([...uids].sort((a, b) => b - a)).toEqual(uids);
    expect(res.headers.etag).toBe(`"${page.state}"`);
    expect(page.nextCursor).not.toBeNull();
  });

  it('answers 304 for If-None-Match with the current state, 200 once the mailbox changed', async () => {
    const first = await list('?limit=5');
    const etag = first.headers.etag as string;
    const again = await list('?limit=5', { 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    // A 304 has no body, and so no Content-Length (RFC 9110 §15.4.5; it once said 4, for "null").
    expect(again.headers['content-length']).toBeUndefined();
    expect(again.headers.etag).toBe(etag);

    // Another client flags a message: with CONDSTORE the state changes.
    await dovecot.doveadm(['flags', 'add', '-u', user.username, '\\Flagged', 'mailbox', 'INBOX', 'uid', '1']);
    const changed = await list('?limit=5', { 'if-none-match': etag });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
  });

  it('pages through every message once with the cursor, even while mail arrives and is expunged', async () => {
    const seen: string[] = [];
    let res = await list('?limit=7');
    let page = res.json() as Page;
    seen.push(...page.messages.map((m) => m.subject));

    // Between pages: a new message arrives and one not yet listed is expunged by another client.
    const client = imapClient(user);
    await client.connect();
    await client.append('INBOX', textMessage({ subject: 'Late arrival' }));
    await client.mailboxOpen('INBOX');
    const victim = page.messages[page.messages.length - 1]!.uid - 3;
    await client.messageDelete(String(victim), { uid: true });
    await client.logout();

    while (page.nextCursor) {
      res = await list(`?limit=7&cursor=${encodeURIComponent(page.nextCursor)}`);
      expect(res.statusCode).toBe(200);
      page = res.json() as Page;
      seen.push(...page.messages.map((m) => m.subject));
    }
    expect(new Set(seen).size).toBe(seen.length); // nothing twice
    expect(seen).not.toContain('Late arrival'); // newer than the anchor
    expect(seen).toHaveLength(29); // 30 seeded, one expunged
    expect(page.total).toBe(30); // 30 - 1 + 1
  });

  it('rejects bad query values with VALIDATION_FAILED', async () => {
    for (const query of ['?limit=0', '?limit=201', '?limit=abc', '?cursor=not-a-cursor']) {
      const res = await list(query);
      expect(res.statusCode, query).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json().code).toBe('VALIDATION_FAILED');
    }
  });
});

describe('messages', () => {
  let withAttachment: Summary;
  let source: Buffer;

  beforeAll(async () => {
    source = messageWithAttachment({
      subject: 'With attachment',
      filename: 'Größe résumé.bin',
      content: attachmentBytes,
    });
    const client = imapClient(user);
    await client.connect();
    await client.append('INBOX', source);
    await client.logout();
    const page = (await list('?limit=1')).json() as Page;
    withAttachment = page.messages[0]!;
    expect(withAttachment.subject).toBe('With attachment');
    expect(withAttachment.hasAttachments).toBe(true);
  });

  const url = (id: string, suffix = '') => `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}${suffix}`;

  it('opens a message without setting \\Seen, and sets it with markSeen=true', async () => {
    const res = await gw.app.inject({ url: url(withAttachment.id) });
    expect(res.statusCode).toBe(200);
    const msg = res.json();
    expect(msg.subject).toBe('With attachment');
    expect(msg.text).toContain('See the attachment.');
    expect(msg.seen).toBe(false);
    expect(msg.headers.find((h: { key: string }) => h.key === 'subject').value).toBe('With attachment');
    expect(msg.attachments).toHaveLength(1);
    expect(msg.attachments[0]).toMatchObject({ filename: 'Größe résumé.bin', size: attachmentBytes.length, disposition: 'attachment' });

    const after = (await list('?limit=1')).json() as Page;
    expect(after.messages[0]!.seen).toBe(false);

    const marked = await gw.app.inject({ url: url(withAttachment.id, '?markSeen=true') });
    expect(marked.json().seen).toBe(true);
    expect(((await list('?limit=1')).json() as Page).messages[0]!.flags).toContain('\\Seen');
  });

  it('streams the raw message byte for byte, and a Range as 206', async () => {
    const res = await gw.app.inject({ url: url(withAttachment.id, '/raw') });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('message/rfc822');
    expect(Number(res.headers['content-length'])).toBe(source.length);
    // Saved as `<id>.eml` by browsers, Swagger UI and curl -OJ; never sniffed into something else.
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${withAttachment.id}.eml"`);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.rawPayload.equals(source)).toBe(true);

    const part = await gw.app.inject({ url: url(withAttachment.id, '/raw'), headers: { range: 'bytes=100-199' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 100-199/${source.length}`);
    expect(part.rawPayload.equals(source.subarray(100, 200))).toBe(true);

    const tail = await gw.app.inject({ url: url(withAttachment.id, '/raw'), headers: { range: 'bytes=-10' } });
    expect(tail.rawPayload.equals(source.subarray(source.length - 10))).toBe(true);

    const past = await gw.app.inject({ url: url(withAttachment.id, '/raw'), headers: { range: `bytes=${source.length}-` } });
    expect(past.statusCode).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${source.length}`);
  });

  it('streams an attachment decoded, with an RFC 6266 Content-Disposition', async () => {
    const msg = (await gw.app.inject({ url: url(withAttachment.id) })).json();
    const res = await gw.app.inject({ url: url(withAttachment.id, `/attachments/${msg.attachments[0].id}`) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-disposition']).toContain("filename*=UTF-8''Gr%C3%B6%C3%9Fe%20r%C3%A9sum%C3%A9.bin");
    expect(createHash('sha256').update(res.rawPayload).digest('hex')).toBe(
      createHash('sha256').update(attachmentBytes).digest('hex'),
    );

    const missing = await gw.app.inject({ url: url(withAttachment.id, '/attachments/9') });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('ATTACHMENT_NOT_FOUND');
    const text = await gw.app.inject({ url: url(withAttachment.id, '/attachments/1') });
    expect(text.json().code).toBe('ATTACHMENT_NOT_FOUND'); // the body text is not an attachment
  });

  it('answers MESSAGE_NOT_FOUND for ids it never issued and 400 for malformed ones', async () => {
    const bogus = await gw.app.inject({ url: url('AQAAAAEAAAAB') }); // uidvalidity 1, uid 1
    expect(bogus.statusCode).toBe(404);
    expect(bogus.json().code).toBe('MESSAGE_NOT_FOUND');
    const garbage = await gw.app.inject({ url: url('zz') });
    expect(garbage.json().code).toBe('MESSAGE_NOT_FOUND');
    const malformed = await gw.app.inject({ url: url('bad!id') });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().code).toBe('VALIDATION_FAILED');
  });

  it('answers MAILBOX_NOT_FOUND and ACCOUNT_NOT_FOUND', async () => {
    const mbox = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Nope/messages` });
    expect(mbox.statusCode).toBe(404);
    expect(mbox.json().code).toBe('MAILBOX_NOT_FOUND');
    const acct = await gw.app.inject({ url: '/v1/accounts/nobody/mailboxes/INBOX/messages' });
    expect(acct.statusCode).toBe(404);
    expect(acct.json().code).toBe('ACCOUNT_NOT_FOUND');
  });
});
