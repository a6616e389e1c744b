/**
 * The watcher's folder list does not take a lagging LIST at its word (mailbox-list.ts): Dovecot's
 * list index shows a just-deleted mailbox for a while (with `* NO` where its STATUS should be) and
 * may leave out one that exists. A scripted server shows both on cue; imapflow talks to it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { listChecked } from '../../src/mail/imap/watch/mailbox-list.js';
import { startFakeImap, type FakeImap } from '../support/fake-imap.js';
import { directImapClient } from '../support/imap-client.js';

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0)) await thing.close();
});

const STATUS = {
  INBOX: '(MESSAGES 2 UIDNEXT 3 UIDVALIDITY 10)',
  Work: '(MESSAGES 1 UIDNEXT 5 UIDVALIDITY 11)',
  Kept: '(MESSAGES 0 UIDNEXT 1 UIDVALIDITY 12)',
};

async function listedBy(folders: { listed: string[]; status: Record<string, string> }, known: string[]) {
  const fake: FakeImap = await startFakeImap({ permanentFlags: '\\*', uidValidity: 1, folders });
  opened.push(fake);
  const client = directImapClient({ host: fake.host, imapPort: fake.port }, { username: 'alice', password: 'secret' });
  await client.connect();
  opened.push({ close: () => client.logout().catch(() => undefined) });
  return { listed: await listChecked(client, known), commands: fake.commands };
}

describe('the folder list a watcher compares', () => {
  it('drops a listed mailbox whose STATUS the server refuses, and keeps the others with their states', async () => {
    const { listed } = await listedBy(
      {
        listed: [
          '* LIST (\\HasNoChildren) "/" Renamed',
          "* NO Mailbox doesn't exist: Renamed",
          '* LIST (\\HasNoChildren) "/" Work',
          `* STATUS Work ${STATUS.Work}`,
          '* LIST (\\HasNoChildren) "/" INBOX',
          `* STATUS INBOX ${STATUS.INBOX}`,
        ],
        status: { INBOX: STATUS.INBOX, Work: STATUS.Work },
      },
      ['INBOX', 'Work', 'Renamed'],
    );
    expect(listed.map((m) => m.path).sort()).toEqual(['INBOX', 'Work']);
    expect(listed.find((m) => m.path === 'Work')?.state).toEqual({ uidValidity: '11', uidNext: 5, highestModseq: null, messages: 1 });
  });

  it('asks for the STATUS of a stored mailbox the LIST left out, and keeps it when it answers', async () => {
    const { listed, commands } = await listedBy(
      {
        listed: ['* LIST (\\HasNoChildren) "/" INBOX', `* STATUS INBOX ${STATUS.INBOX}`],
        status: { INBOX: STATUS.INBOX, Kept: STATUS.Kept },
      },
      ['INBOX', 'Kept', 'Gone'],
    );
    expect(listed.map((m) => m.path).sort()).toEqual(['INBOX', 'Kept']);
    expect(listed.find((m) => m.path === 'Kept')?.state).toEqual({ uidValidity: '12', uidNext: 1, highestModseq: null, messages: 0 });
    expect(commands.filter((c) => c.startsWith('STATUS')).map((c) => c.split(' ')[1])).toEqual(['Kept', 'Gone']);
  });
});
