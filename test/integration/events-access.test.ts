/**
 * Who may follow an account's live events, against real Dovecot watchers (issue 12, point 8): a
 * token with the `events` scope for one account streams that account, and `/v1/events` without
 * `accounts` streams only its accounts.
 */
import { randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem } from '../support/assertions.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { firstLiveEvent, LiveEventsKit, refusal, subjectOf, waitForEvent } from '../support/live-stream.js';
import { textMessage } from '../support/messages.js';
import { testServers } from '../support/servers.js';
import { openStream } from '../support/sse-client.js';

const { dovecot } = testServers();
const ADMIN = `admin-${randomBytes(16).toString('hex')}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const kit = new LiveEventsKit(dovecot, admin);

/** The accounts a /v1/events cursor (`c1.` + base64url(deflate-raw(JSON))) names. */
function cursorAccounts(cursor: string): string[] {
  expect(cursor.startsWith('c1.')).toBe(true);
  return Object.keys(JSON.parse(inflateRawSync(Buffer.from(cursor.slice(3), 'base64url')).toString('utf8')) as object).sort();
}

describe('event streams with an access token', () => {
  let gw: TestGateway;
  let base: string;
  const run = randomBytes(3).toString('hex');
  const alice = `alice-${run}`;
  const bob = `bob-${run}`;
  let aliceMail: ImapFlow;
  let bobMail: ImapFlow;
  beforeAll(async () => {
    gw = await startGateway({ API_KEYS: ADMIN, EVENTS_POLL_INTERVAL_MS: '500', EVENTS_STREAM_POLL_INTERVAL_MS: '500' });
    base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
    const aliceUser = await dovecot.createUser('evalice');
    const bobUser = await dovecot.createUser('evbob');
    await kit.addAccount(gw, aliceUser, alice);
    await kit.addAccount(gw, bobUser, bob);
    aliceMail = await kit.mailClient(aliceUser);
    bobMail = await kit.mailClient(bobUser);
  });
  afterAll(async () => {
    await kit.close();
    await gw?.close();
  });

  it('stream the accounts of the token only: its account on its own route, and only its accounts on /v1/events', { timeout: 60_000 }, async () => {
    const res = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { accounts: [alice], scopes: ['events'] } });
    expect(res.statusCode, res.body).toBe(201);
    const { token } = res.json() as { token: string };
    const own = await kit.open(`${base}/v1/accounts/${alice}/events`, bearer(token));
    expectProblem(await refusal(openStream(`${base}/v1/accounts/${bob}/events`, bearer(token))), 404, 'ACCOUNT_NOT_FOUND');
    // Watched (alice for the token's stream, bob for an admin's) and past the first look.
    await firstLiveEvent(own, aliceMail);
    const everything = await kit.open(`${base}/v1/events`);
    const bobsOwn = await kit.open(`${base}/v1/accounts/${bob}/events`);
    await firstLiveEvent(bobsOwn, bobMail);

    const mine = await kit.open(`${base}/v1/events`, bearer(token));
    await bobMail.append('INBOX', textMessage({ subject: 'For Bob' }));
    await waitForEvent(everything, (d) => subjectOf(d) === 'For Bob', "bob's change on the admin's stream");
    await aliceMail.append('INBOX', textMessage({ subject: 'For Alice' }));
    await waitForEvent(own, (d) => subjectOf(d) === 'For Alice', "alice's change on her account's stream");
    const got = await waitForEvent(mine, (d) => subjectOf(d) === 'For Alice', "alice's change on the token's /v1/events");
    expect(got.account).toBe(alice);
    expect(new Set(mine.events.map((e) => (JSON.parse(e.data) as { account: string }).account))).toEqual(new Set([alice]));
    // The stream follows alice alone: its cursor names her and nobody else (the admin's names both).
    expect(cursorAccounts(mine.events.at(-1)!.lastEventId)).toEqual([alice]);
    expect(cursorAccounts(everything.events.at(-1)!.lastEventId)).toEqual(expect.arrayContaining([alice, bob]));
  });
});
