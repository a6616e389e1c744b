/**
 * An SMTP server that takes the message and then goes silent mid-DATA (a fault the real MTA cannot
 * show on demand): the attempt ends at UPSTREAM_TIMEOUT_MS, counts as a temporary failure, and the
 * message waits for a retry on the schedule instead of hanging or failing for good.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSilentAfterDataSmtp, type SilentSmtpServer } from '../support/fake-smtp.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { testServers } from '../support/servers.js';

const { dovecot } = testServers();

let gw: TestGateway;
let fake: SilentSmtpServer;

describe('an SMTP server silent mid-DATA', () => {
  beforeAll(async () => {
    fake = await startSilentAfterDataSmtp();
    gw = await startGateway({ UPSTREAM_TIMEOUT_MS: '1000' });
  });

  afterAll(async () => {
    await gw?.close();
    await fake?.close();
  });

  it('ends the attempt at the timeout and keeps the message for a retry', async () => {
    const user = await dovecot.createUser('silent-smtp');
    const id = await createImapAccount(gw.app, dovecot, user, { email: 'silent@example.com', smtp: { host: fake.host, port: fake.port, security: 'none' } });
    const sent = await gw.app.inject({ method: 'POST', url: `/v1/accounts/${id}/send`, payload: { to: [{ address: 'bob@example.com' }], subject: 's', text: 'x' } });
    expect(sent.statusCode, sent.body).toBe(202);
    const { queueId } = sent.json() as { queueId: string };
    const started = Date.now();
    let entry: { status: string; attempts: number; error: string | null; permanent: boolean | null; recipients: Array<{ status: string }>; nextAttemptAt: string | null };
    for (;;) {
      entry = (await gw.app.inject({ method: 'GET', url: `/v1/accounts/${id}/outbox/${queueId}` })).json();
      if (entry.status === 'retrying' || Date.now() - started > 10_000) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(entry.status).toBe('retrying');
    expect(fake.dataStarted).toBe(1);
    // Bounded by UPSTREAM_TIMEOUT_MS (1 s), not by nodemailer's 10 min default.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(entry).toMatchObject({ attempts: 1, permanent: false, recipients: [{ status: 'deferred' }] });
    expect(entry.error).toMatch(/ETIMEDOUT|timed? ?out/i);
    expect(Date.parse(entry.nextAttemptAt!)).toBeGreaterThan(Date.now() + 5_000);
  });

  it('refuses a message over MAX_UPLOAD_BYTES once composed with 413, queueing nothing', async () => {
    const small = await startGateway({ MAX_UPLOAD_BYTES: '4096' });
    try {
      const user = await dovecot.createUser('send-limit');
      const id = await createImapAccount(small.app, dovecot, user, { email: 'limit@example.com', smtp: { host: fake.host, port: fake.port, security: 'none' } });
      const before = fake.dataStarted;
      // 3,500 bytes of attachment are about 4,700 in base64: over the limit only once composed.
      const res = await small.app.inject({
        method: 'POST',
        url: `/v1/accounts/${id}/send`,
        payload: { to: [{ address: 'bob@example.com' }], attachments: [{ filename: 'a.bin', content: Buffer.alloc(3_500, 7).toString('base64') }] },
      });
      expect(res.statusCode, res.body).toBe(413);
      expect((res.json() as { code: string; detail: string })).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', detail: expect.stringMatching(/MAX_UPLOAD_BYTES/) });
      expect(((await small.app.inject({ method: 'GET', url: `/v1/accounts/${id}/outbox` })).json() as { outbox: unknown[] }).outbox).toEqual([]);
      expect(fake.dataStarted).toBe(before);
    } finally {
      await small.close();
    }
  });
});
