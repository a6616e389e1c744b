/**
 * The IMAP watcher against a real Dovecot: changes made by another client, in INBOX (IDLE) and in
 * other folders (NOTIFY, or LIST-STATUS polls), become the events API.md names, with the ids the
 * REST routes accept. The sink here records in memory; the event log has its own tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImapFlow } from 'imapflow';
import type { MailboxWatchState, NewEvent, WatchStateChange } from '../../src/events/types.js';
import type { AccountWatch, WatchSink } from '../../src/mail/watch.js';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

/** A sink that keeps what the watcher records, as a log would, and lets a test wait for events. */
class RecordingSink implements WatchSink {
  events: NewEvent[] = [];
  states = new Map<string, MailboxWatchState>();
  messages = new Map<string, Map<string, string[]>>();
  private waiters: Array<() => void> = [];

  async record(events: NewEvent[], changes: WatchStateChange[]): Promise<void> {
    this.events.push(...events);
    for (const c of changes) {
      if (c.state === null) {
        this.states.delete(c.mailbox);
        this.messages.delete(c.mailbox);
        continue;
      }
      this.states.set(c.mailbox, c.state);
      const m = c.replace ? new Map<string, string[]>() : (this.messages.get(c.mailbox) ?? new Map());
      for (const [k, f] of c.set ?? []) m.set(k, f);
      for (const k of c.remove ?? []) m.delete(k);
      this.messages.set(c.mailbox, m);
    }
    for (const w of this.waiters.splice(0)) w();
  }
  async loadStates() {
    return new Map(this.states);
  }
  async loadMessages(mailbox: string) {
    return new Map(this.messages.get(mailbox) ?? []);
  }
  /** Resolves with the first recorded event (from `from` on) matching, or rejects after `ms`. */
  async waitFor(match: (e: NewEvent) => boolean, from = 0, ms = 8000): Promise<NewEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching event; got ${JSON.stringify(this.events.slice(from).map((e) => [e.type, e.mailbox]))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
}

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
