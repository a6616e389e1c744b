/**
 * Issue 12, point 8: "the gateway killed and restarted with changes made meanwhile", as one
 * scenario that test files run in the embedded setup and with Redis. A gateway process watches an
 * account for a client's event stream and is SIGKILLed; another mail client appends, flags and
 * expunges in INBOX and in another folder; the gateway starts again with the same environment (the
 * same DATA_DIR and SECRET_KEY, or the same Redis), and the client resumes with Last-Event-ID. What
 * it relies on: exactly the changes made meanwhile, each once, in the log's order, nothing from
 * before its resume point, with ids the REST routes accept.
 */
import { expect } from 'vitest';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.js';
import { directImapClient } from './imap-client.js';
import { data, describeEvent, firstLiveEvent, subjectOf, waitForEvent } from './live-stream.js';
import { textMessage } from './messages.js';
import type { DovecotOps, ProvidedDovecot } from './servers.js';
import { connect, type SseClient } from './sse-client.js';

async function json<T>(base: string, url: string): Promise<T> {
  const res = await fetch(`${base}${url}`);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Subject → gateway message id of a mailbox's messages. */
export async function messageIds(base: string, account: string, mailbox: string): Promise<Map<string, string>> {
  const page = await json<{ messages: Array<{ id: string; subject: string }> }>(base, `/v1/accounts/${account}/mailboxes/${mailbox}/messages?limit=100`);
  return new Map(page.messages.map((m) => [m.subject, m.id]));
}

/** Registers an IMAP account for `user` through a gateway process's API. */
export async function createAccountOver(base: string, dovecot: ProvidedDovecot, user: { username: string; password: string }): Promise<string> {
  const res = await fetch(`${base}/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, security: 'none', username: user.username, password: user.password }),
  });
  if (res.status !== 201) throw new Error(`account create failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export async function killAndRestartScenario(dovecot: ProvidedDovecot & DovecotOps, env: Record<string, string>): Promise<void> {
  const user = await dovecot.createUser('restart');
  await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Keep' }), textMessage({ subject: 'Flag in INBOX' }), textMessage({ subject: 'Expunge from INBOX' })]);
  await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Flag in Work' }), textMessage({ subject: 'Expunge from Work' })], { mailbox: 'Work' });
  const other = directImapClient(dovecot, user);
  await other.connect();
  let gateway: GatewayProcess | undefined = await startGatewayProcess(env);
  const streams: SseClient[] = [];
  try {
    const account = await createAccountOver(gateway.base, dovecot, user);
    const inboxIds = await messageIds(gateway.base, account, 'INBOX');
    const workIds = await messageIds(gateway.base, account, 'Work');

    const first = await connect(`${gateway.base}/v1/accounts/${account}/events`);
    streams.push(first);
    const seen = await firstLiveEvent(first, other);
    expect(seen).toMatchObject({ type: 'message.new', mailbox: 'INBOX', account });

    await gateway.kill();
    expect(await first.ended).toBe('aborted');
    gateway = undefined;

    // Another client changes both folders while no gateway runs.
    await other.append('INBOX', textMessage({ subject: 'New in INBOX' }));
    await other.append('Work', textMessage({ subject: 'New in Work' }));
    for (const mailbox of ['INBOX', 'Work']) {
      const lock = await other.getMailboxLock(mailbox);
      try {
        const flag = (await other.search({ subject: `Flag in ${mailbox}` }, { uid: true })) as number[];
        const expunge = (await other.search({ subject: `Expunge from ${mailbox}` }, { uid: true })) as number[];
        expect(flag).toHaveLength(1);
        expect(expunge).toHaveLength(1);
        await other.messageFlagsAdd(flag, ['\\Flagged'], { uid: true });
        await other.messageDelete(expunge, { uid: true });
      } finally {
        lock.release();
      }
    }

    gateway = await startGatewayProcess(env);
    const resumed = await connect(`${gateway.base}/v1/accounts/${account}/events`, { 'last-event-id': seen.id });
    streams.push(resumed);
    const expected = [
      'message.new INBOX New in INBOX',
      'message.updated INBOX Flag in INBOX +\\Flagged -',
      `message.deleted INBOX ${inboxIds.get('Expunge from INBOX')}`,
      'message.new Work New in Work',
      'message.updated Work Flag in Work +\\Flagged -',
      `message.deleted Work ${workIds.get('Expunge from Work')}`,
    ];
    for (const line of expected) await waitForEvent(resumed, (d) => describeEvent(d) === line, line);
    // A live change after them in each folder: once these are in, whatever the restart reported
    // (a repeat included) is in too.
    await other.append('INBOX', textMessage({ subject: 'After INBOX' }));
    await other.append('Work', textMessage({ subject: 'After Work' }));
    await waitForEvent(resumed, (d) => subjectOf(d) === 'After INBOX', 'the INBOX change after the restart');
    await waitForEvent(resumed, (d) => subjectOf(d) === 'After Work', 'the Work change after the restart');

    const events = resumed.events.map(data);
    const during = events.filter((d) => !['After INBOX', 'After Work'].includes(subjectOf(d) ?? ''));
    expect(during.map(describeEvent).sort()).toEqual([...expected].sort());
    expect(events.every((d) => d.account === account)).toBe(true);
    // In the log's order, each once, all after the resume point; each SSE id is the event's own.
    const ids = events.map((d) => d.id);
    expect(ids.every((id, i) => i === 0 || compareEventIds(ids[i - 1]!, id) < 0)).toBe(true);
    expect(compareEventIds(seen.id, ids[0]!)).toBeLessThan(0);
    expect(resumed.events.map((e) => e.lastEventId)).toEqual(ids);
    // The ids the events name are those the REST routes accept.
    const added = events.find((d) => describeEvent(d) === 'message.new Work New in Work')!;
    const read = await json<{ subject: string }>(gateway.base, `/v1/accounts/${account}/mailboxes/Work/messages/${(added.message as { id: string }).id}`);
    expect(read.subject).toBe('New in Work');
  } catch (err) {
    if (gateway) (err as Error).message += `\n--- gateway output ---\n${gateway.output()}`;
    throw err;
  } finally {
    for (const stream of streams) stream.close();
    await other.logout().catch(() => undefined);
    await gateway?.stop();
  }
}
