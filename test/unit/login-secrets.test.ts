/**
 * What a careless server echoes of the login exchange (some answer a refused LOGIN with the command
 * line they got, credentials included) stays out of every log line, at trace too, and out of every
 * response. A scripted IMAP server echoes; the POP3 answer is given to the mapper directly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { errorForReply } from '../../src/mail/pop3/errors.js';
import { startFakeImap, type FakeImap } from '../support/fake-imap.js';
import { startGateway, type TestGateway } from '../support/gateway.js';

const PASSWORD = 'hunter2-Secret-9c1f';

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0)) await thing.close();
});

async function echoingServer(answer: (tag: string, args: string) => string[]): Promise<FakeImap> {
  const fake = await startFakeImap({ permanentFlags: '\\Seen \\*', uidValidity: 7, loginAnswer: answer });
  opened.push(fake);
  return fake;
}

async function tracingGateway(): Promise<TestGateway> {
  const gw = await startGateway({ LOG_LEVEL: 'trace' }, { captureLogs: true });
  opened.push(gw);
  return gw;
}

function account(fake: FakeImap): Record<string, unknown> {
  return { protocol: 'imap', host: fake.host, port: fake.port, security: 'none', username: 'alice', password: PASSWORD };
}

describe('the login exchange in logs and responses', () => {
  it('keeps an echoed password out of the trace log and the answer when the server refuses the login', async () => {
    const fake = await echoingServer((tag, args) => [`${tag} NO [UNAVAILABLE] Backend down for LOGIN ${args}`]);
    const gw = await tracingGateway();
    const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: account(fake) });
    expect(res.statusCode, res.body).toBe(502);
    expect(res.body).not.toContain(PASSWORD);
    expect(gw.logs.length).toBeGreaterThan(0);
    // The exchange was logged at trace (the test would pass vacuously otherwise) ...
    expect(gw.logs.some((line) => line.includes('"component":"imapflow"'))).toBe(true);
    // ... but never the password, in clear or in the base64 a SASL PLAIN response would carry.
    for (const line of gw.logs) {
      expect(line).not.toContain(PASSWORD);
      expect(line).not.toContain(Buffer.from(`\u0000alice\u0000${PASSWORD}`).toString('base64'));
    }
  });

  it('keeps it out of the trace log when the server echoes it in a successful login, and logs later commands', async () => {
    const fake = await echoingServer((tag, args) => [`${tag} OK Logged in with ${args}`]);
    const gw = await tracingGateway();
    const res = await gw.app.inject({ method: 'POST', url: '/v1/accounts', payload: account(fake) });
    expect(res.statusCode, res.body).toBe(201);
    const id = (res.json() as { id: string }).id;
    await gw.app.inject({ url: `/v1/accounts/${id}/mailboxes` });
    for (const line of gw.logs) expect(line).not.toContain(PASSWORD);
    // Once logged in, the session's exchange is logged at debug as before.
    expect(gw.logs.some((line) => line.includes('"src":"s"') && line.includes('LIST'))).toBe(true);
  });

  it('POP3: a refused PASS or AUTH never carries the server text into the detail, whatever the response code', () => {
    for (const code of [null, 'AUTH', 'IN-USE', 'LOGIN-DELAY', 'SYS/TEMP', 'SYS/PERM']) {
      for (const command of ['PASS', 'AUTH']) {
        const err = errorForReply(command, { kind: 'err', code, text: `cannot check PASS ${PASSWORD}` }, { login: true });
        expect(err.message, `${command} ${code}`).not.toContain(PASSWORD);
        expect(err.serverText).not.toContain(PASSWORD);
      }
    }
    // Outside the login the server's words stay in the detail: they help.
    expect(errorForReply('RETR', { kind: 'err', code: null, text: 'no such message' }).message).toContain('no such message');
  });
});
