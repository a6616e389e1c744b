/**
 * The IMAP watcher against a real Dovecot: changes made by another client, in INBOX (IDLE) and in
 * other folders (NOTIFY, or LIST-STATUS polls), become the events API.md names, with the ids the
 * REST routes accept. The sink here records in memory; the event log has its own tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImapFlow } from 'imapflow';
import type { AccountWatch } from '../../src/mail/watch.js';
import { RecordingSink } from '../support/recording-sink.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { startDovecot, startDovecotWithoutCondstore, type DovecotServer } from '../support/dovecot.js';
import { createImapAccount, createPop3Account, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

let gw: TestGateway;
let user: DovecotUser;
let account: string;
let other: ImapFlow;

beforeAll(async () => {
  user = await dovecot.createUser('watch');
  await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Already there' })]);
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
  other = directImapClient(dovecot, user);
  await other.connect();
  await other.mailboxCreate('Work');
});
afterAll(async () => {
  await other?.logout().catch(() => undefined);
  await gw?.close();
});

const options = { pollIntervalMs: 500, reconcileIntervalMs: 60_000, pop3PollIntervalMs: 60_000 };

async function watching(sink: RecordingSink): Promise<AccountWatch> {
  const watch = await gw.app.services.mail.watch(account, sink, options);
  // The first look records what is there (no events for it) before changes are reported.
  const deadline = Date.now() + 5000;
  while (!sink.states.has('Work') || !sink.states.has('INBOX')) {
    if (Date.now() > deadline) throw new Error('watcher did not record the mailboxes');
    await new Promise((r) => setTimeout(r, 50));
  }
  return watch;
}

describe('IMAP watchers with EVENTS_WATCH_START_CONCURRENCY=1', () => {
  it('start one after another: each passes its turn on after its first look, and all report changes', async () => {
    const gated = await startGateway({ EVENTS_WATCH_START_CONCURRENCY: '1' });
    const clients: ImapFlow[] = [];
    const watches: AccountWatch[] = [];
    try {
      const users = await Promise.all([0, 1, 2].map((n) => dovecot.createUser(`gate${n}`)));
      const ids = await Promise.all(users.map((u) => createImapAccount(gated.app, dovecot, u)));
      const sinks = ids.map(() => new RecordingSink());
      // One watcher stopped while it waits for its turn frees its place in the line.
      const dropped = await gated.app.services.mail.watch(ids[0]!, new RecordingSink(), options);
      const early = await gated.app.services.mail.watch(ids[1]!, new RecordingSink(), options);
      await early.stop();
      await dropped.stop();
      for (const [n, id] of ids.entries()) watches.push(await gated.app.services.mail.watch(id, sinks[n]!, options));
      // Every one of them takes its first look (one at a time), so none waits for a permit forever.
      await expect.poll(() => sinks.every((sink) => sink.states.has('INBOX')), { timeout: 15_000 }).toBe(true);
      for (const [n, u] of users.entries()) {
        const client = directImapClient(dovecot, u);
        clients.push(client);
        await client.connect();
        await client.append('INBOX', textMessage({ subject: `gated ${n}` }));
      }
      for (const [n, sink] of sinks.entries()) {
        const event = await sink.waitFor((e) => e.type === 'message.new' && e.mailbox === 'INBOX');
        expect((event.fields?.message as { subject: string }).subject).toBe(`gated ${n}`);
      }
    } finally {
      await Promise.all(watches.map((w) => w.stop()));
      for (const client of clients) await client.logout().catch(() => undefined);
      await gated.close();
    }
  }, 40_000);
});

describe('IMAP watcher', () => {
  it('reports what other clients do in INBOX and in another folder, with REST ids', async () => {
    const sink = new RecordingSink();
    const watch = await watching(sink);
    try {
      expect(sink.events).toEqual([]);

      await other.append('INBOX', textMessage({ subject: 'Hello INBOX' }));
      const inboxNew = await sink.waitFor((e) => e.type === 'message.new' && e.mailbox === 'INBOX');
      const summary = inboxNew.fields?.message as { id: string; subject: string };
      expect(summary.subject).toBe('Hello INBOX');
      const got = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${summary.id}` });
      expect(got.statusCode).toBe(200);

      await other.append('Work', textMessage({ subject: 'Hello Work' }));
      const workNew = await sink.waitFor((e) => e.type === 'message.new' && e.mailbox === 'Work');
      expect((workNew.fields?.message as { subject: string }).subject).toBe('Hello Work');
      const workId = (workNew.fields?.message as { id: string }).id;

      await other.mailboxOpen('Work');
      await other.messageFlagsAdd({ all: true }, ['\\Flagged']);
      const updated = await sink.waitFor((e) => e.type === 'message.updated' && e.mailbox === 'Work');
      expect(updated.fields?.flags).toEqual({ added: ['\\Flagged'], removed: [] });

      await other.messageDelete({ all: true });
      const deleted = await sink.waitFor((e) => e.type === 'message.deleted' && e.mailbox === 'Work');
      expect(deleted.fields?.messageId).toBe(workId);

      await other.mailboxOpen('INBOX');
      await other.messageFlagsAdd({ all: true }, ['\\Seen']);
      const inboxSeen = await sink.waitFor((e) => e.type === 'message.updated' && e.mailbox === 'INBOX');
      expect((inboxSeen.fields?.flags as { added: string[] }).added).toEqual(['\\Seen']);

      const mark = sink.events.length;
      await other.mailboxCreate('Projects');
      await sink.waitFor((e) => e.type === 'mailbox.created' && e.mailbox === 'Projects', mark);
      await other.mailboxRename('Projects', 'Projects2');
      const renamed = await sink.waitFor((e) => e.type === 'mailbox.renamed', mark);
      expect(renamed).toMatchObject({ mailbox: 'Projects2', fields: { from: 'Projects' } });
      await other.mailboxDelete('Projects2');
      await sink.waitFor((e) => e.type === 'mailbox.deleted' && e.mailbox === 'Projects2', mark);
    } finally {
      await watch.stop();
    }
  });

  it('reports on start what changed while nobody watched', async () => {
    const sink = new RecordingSink();
    let watch = await watching(sink);
    await watch.stop();
    await other.append('Work', textMessage({ subject: 'While away' }));
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Delivered while away' })]);
    watch = await gw.app.services.mail.watch(account, sink, options);
    try {
      await sink.waitFor((e) => e.type === 'message.new' && (e.fields?.message as { subject: string }).subject === 'While away');
      await sink.waitFor((e) => e.type === 'message.new' && (e.fields?.message as { subject: string }).subject === 'Delivered while away');
    } finally {
      await watch.stop();
    }
  });
});

describe('IMAP watcher on a server without CONDSTORE, QRESYNC, NOTIFY or LIST-STATUS', () => {
  let plain: DovecotServer;
  let plainGw: TestGateway;
  let plainAccount: string;
  let plainOther: ImapFlow;
  beforeAll(async () => {
    plain = await startDovecotWithoutCondstore([{ username: 'plainwatch', password: 'plain-pw' }]);
    await plain.seedMaildir('plainwatch', [textMessage({ subject: 'Old' })]);
    plainGw = await startGateway();
    plainAccount = await createImapAccount(plainGw.app, plain, plain.users[0]!);
    plainOther = directImapClient(plain, plain.users[0]!);
    await plainOther.connect();
    await plainOther.mailboxCreate('Work');
  });
  afterAll(async () => {
    await plainOther?.logout().catch(() => undefined);
    await plainGw?.close();
    await plain?.stop();
  });

  it('finds arrivals, flag changes and expunges by comparing UIDs and flags', async () => {
    const sink = new RecordingSink();
    const watch = await plainGw.app.services.mail.watch(plainAccount, sink, options);
    try {
      await sink.waitForState('Work');
      await plainOther.append('Work', textMessage({ subject: 'Polled' }));
      const arrived = await sink.waitFor((e) => e.type === 'message.new' && e.mailbox === 'Work');
      expect((arrived.fields?.message as { subject: string }).subject).toBe('Polled');
      await plainOther.mailboxOpen('Work');
      await plainOther.messageFlagsAdd({ all: true }, ['$Work']);
      const updated = await sink.waitFor((e) => e.type === 'message.updated' && e.mailbox === 'Work');
      expect(updated.fields?.flags).toEqual({ added: ['$Work'], removed: [] });
      await plainOther.messageDelete({ all: true });
      const deleted = await sink.waitFor((e) => e.type === 'message.deleted' && e.mailbox === 'Work');
      expect(deleted.fields?.messageId).toBe((arrived.fields?.message as { id: string }).id);

      await plainOther.mailboxOpen('INBOX');
      await plainOther.messageFlagsRemove({ all: true }, ['\\Seen']);
      await plainOther.messageFlagsAdd({ all: true }, ['\\Answered']);
      const inbox = await sink.waitFor((e) => e.type === 'message.updated' && e.mailbox === 'INBOX');
      expect((inbox.fields?.flags as { added: string[] }).added).toContain('\\Answered');
    } finally {
      await watch.stop();
    }
  });
});

describe('POP3 watcher', () => {
  it('reports new and deleted messages by UIDL, with POP3 ids', async () => {
    const popUser = await dovecot.createUser('popwatch');
    await dovecot.seedMaildir(popUser.username, [textMessage({ subject: 'First' })]);
    const popAccount = await createPop3Account(gw.app, dovecot, popUser);
    const view = (await gw.app.inject({ url: `/v1/accounts/${popAccount}` })).json();
    expect(view.capabilities).toEqual(['events']);
    const sink = new RecordingSink();
    const watch = await gw.app.services.mail.watch(popAccount, sink, { ...options, pop3PollIntervalMs: 200 });
    try {
      await sink.waitForState('INBOX');
      expect(sink.events).toEqual([]);
      await dovecot.seedMaildir(popUser.username, [textMessage({ subject: 'Second' })]);
      const arrived = await sink.waitFor((e) => e.type === 'message.new');
      const summary = arrived.fields?.message as { id: string; subject: string };
      expect(summary.subject).toBe('Second');
      expect((await gw.app.inject({ url: `/v1/accounts/${popAccount}/mailboxes/INBOX/messages/${summary.id}` })).statusCode).toBe(200);
      await dovecot.doveadm(['expunge', '-u', popUser.username, 'mailbox', 'INBOX', 'all']);
      const first = await sink.waitFor((e) => e.type === 'message.deleted' && e.fields?.messageId !== summary.id);
      await sink.waitFor((e) => e.type === 'message.deleted' && e.fields?.messageId === summary.id);
      expect(first.mailbox).toBe('INBOX');
    } finally {
      await watch.stop();
    }
  });
});

describe('IMAP watcher across a server restart', () => {
  it('stores account.error while the server is down, account.recovered after, and what arrived meanwhile', async () => {
    const own = await startDovecot({ users: [{ username: 'restarted', password: 'restart-pw' }] });
    const ownGw = await startGateway();
    try {
      const ownAccount = await createImapAccount(ownGw.app, own, own.users[0]!);
      const sink = new RecordingSink();
      const watch = await ownGw.app.services.mail.watch(ownAccount, sink, options);
      try {
        await sink.waitForState('INBOX');
        const restarting = own.restart(2500);
        // Dovecot may take a few seconds to stop (it waits for logins in progress).
        const error = await sink.waitFor((e) => e.type === 'account.error', 0, 20_000);
        expect(error.fields).toMatchObject({ code: 'UPSTREAM_ERROR' });
        expect(String(error.fields?.detail)).not.toMatch(/restart-pw/);
        await own.seedMaildir('restarted', [textMessage({ subject: 'Delivered during the restart' })]);
        await restarting;
        const recovered = await sink.waitFor((e) => e.type === 'account.recovered', 0, 20_000);
        expect(recovered.mailbox).toBeNull();
        const arrived = await sink.waitFor((e) => e.type === 'message.new');
        expect((arrived.fields?.message as { subject: string }).subject).toBe('Delivered during the restart');
        // Back-off, not a hot loop: a handful of attempts in the seconds it was down.
        expect(sink.events.filter((e) => e.type === 'account.error')).toHaveLength(1);
      } finally {
        await watch.stop();
      }
    } finally {
      await ownGw.close();
      await own.stop();
    }
  }, 60_000);
});
