/**
 * The fuzzer's world: a gateway with an IMAP and a POP3 account on a real Dovecot user, messages with
 * an attachment in INBOX and a second mailbox, and a restore step that puts back what a valid
 * destructive case took away (an account deleted or changed, messages deleted or moved).
 */
import type { FastifyInstance } from 'fastify';
import type { DovecotOps, DovecotUser } from '../support/dovecot.js';
import type { ProvidedDovecot } from '../support/servers.js';
import { imapAccountBody } from '../support/gateway.js';
import { messageWithAttachment, textMessage } from '../support/messages.js';
import type { Fixtures } from './fuzzer.js';

const IMAP = 'fz-imap';
const POP3 = 'fz-pop3';

export async function fuzzFixtures(
  app: FastifyInstance,
  dovecot: ProvidedDovecot & Pick<DovecotOps, 'seedMaildir'>,
  user: DovecotUser,
  headers: Record<string, string> = {},
): Promise<Fixtures> {
  const accounts: Record<string, Record<string, unknown>> = {
    [IMAP]: imapAccountBody(dovecot, user, { id: IMAP }),
    [POP3]: { id: POP3, protocol: 'pop3', host: dovecot.host, port: dovecot.pop3Port, security: 'none', username: user.username, password: user.password, tlsVerify: false },
  };
  const valid: Record<string, string[]> = { account: [IMAP, POP3], mailbox: ['INBOX', 'Archive'], id: [], attachmentId: ['2', '1'], destination: ['Archive'] };

  const ensureMessages = async (): Promise<void> => {
    const list = async () =>
      (await app.inject({ url: `/v1/accounts/${IMAP}/mailboxes/INBOX/messages?limit=20`, headers })).json() as { messages?: { id: string }[] };
    if (((await list()).messages?.length ?? 0) < 3) {
      await dovecot.seedMaildir(user.username, [
        textMessage({ subject: 'Fuzz plain' }),
        messageWithAttachment({ subject: 'Fuzz attachment', filename: 'r\u00e9sum\u00e9.pdf', content: Buffer.from('%PDF-1.4 fuzz') }),
        textMessage({ subject: 'Fuzz third' }),
      ]);
    }
    valid.id = ((await list()).messages ?? []).map((m) => m.id);
  };

  const restore = async (): Promise<void> => {
    for (const [id, body] of Object.entries(accounts)) {
      // Put each account back as it was: gone, or changed by a valid PATCH.
      await app.inject({ method: 'DELETE', url: `/v1/accounts/${id}`, headers });
      const res = await app.inject({ method: 'POST', url: '/v1/accounts?verify=false', headers, payload: body });
      if (res.statusCode !== 201) throw new Error(`fuzz fixtures: account ${id} could not be restored: ${res.statusCode} ${res.body}`);
    }
    await app.inject({ method: 'POST', url: `/v1/accounts/${IMAP}/mailboxes`, headers, payload: { path: 'Archive' } });
    await ensureMessages();
  };

  await restore();
  return { valid, restore };
}
