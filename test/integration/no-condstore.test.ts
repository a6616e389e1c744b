import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecotWithoutCondstore, type DovecotServer } from '../support/dovecot.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

let dovecot: DovecotServer;
let gw: TestGateway;
let account: string;

beforeAll(async () => {
  // A server that offers neither CONDSTORE nor QRESYNC (as Courier, or Dovecot configured so).
  dovecot = await startDovecotWithoutCondstore([{ username: 'plain', password: 'plain-pw' }]);
  await dovecot.seedMaildir('plain', Array.from({ length: 6 }, (_, i) => textMessage({ subject: `N${i}` })));
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, dovecot.users[0]!);
});
afterAll(async () => {
  await gw?.close();
  await dovecot?.stop();
});

describe('a server without CONDSTORE', () => {
  it('still changes the listing state when a flag on the page changes, and answers 304 only when nothing did', async () => {
    const url = `/v1/accounts/${account}/mailboxes/INBOX/messages?limit=3`;
    const first = await gw.app.inject({ url });
    expect(first.statusCode).toBe(200);
    const etag = first.headers.etag as string;
    expect((await gw.app.inject({ url, headers: { 'if-none-match': etag } })).statusCode).toBe(304);

    const top = first.json().messages[0].uid as number;
    await dovecot.doveadm(['flags', 'add', '-u', 'plain', '\\Flagged', 'mailbox', 'INBOX', 'uid', String(top)]);
    const changed = await gw.app.inject({ url, headers: { 'if-none-match': etag } });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
    expect(changed.json().messages[0].flags).toContain('\\Flagged');
  });

  it('reports no "changes" capability and answers /changes with 422', async () => {
    const view = (await gw.app.inject({ url: `/v1/accounts/${account}` })).json();
    expect(view.capabilities).not.toContain('changes');
    expect(view.capabilities).toContain('move');
    const state = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` })).json().state as string;
    const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/changes?since=${encodeURIComponent(state)}` });
    expect(res.statusCode).toBe(422);
    expect(res.json().code).toBe('NOT_SUPPORTED_BY_PROTOCOL');
  });
});
