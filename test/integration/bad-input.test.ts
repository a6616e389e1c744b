/**
 * Client mistakes against a real Dovecot: each is a 4xx problem document that says what to fix,
 * never a 502 that blames the mail server nor a 500. Found by trying to break the gateway (issue 11).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

let gw: TestGateway;
let user: DovecotUser;
let account: string;
let messageId: string;
/** The INBOX's UIDVALIDITY, from a cursor the gateway issued. */
let uidValidity: string;

beforeAll(async () => {
  user = await dovecot.createUser('badin');
  await dovecot.seedMaildir(user.username, [textMessage({ subject: 'One' }), textMessage({ subject: 'Two' })]);
  gw = await startGateway({}, { captureLogs: true });
  account = await createImapAccount(gw.app, dovecot, user);
  const listing = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
  messageId = (listing.json() as { messages: Array<{ id: string }> }).messages[0]!.id;
  const page = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages?limit=1` });
  const issued = JSON.parse(Buffer.from((page.json() as { nextCursor: string }).nextCursor, 'base64url').toString('utf8')) as { uv: string };
  uidValidity = issued.uv;
});

afterAll(async () => {
  await gw?.close();
});

const inbox = () => `/v1/accounts/${account}/mailboxes/INBOX`;
const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A 4xx problem document with a stable code; the request never reached a 5xx. */
function expectClientError(res: { statusCode: number; headers: Record<string, unknown>; body: string }, code: string, label: string): void {
  expect(res.statusCode, `${label}: ${res.body}`).toBeLessThan(500);
  expect(res.statusCode, `${label}: ${res.body}`).toBeGreaterThanOrEqual(400);
  expect(String(res.headers['content-type']), label).toContain('application/problem+json');
  expect((JSON.parse(res.body) as { code: string }).code, `${label}: ${res.body}`).toBe(code);
}

describe('append: query flags are validated and coerced like any other query', () => {
  it("accepts API.md's own example, one flags value, and stores that flag", async () => {
    const res = await gw.app.inject({
      method: 'POST',
      url: `${inbox()}/messages?flags=%5CSeen`,
      headers: { 'content-type': 'message/rfc822' },
      payload: textMessage({ subject: 'appended with one flag' }),
    });
    expect(res.statusCode, res.body).toBe(201);
    const { id } = res.json() as { id: string };
    const got = await gw.app.inject({ url: `${inbox()}/messages/${id}` });
    expect(got.json().flags).toEqual(['\\Seen']);
  });

  it('accepts repeated flags', async () => {
    const res = await gw.app.inject({
      method: 'POST',
      url: `${inbox()}/messages?flags=%5CSeen&flags=%24Work`,
      headers: { 'content-type': 'message/rfc822' },
      payload: textMessage({ subject: 'appended with two flags' }),
    });
    expect(res.statusCode, res.body).toBe(201);
    const got = await gw.app.inject({ url: `${inbox()}/messages/${(res.json() as { id: string }).id}` });
    expect(got.json().flags).toEqual(expect.arrayContaining(['\\Seen', '$Work']));
  });

  it('refuses \\Deleted and other flags a client may not set, alone or repeated, and stores nothing', async () => {
    const before = (await gw.app.inject({ url: `${inbox()}/messages` })).json().total as number;
    for (const query of ['flags=%5CDeleted', 'flags=%5CSeen&flags=%5CDeleted', 'flags=%5CRecent', 'flags=a%20b', 'flags=']) {
      const res = await gw.app.inject({
        method: 'POST',
        url: `${inbox()}/messages?${query}`,
        headers: { 'content-type': 'message/rfc822' },
        payload: textMessage({ subject: 'must not be stored' }),
      });
      expectClientError(res, 'VALIDATION_FAILED', query);
      expect(res.json().detail, query).toContain('querystring/flags');
    }
    expect((await gw.app.inject({ url: `${inbox()}/messages` })).json().total).toBe(before);
  });

  it('validates the path parameters of the append route too', async () => {
    const res = await gw.app.inject({
      method: 'POST',
      url: `/v1/accounts/bad%20id/mailboxes/INBOX/messages`,
      headers: { 'content-type': 'message/rfc822' },
      payload: textMessage({ subject: 'x' }),
    });
    expectClientError(res, 'VALIDATION_FAILED', 'account id with a space');
    expect(res.json().detail).toContain('params/account');
  });
});

describe('client mistakes are 400 or 404, never 502 or 500', () => {
  it('refuses cursors the gateway cannot have issued', async () => {
    for (const [label, token] of [
      ['null', 'bnVsbA'],
      ['huge number', cursor({ v: 1, uv: uidValidity, b: 1e300 })],
      ['unsafe integer', cursor({ v: 1, uv: uidValidity, b: 2 ** 53 + 2 })],
      ['uid beyond 32 bits', cursor({ v: 1, uv: uidValidity, b: 2 ** 32 + 5 })],
      ['huge uidvalidity', cursor({ v: 1, uv: '9'.repeat(400), b: 5 })],
    ] as const) {
      const res = await gw.app.inject({ url: `${inbox()}/messages?cursor=${token}` });
      expectClientError(res, 'VALIDATION_FAILED', label);
    }
    const state = (text: string) => Buffer.from(text).toString('base64url');
    for (const since of [state(`i1.${uidValidity}.99999999999999999999.2.1`), state(`i1.${uidValidity}.4294967297.2.1`)]) {
      expectClientError(await gw.app.inject({ url: `${inbox()}/changes?since=${since}` }), 'VALIDATION_FAILED', `changes since ${since}`);
    }
  });

  it('refuses CR, LF and NUL in a mailbox path, a search term and a destination', async () => {
    for (const bad of ['%0D', '%0A', '%00', 'IN%0D%0ABOX', '%0D%0AA001%20LOGOUT']) {
      expectClientError(await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${bad}/messages` }), 'VALIDATION_FAILED', `path ${bad}`);
      expectClientError(await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${bad}` , method: 'DELETE' }), 'VALIDATION_FAILED', `delete ${bad}`);
      for (const field of ['text', 'from', 'to', 'subject']) {
        const res = await gw.app.inject({ url: `${inbox()}/messages?${field}=a${bad}b` });
        expectClientError(res, 'VALIDATION_FAILED', `${field} ${bad}`);
        expect(res.json().detail).toBe(`querystring/${field} must not contain control characters (CR, LF, NUL, TAB, DEL, …)`);
      }
      for (const op of ['move', 'copy']) {
        const res = await gw.app.inject({
          method: 'POST',
          url: `${inbox()}/messages/${messageId}/${op}`,
          payload: { destination: `Arch${decodeURIComponent(bad)}ive` },
        });
        expectClientError(res, 'VALIDATION_FAILED', `${op} ${bad}`);
        expect(res.json().detail).toContain('body/destination');
      }
      for (const body of [{ path: `A${decodeURIComponent(bad)}` }]) {
        expectClientError(
          await gw.app.inject({ method: 'POST', url: `/v1/accounts/${account}/mailboxes`, payload: body }),
          'VALIDATION_FAILED',
          `create ${bad}`,
        );
        expectClientError(
          await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${account}/mailboxes/INBOX`, payload: body }),
          'VALIDATION_FAILED',
          `rename ${bad}`,
        );
      }
    }
    // The session survived all of that: the mailbox still lists.
    expect((await gw.app.inject({ url: `${inbox()}/messages` })).statusCode).toBe(200);
  });

  it('refuses dates IMAP cannot say', async () => {
    // Dovecot answers BAD to days before about 1900 (1850 measured): that is the caller's date, not a server fault.
    for (const date of ['0000-01-01', '0001-01-01', '0999-12-31', '1600-01-01', '1850-01-01', '1899-12-31', '2024-02-30']) {
      for (const field of ['since', 'before']) {
        const res = await gw.app.inject({ url: `${inbox()}/messages?${field}=${date}` });
        expectClientError(res, 'VALIDATION_FAILED', `${field}=${date}`);
        expect(res.json().detail, date).toMatch(new RegExp(`^querystring/${field} must `));
      }
    }
    for (const date of ['1900-01-01', '1970-01-01', '2106-02-08', '9999-12-31']) {
      expect((await gw.app.inject({ url: `${inbox()}/messages?since=${date}` })).statusCode, date).toBe(200);
    }
  });

  it('answers subscribing or unsubscribing a missing mailbox with 404 MAILBOX_NOT_FOUND', async () => {
    for (const subscribed of [true, false]) {
      const res = await gw.app.inject({ method: 'PATCH', url: `/v1/accounts/${account}/mailboxes/Nowhere`, payload: { subscribed } });
      expectClientError(res, 'MAILBOX_NOT_FOUND', `subscribed=${subscribed}`);
    }
  });

  it('counts none of these as upstream errors', async () => {
    const metrics = (await gw.app.inject({ url: '/metrics' })).body;
    expect(metrics).not.toMatch(/mailgw_upstream_errors_total\{[^}]*code="UPSTREAM_ERROR"[^}]*\} [1-9]/);
  });
});

describe('response headers built from message data', () => {
  /** A message whose one attachment is a text part declaring `charset`, as a hostile sender may write it. */
  function textAttachment(subject: string, charset: string): Buffer {
    return Buffer.from(
      [
        'From: Sender <sender@example.com>',
        'To: Rcpt <rcpt@example.com>',
        `Subject: ${subject}`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'See the attachment.',
        '--b1',
        `Content-Type: text/plain; charset="${charset}"`,
        'Content-Disposition: attachment; filename="notes.txt"',
        '',
        'plain words',
        '--b1--',
        '',
      ].join('\r\n'),
      'utf8',
    );
  }

  it('serve an attachment whose declared charset is not a token without it, and never with a parameter it smuggles in', async () => {
    for (const charset of ['€uro', 'utf-8; name=evil.html', 'utf-8\tx']) {
      const appended = await gw.app.inject({
        method: 'POST',
        url: `${inbox()}/messages`,
        headers: { 'content-type': 'message/rfc822' },
        payload: textAttachment(`charset ${charset}`, charset),
      });
      expect(appended.statusCode, appended.body).toBe(201);
      const { id } = appended.json() as { id: string };
      const detail = (await gw.app.inject({ url: `${inbox()}/messages/${id}` })).json() as { attachments: Array<{ id: string }> };
      const attachment = detail.attachments[0]!;
      const res = await gw.app.inject({ url: `${inbox()}/messages/${id}/attachments/${attachment.id}` });
      expect(res.statusCode, `${charset}: ${res.body}`).toBe(200);
      expect(res.headers['content-type'], charset).toBe('text/plain');
      expect(res.body).toBe('plain words');
    }
  });

  it('keep a charset that is a token', async () => {
    const appended = await gw.app.inject({
      method: 'POST',
      url: `${inbox()}/messages`,
      headers: { 'content-type': 'message/rfc822' },
      payload: textAttachment('charset iso-8859-1', 'ISO-8859-1'),
    });
    const { id } = appended.json() as { id: string };
    const detail = (await gw.app.inject({ url: `${inbox()}/messages/${id}` })).json() as { attachments: Array<{ id: string }> };
    const res = await gw.app.inject({ url: `${inbox()}/messages/${id}/attachments/${detail.attachments[0]!.id}` });
    expect(res.headers['content-type']).toMatch(/^text\/plain; charset=iso-8859-1$/i);
  });
});
