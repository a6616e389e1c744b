/**
 * More of the IMAP write path against the real Dovecot of the run (write-path.test.ts has the basics):
 * writes racing on one message, a move while the source is paged, APPEND of the whole corpus read
 * back raw, mailbox management with nested and non-ASCII names, every listing filter against a
 * reference model, writes seen through a second gateway sharing the same Redis, and (on a scripted
 * fake, the one fault Dovecot cannot show) a keyword the mailbox's PERMANENTFLAGS refuse.
 */
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import type { ImapFlow } from 'imapflow';
import { directImapClient } from '../support/imap-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImapMessageId, encodeImapMessageId } from '../../src/mail/message-id.js';
import { corpusFiles, readCorpus } from '../support/corpus.js';
import { startFakeImap } from '../support/fake-imap.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { crlf, textMessage } from '../support/messages.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();

interface Summary {
  id: string;
  uid: number;
  subject: string | null;
  messageId: string | null;
  flags: string[];
  seen: boolean;
  flagged: boolean;
  size: number;
  receivedAt: string | null;
}
interface Page {
  messages: Summary[];
  nextCursor: string | null;
  total: number;
  state: string;
}
interface Problem {
  code: string;
  status: number;
  detail: string;
}
interface MailboxJson {
  path: string;
  name: string;
  delimiter: string | null;
  parent: string | null;
  flags: string[];
}
type Reply = LightMyRequestResponse;

function imapClient(user: DovecotUser): ImapFlow {
  return directImapClient(dovecot, user);
}

/** Where doveadm (another client) finds messages with this Message-ID: one row per copy, any mailbox. */
async function whereIs(user: DovecotUser, messageId: string): Promise<Array<{ mailbox: string; uid: string; flags: string }>> {
  const out = await dovecot.doveadm(['-f', 'json', 'fetch', '-u', user.username, 'mailbox uid flags', 'header', 'message-id', messageId]);
  return out.trim() === '' ? [] : (JSON.parse(out) as Array<{ mailbox: string; uid: string; flags: string }>);
}

/** The gateway's routes for one account on one gateway. */
function routes(gw: TestGateway, account: string) {
  const box = (mailbox: string): string => `/v1/accounts/${account}/mailboxes/${encodeURIComponent(mailbox)}`;
  const msg = (mailbox: string, id: string): string => `${box(mailbox)}/messages/${id}`;
  return {
    box,
    msg,
    /** One page; fails the test on anything but 200. */
    async list(mailbox: string, query = ''): Promise<Page> {
      const res = await gw.app.inject({ url: `${box(mailbox)}/messages?limit=200${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as Page;
    },
    /** Every page, following nextCursor. */
    async listAll(mailbox: string, query: string, limit: number): Promise<{ pages: Page[]; messages: Summary[] }> {
      const pages: Page[] = [];
      let cursor: string | null = null;
      do {
        const cursorParam: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        const res = await gw.app.inject({ url: `${box(mailbox)}/messages?limit=${limit}${query}${cursorParam}` });
        expect(res.statusCode, res.body).toBe(200);
        const page = res.json() as Page;
        pages.push(page);
        cursor = page.nextCursor;
      } while (cursor !== null);
      return { pages, messages: pages.flatMap((p) => p.messages) };
    },
    patch: (mailbox: string, id: string, payload: Record<string, unknown>): Promise<Reply> =>
      gw.app.inject({ method: 'PATCH', url: msg(mailbox, id), payload }),
    move: (mailbox: string, id: string, destination: string): Promise<Reply> =>
      gw.app.inject({ method: 'POST', url: `${msg(mailbox, id)}/move`, payload: { destination } }),
    copy: (mailbox: string, id: string, destination: string): Promise<Reply> =>
      gw.app.inject({ method: 'POST', url: `${msg(mailbox, id)}/copy`, payload: { destination } }),
    remove: (mailbox: string, id: string): Promise<Reply> => gw.app.inject({ method: 'DELETE', url: msg(mailbox, id) }),
    append: (mailbox: string, content: Buffer, query = ''): Promise<Reply> =>
      gw.app.inject({
        method: 'POST',
        url: `${box(mailbox)}/messages${query}`,
        headers: { 'content-type': 'message/rfc822' },
        payload: content,
      }),
    createMailbox: (path: string): Promise<Reply> =>
      gw.app.inject({ method: 'POST', url: `/v1/accounts/${account}/mailboxes`, payload: { path } }),
    patchMailbox: (path: string, payload: Record<string, unknown>): Promise<Reply> =>
      gw.app.inject({ method: 'PATCH', url: box(path), payload }),
    deleteMailbox: (path: string): Promise<Reply> => gw.app.inject({ method: 'DELETE', url: box(path) }),
    async mailboxes(): Promise<MailboxJson[]> {
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes` });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { mailboxes: MailboxJson[] }).mailboxes;
    },
  };
}

const problem = (res: Reply): Problem => res.json() as Problem;

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway();
});

afterAll(async () => {
  await gw?.close();
});

describe('writes racing on one message', () => {
  let user: DovecotUser;
  let api: ReturnType<typeof routes>;
  const ROUNDS = 12;

  beforeAll(async () => {
    user = await dovecot.createUser('race');
    const messages = [];
    for (let i = 0; i < 200; i++) messages.push(textMessage({ subject: `Race ${i}`, messageId: `<race-${i}@mailgw.test>` }));
    await dovecot.seedMaildir(user.username, messages);
    api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    for (const path of ['RaceA', 'RaceB']) expect((await api.createMailbox(path)).statusCode).toBe(201);
  });

  /** Takes the next `n` messages of INBOX no earlier test has touched. */
  let taken = 0;
  async function fresh(n: number): Promise<Summary[]> {
    const page = await api.list('INBOX');
    const byNumber = new Map(page.messages.map((m) => [Number(/Race (\d+)/.exec(m.subject ?? '')?.[1]), m]));
    const out: Summary[] = [];
    for (let i = 0; i < n; i++) out.push(byNumber.get(taken++)!);
    return out;
  }

  it('two PATCHes at once (seen and flagged, two keywords) both land', async () => {
    for (const message of await fresh(ROUNDS)) {
      const replies = await Promise.all([
        api.patch('INBOX', message.id, { seen: true }),
        api.patch('INBOX', message.id, { flagged: true }),
        api.patch('INBOX', message.id, { addFlags: ['$Alpha'] }),
        api.patch('INBOX', message.id, { addFlags: ['$Beta'] }),
      ]);
      for (const res of replies) expect(res.statusCode, res.body).toBe(200);
      const rows = await whereIs(user, message.messageId!);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.flags.split(' ')).toEqual(expect.arrayContaining(['\\Seen', '\\Flagged', '$Alpha', '$Beta']));
      const after = (await gw.app.inject({ url: api.msg('INBOX', message.id) })).json() as Summary;
      expect(after.flags).toEqual(['$Alpha', '$Beta', '\\Flagged', '\\Seen']);
    }
  });

  it('a move and a delete at once: exactly one succeeds, the other is 404, and the message is in one place or gone', async () => {
    for (const [round, message] of (await fresh(ROUNDS)).entries()) {
      // Both orders, the second request a little later in some rounds, so either may win.
      const later = <T>(ms: number, send: () => Promise<T>): Promise<T> =>
        new Promise((resolve, reject) => setTimeout(() => send().then(resolve, reject), ms));
      const delayMs = round % 4;
      const [move, del] =
        round % 2 === 0
          ? await Promise.all([api.move('INBOX', message.id, 'RaceA'), later(delayMs, () => api.remove('INBOX', message.id))])
          : await Promise.all([later(delayMs, () => api.move('INBOX', message.id, 'RaceA')), api.remove('INBOX', message.id)]);
      const rows = await whereIs(user, message.messageId!);
      const statuses = `${move.statusCode}/${del.statusCode}`;
      expect(['200/404', '404/204'], `${statuses} ${move.body} ${del.body}`).toContain(statuses);
      expect(problem(move.statusCode === 404 ? move : del).code).toBe('MESSAGE_NOT_FOUND');
      if (move.statusCode === 200) {
        expect(rows.map((r) => r.mailbox)).toEqual(['RaceA']);
        // Not carrying a \Deleted that a losing DELETE set on the way.
        expect(rows[0]!.flags).not.toContain('\\Deleted');
        // The id the move answered names that copy.
        expect(rows[0]!.uid).toBe(String(decodeImapMessageId((move.json() as { id: string }).id).uid));
      } else {
        expect(rows).toEqual([]);
      }
    }
  });

  it('two deletes, two moves to different mailboxes, a copy and a delete: never both a success that contradicts the other', async () => {
    const [a, b, c, d] = await fresh(4);
    const deletes = await Promise.all([api.remove('INBOX', a!.id), api.remove('INBOX', a!.id)]);
    expect(deletes.map((r) => r.statusCode).sort()).toEqual([204, 404]);
    expect(await whereIs(user, a!.messageId!)).toEqual([]);

    const moves = await Promise.all([api.move('INBOX', b!.id, 'RaceA'), api.move('INBOX', b!.id, 'RaceB')]);
    expect(moves.map((r) => r.statusCode).sort()).toEqual([200, 404]);
    const winner = moves.find((r) => r.statusCode === 200)!.json() as { mailbox: string };
    expect((await whereIs(user, b!.messageId!)).map((r) => r.mailbox)).toEqual([winner.mailbox]);

    // A copy either happens before the delete (a clean copy, no \Deleted) or finds nothing.
    for (const message of [c!, d!]) {
      const [copy, del] = await Promise.all([api.copy('INBOX', message.id, 'RaceB'), api.remove('INBOX', message.id)]);
      expect(del.statusCode, del.body).toBe(204);
      expect([201, 404], copy.body).toContain(copy.statusCode);
      const rows = await whereIs(user, message.messageId!);
      if (copy.statusCode === 201) {
        expect(rows.map((r) => r.mailbox)).toEqual(['RaceB']);
        expect(rows[0]!.flags).not.toContain('\\Deleted');
      } else {
        expect(problem(copy).code).toBe('MESSAGE_NOT_FOUND');
        expect(rows).toEqual([]);
      }
    }
  });

  it('a move racing another client that expunges the message answers 200 or 404, never 5xx', async () => {
    const other = imapClient(user);
    await other.connect();
    try {
      await other.mailboxOpen('INBOX');
      for (const message of await fresh(ROUNDS * 2)) {
        const [move] = await Promise.all([api.move('INBOX', message.id, 'RaceB'), other.messageDelete(String(message.uid), { uid: true })]);
        expect([200, 404], move.body).toContain(move.statusCode);
        const rows = await whereIs(user, message.messageId!);
        if (move.statusCode === 200) {
          // The other client's \Deleted may have travelled with it (it flagged before the MOVE): still one copy.
          expect(rows.map((r) => r.mailbox)).toEqual(['RaceB']);
          expect(rows.length).toBe(1);
        } else {
          expect(problem(move).code).toBe('MESSAGE_NOT_FOUND');
          expect(rows).toEqual([]);
        }
      }
    } finally {
      await other.logout().catch(() => other.close());
    }
  });

  it('a PATCH racing a delete answers 200 or 404, never 5xx', async () => {
    for (const message of await fresh(ROUNDS)) {
      const [patch, del] = await Promise.all([api.patch('INBOX', message.id, { flagged: true }), api.remove('INBOX', message.id)]);
      expect(del.statusCode, del.body).toBe(204);
      expect([200, 404], patch.body).toContain(patch.statusCode);
      if (patch.statusCode === 404) expect(problem(patch).code).toBe('MESSAGE_NOT_FOUND');
      expect(await whereIs(user, message.messageId!)).toEqual([]);
    }
  });
});

describe('pooled sessions that have not yet heard of a change made on another session', () => {
  // Dovecot answers a UID FETCH of a message another session expunged from its cache (and tells of the
  // EXPUNGE only afterwards), and does not show a message another session added until the next sync.
  let user: DovecotUser;
  let api: ReturnType<typeof routes>;
  let other: ImapFlow;

  beforeAll(async () => {
    user = await dovecot.createUser('stale');
    await dovecot.seedMaildir(
      user.username,
      Array.from({ length: 8 }, (_, i) => textMessage({ subject: `Stale ${i}`, messageId: `<stale-${i}@mailgw.test>` })),
    );
    api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    for (const path of ['Aside', 'Fresh']) expect((await api.createMailbox(path)).statusCode).toBe(201);
    other = imapClient(user);
    await other.connect();
    await other.mailboxOpen('INBOX');
  });

  afterAll(async () => {
    await other?.logout().catch(() => other.close());
  });

  async function byMessageId(): Promise<Map<string, Summary>> {
    return new Map((await api.list('INBOX')).messages.map((m) => [m.messageId!, m]));
  }

  it('a delete, move, copy or PATCH of a message another client just moved or expunged is 404, and changes nothing', async () => {
    // The listing leaves the gateway's session with INBOX selected; the other client then acts.
    const before = await byMessageId();
    await other.messageMove(String(before.get('<stale-0@mailgw.test>')!.uid), 'Aside', { uid: true });
    for (const n of [1, 2, 3]) await other.messageDelete(String(before.get(`<stale-${n}@mailgw.test>`)!.uid), { uid: true });

    const del = await api.remove('INBOX', before.get('<stale-0@mailgw.test>')!.id);
    expect(del.statusCode, del.body).toBe(404);
    expect(problem(del).code).toBe('MESSAGE_NOT_FOUND');
    const aside = await whereIs(user, '<stale-0@mailgw.test>');
    expect(aside.map((r) => r.mailbox)).toEqual(['Aside']);
    expect(aside[0]!.flags).not.toContain('\\Deleted');

    const replies = [
      await api.move('INBOX', before.get('<stale-1@mailgw.test>')!.id, 'Fresh'),
      await api.copy('INBOX', before.get('<stale-2@mailgw.test>')!.id, 'Fresh'),
      await api.patch('INBOX', before.get('<stale-3@mailgw.test>')!.id, { flagged: true }),
    ];
    for (const res of replies) {
      expect(res.statusCode, res.body).toBe(404);
      expect(problem(res).code).toBe('MESSAGE_NOT_FOUND');
    }
    for (const n of [1, 2, 3]) expect(await whereIs(user, `<stale-${n}@mailgw.test>`)).toEqual([]);
  });

  it('a raw download or GET of a message another client just expunged is 404', async () => {
    // A second account for the same user: a pool of its own, whose one session has INBOX selected.
    const own = routes(gw, await createImapAccount(gw.app, dovecot, user));
    const victim = new Map((await own.list('INBOX')).messages.map((m) => [m.messageId!, m])).get('<stale-4@mailgw.test>')!;
    await other.messageDelete(String(victim.uid), { uid: true });
    for (const url of [`${own.msg('INBOX', victim.id)}/raw`, own.msg('INBOX', victim.id)]) {
      const res = await gw.app.inject({ url });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(404);
      expect(problem(res).code).toBe('MESSAGE_NOT_FOUND');
    }
  });

  it('a listing after another client added one message and expunged another shows both changes, with a new ETag', async () => {
    // A user of its own, so the gateway holds exactly one session, with INBOX selected by the listing.
    const own = await dovecot.createUser('balance');
    await dovecot.seedMaildir(own.username, [textMessage({ subject: 'Keep' }), textMessage({ subject: 'Drop' })]);
    const ownApi = routes(gw, await createImapAccount(gw.app, dovecot, own));
    const first = await gw.app.inject({ url: `${ownApi.box('INBOX')}/messages` });
    const drop = (first.json() as Page).messages.find((m) => m.subject === 'Drop')!;
    const client = imapClient(own);
    await client.connect();
    try {
      // EXISTS ends where it was; only UIDNEXT and HIGHESTMODSEQ tell, and a NOOP reports neither.
      await client.append('INBOX', textMessage({ subject: 'Arrived' }));
      await client.mailboxOpen('INBOX');
      await client.messageDelete(String(drop.uid), { uid: true });
    } finally {
      await client.logout();
    }
    const conditional = await gw.app.inject({ url: `${ownApi.box('INBOX')}/messages`, headers: { 'if-none-match': first.headers.etag as string } });
    expect(conditional.statusCode).toBe(200);
    expect(conditional.headers.etag).not.toBe(first.headers.etag);
    expect((conditional.json() as Page).messages.map((m) => m.subject)).toEqual(['Arrived', 'Keep']);
    expect((await ownApi.list('INBOX')).messages.map((m) => m.subject)).toEqual(['Arrived', 'Keep']);
  });

  it('the id an append answers can be read at once', async () => {
    // A pool of its own with two sessions, both with INBOX selected; the APPEND goes through one.
    const own = routes(gw, await createImapAccount(gw.app, dovecot, user));
    await Promise.all([own.list('INBOX'), own.list('INBOX')]);
    for (let i = 0; i < 3; i++) {
      const added = await own.append('INBOX', textMessage({ subject: `Appended ${i}` }));
      expect(added.statusCode, added.body).toBe(201);
      const { id } = added.json() as { id: string };
      const [view, raw] = await Promise.all([
        gw.app.inject({ url: own.msg('INBOX', id) }),
        gw.app.inject({ url: `${own.msg('INBOX', id)}/raw` }),
      ]);
      expect(view.statusCode, view.body).toBe(200);
      expect((view.json() as Summary).subject).toBe(`Appended ${i}`);
      expect(raw.statusCode, raw.body).toBe(200);
      expect(raw.rawPayload.toString('utf8')).toContain(`Subject: Appended ${i}`);
    }
  });

  it('the id a move or copy answers can be read at once, also on a session that had the destination selected', async () => {
    // A pool of its own with two sessions: one with Fresh selected (it has not seen what arrives
    // next), one with INBOX, which the move and the copy use.
    const own = routes(gw, await createImapAccount(gw.app, dovecot, user));
    const [, inbox] = await Promise.all([own.list('Fresh'), own.list('INBOX')]);
    const source = new Map(inbox.messages.map((m) => [m.messageId!, m]));
    const moved = await own.move('INBOX', source.get('<stale-5@mailgw.test>')!.id, 'Fresh');
    expect(moved.statusCode, moved.body).toBe(200);
    const copied = await own.copy('INBOX', source.get('<stale-6@mailgw.test>')!.id, 'Fresh');
    expect(copied.statusCode, copied.body).toBe(201);
    for (const [res, subject] of [[moved, 'Stale 5'], [copied, 'Stale 6']] as const) {
      const id = (res.json() as { id: string }).id;
      const view = await gw.app.inject({ url: own.msg('Fresh', id) });
      expect(view.statusCode, view.body).toBe(200);
      expect((view.json() as Summary).subject).toBe(subject);
      const raw = await gw.app.inject({ url: `${own.msg('Fresh', id)}/raw` });
      expect(raw.statusCode, raw.body).toBe(200);
      expect(raw.rawPayload.toString('utf8')).toContain(`Subject: ${subject}`);
      const patched = await own.patch('Fresh', id, { seen: true });
      expect(patched.statusCode, patched.body).toBe(200);
    }
  });
});

describe('a move while the source is being paged', () => {
  let user: DovecotUser;
  let api: ReturnType<typeof routes>;

  beforeAll(async () => {
    user = await dovecot.createUser('paging');
    const make = (box: string, n: number) =>
      Array.from({ length: n }, (_, i) => textMessage({ subject: `${box} ${String(i + 1).padStart(2, '0')}`, messageId: `<${box}-${i + 1}@mailgw.test>` }));
    await dovecot.seedMaildir(user.username, make('Plain', 30), { mailbox: 'Plain' });
    await dovecot.seedMaildir(user.username, make('Filtered', 30), { mailbox: 'Filtered' });
    await dovecot.seedMaildir(user.username, make('Busy', 60), { mailbox: 'Busy' });
    api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    for (const path of ['MovedPlain', 'MovedFiltered', 'MovedBusy']) expect((await api.createMailbox(path)).statusCode).toBe(201);
  });

  it.each([
    { box: 'Plain', query: '' },
    { box: 'Filtered', query: '&subject=Filtered' },
  ])('$box: the cursor neither repeats nor skips a message that stayed; the moved ones are in the destination', async ({ box, query }) => {
    const destination = `Moved${box}`;
    const url = (cursor?: string) =>
      `${api.box(box)}/messages?limit=7${query}${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const first = (await gw.app.inject({ url: url() })).json() as Page;
    expect(first.messages.map((m) => m.subject)).toEqual(Array.from({ length: 7 }, (_, i) => `${box} ${30 - i}`));
    const all = (await api.list(box, query)).messages;
    const bySubject = new Map(all.map((m) => [m.subject!, m]));
    // Moved: the anchor of the cursor (last of page 1), one already seen, and one not reached yet.
    const moved = [`${box} 24`, `${box} 28`, `${box} 10`];
    const newIds = new Map<string, string>();
    for (const subject of moved) {
      const res = await api.move(box, bySubject.get(subject)!.id, destination);
      expect(res.statusCode, res.body).toBe(200);
      newIds.set(subject, (res.json() as { id: string }).id);
    }
    const seen = [...first.messages];
    let cursor = first.nextCursor;
    while (cursor !== null) {
      const res = await gw.app.inject({ url: url(cursor) });
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json() as Page;
      expect(page.total).toBe(27);
      seen.push(...page.messages);
      cursor = page.nextCursor;
    }
    const expected = Array.from({ length: 30 }, (_, i) => `${box} ${String(30 - i).padStart(2, '0')}`).filter((s) => s !== `${box} 10`);
    expect(seen.map((m) => m.subject)).toEqual(expected);
    const uids = seen.map((m) => m.uid);
    expect(uids).toEqual([...uids].sort((a, b) => b - a));

    const there = await api.list(destination);
    expect(there.total).toBe(3);
    expect(Object.fromEntries(there.messages.map((m) => [m.subject, m.id]))).toEqual(Object.fromEntries(newIds));
  });

  it('moves running while the mailbox is paged: every page 200, no repeats, everything that stayed listed once', async () => {
    const all = (await api.list('Busy')).messages;
    const moving = all.filter((_, i) => i % 3 === 1);
    const staying = new Set(all.filter((_, i) => i % 3 !== 1).map((m) => m.uid));
    const mover = (async () => {
      for (const message of moving) {
        const res = await api.move('Busy', message.id, 'MovedBusy');
        expect(res.statusCode, res.body).toBe(200);
      }
    })();
    const pager = (async () => {
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const cursorParam: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        const res = await gw.app.inject({ url: `${api.box('Busy')}/messages?limit=4${cursorParam}` });
        expect(res.statusCode, res.body).toBe(200);
        const page = res.json() as Page;
        seen.push(...page.messages.map((m) => m.uid));
        cursor = page.nextCursor;
      } while (cursor !== null);
      return seen;
    })();
    const [, seen] = await Promise.all([mover, pager]);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    for (const uid of staying) expect(seen, `uid ${uid}`).toContain(uid);
    expect((await api.list('MovedBusy')).total).toBe(moving.length);
    expect((await api.list('Busy')).total).toBe(staying.size);
  });
});

describe('APPEND of every corpus message, read back raw', () => {
  const files = corpusFiles();
  let api: ReturnType<typeof routes>;
  const appended = new Map<string, string>();

  beforeAll(async () => {
    expect(files.length).toBeGreaterThan(100);
    const user = await dovecot.createUser('append');
    api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    expect((await api.createMailbox('Corpus')).statusCode).toBe(201);
    for (const file of files) {
      const res = await api.append('Corpus', readCorpus(file));
      expect(res.statusCode, `${file}: ${res.body}`).toBe(201);
      appended.set(file, (res.json() as { id: string }).id);
    }
  }, 120_000);

  it('serves every message as sent, except that Dovecot turns each bare LF into CRLF', async () => {
    const listed = new Map((await api.list('Corpus')).messages.map((m) => [m.id, m]));
    const verbatim: string[] = [];
    const normalised: string[] = [];
    const wrong: string[] = [];
    for (const file of files) {
      const sent = readCorpus(file);
      const id = appended.get(file)!;
      const raw = await gw.app.inject({ url: `${api.msg('Corpus', id)}/raw` });
      expect(raw.statusCode, file).toBe(200);
      expect(Number(raw.headers['content-length']), file).toBe(raw.rawPayload.length);
      expect(listed.get(id)?.size, file).toBe(raw.rawPayload.length);
      if (raw.rawPayload.equals(sent)) verbatim.push(file);
      else if (raw.rawPayload.equals(crlf(sent))) normalised.push(file);
      else wrong.push(file);
    }
    expect(wrong).toEqual([]);
    // Exactly the messages with bare LF line ends come back changed, and only by that.
    const bareLf = files.filter((f) => !crlf(readCorpus(f)).equals(readCorpus(f)));
    expect(normalised).toEqual(bareLf);
    expect(bareLf.length).toBeGreaterThan(0);
    expect(verbatim.length).toBe(files.length - bareLf.length);
  });
});

describe('APPEND of bytes the corpus lacks, read back raw', () => {
  it('keeps bare CR, dot-leading lines and a missing final newline; Dovecot serves NUL as 0x80 and folds CR CR LF', async () => {
    const user = await dovecot.createUser('bytes');
    const api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
    const cases: Array<[string, Buffer, Buffer]> = [
      ['bare CR', latin1('Subject: cr\r\n\r\nline1\rline2\r\n'), latin1('Subject: cr\r\n\r\nline1\rline2\r\n')],
      ['dot lines', latin1('Subject: dot\r\n\r\n.\r\n..x\r\n.\r\n'), latin1('Subject: dot\r\n\r\n.\r\n..x\r\n.\r\n')],
      ['no final newline', latin1('Subject: eol\r\n\r\nlast line'), latin1('Subject: eol\r\n\r\nlast line')],
      ['8-bit', latin1('Subject: 8bit\r\n\r\n\xe9\xff\x80\r\n'), latin1('Subject: 8bit\r\n\r\n\xe9\xff\x80\r\n')],
      ['mixed LF and CRLF', latin1('Subject: mixed\n\r\nbody\n'), latin1('Subject: mixed\r\n\r\nbody\r\n')],
      // Dovecot's own doing, documented here: a literal in FETCH BODY[] cannot carry NUL (RFC 9051
      // §4.3), so Dovecot serves each NUL as 0x80 (it stores the NUL); a CR right before CRLF is
      // folded into the line end.
      ['NUL', latin1('Subject: nul\r\n\r\nbefore\x00after\r\n'), latin1('Subject: nul\r\n\r\nbefore\x80after\r\n')],
      ['CR CR LF', latin1('Subject: crcrlf\r\r\n\r\nx\r\r\n'), latin1('Subject: crcrlf\r\n\r\nx\r\n')],
    ];
    const ids: string[] = [];
    for (const [name, sent] of cases) {
      const res = await api.append('INBOX', sent);
      expect(res.statusCode, `${name}: ${res.body}`).toBe(201);
      ids.push((res.json() as { id: string }).id);
    }
    await api.list('INBOX');
    for (const [index, [name, , served]] of cases.entries()) {
      const raw = await gw.app.inject({ url: `${api.msg('INBOX', ids[index]!)}/raw` });
      expect(raw.statusCode, name).toBe(200);
      expect(raw.rawPayload.toString('latin1'), name).toBe(served.toString('latin1'));
    }
  });
});

describe('mailboxes: nested, non-ASCII, rename, delete, errors, pooled sessions', () => {
  let user: DovecotUser;
  let api: ReturnType<typeof routes>;
  let delimiter: string;

  beforeAll(async () => {
    user = await dovecot.createUser('mbox');
    api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    delimiter = (await api.mailboxes()).find((m) => m.path === 'INBOX')!.delimiter!;
  });

  const doveadmMailboxes = async (): Promise<string[]> =>
    (await dovecot.doveadm(['mailbox', 'list', '-u', user.username])).split('\n').filter(Boolean);

  it('reports the server delimiter (Dovecot Maildir++: ".") and creates nested mailboxes with it', async () => {
    expect(delimiter).toBe('.');
    const path = ['Projekte', '2024', 'Q1'].join(delimiter);
    const created = await api.createMailbox(path);
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ path, name: 'Q1', parent: `Projekte${delimiter}2024`, delimiter });
    const listed = new Map((await api.mailboxes()).map((m) => [m.path, m]));
    expect(listed.get(path)).toMatchObject({ name: 'Q1', parent: `Projekte${delimiter}2024` });
    expect(listed.get(`Projekte${delimiter}2024`)).toMatchObject({ name: '2024', parent: 'Projekte' });
    expect(listed.get('Projekte')).toMatchObject({ parent: null });
    expect(await doveadmMailboxes()).toContain(path);

    const appended = await api.append(path, textMessage({ subject: 'Deep inside' }));
    expect(appended.statusCode, appended.body).toBe(201);
    expect((await api.list(path)).messages.map((m) => m.subject)).toEqual(['Deep inside']);
  });

  it('refuses a path written with another delimiter than the server\'s with a 4xx, not 5xx', async () => {
    const res = await api.createMailbox('Slash/Separated');
    expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
    expect(res.statusCode, res.body).toBeLessThan(500);
  });

  it('creates, lists, uses, renames and deletes non-ASCII mailboxes as UTF-8', async () => {
    const child = ['日本語', '下書き'].join(delimiter);
    for (const path of ['Entwürfe', '日本語', child]) {
      const res = await api.createMailbox(path);
      expect(res.statusCode, res.body).toBe(201);
      expect((res.json() as MailboxJson).path).toBe(path);
    }
    const paths = (await api.mailboxes()).map((m) => m.path);
    expect(paths).toEqual(expect.arrayContaining(['Entwürfe', '日本語', child]));
    expect(await doveadmMailboxes()).toEqual(expect.arrayContaining(['Entwürfe', '日本語', child]));
    expect((await api.createMailbox('Entwürfe')).statusCode).toBe(409);

    // Messages in and out through the URL-encoded path.
    const added = await api.append('INBOX', textMessage({ subject: 'Umlaut traveller', messageId: '<umlaut@mailgw.test>' }));
    const moved = await api.move('INBOX', (added.json() as { id: string }).id, 'Entwürfe');
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json()).toMatchObject({ mailbox: 'Entwürfe' });
    expect((await api.list('Entwürfe')).messages.map((m) => m.subject)).toEqual(['Umlaut traveller']);
    expect((await whereIs(user, '<umlaut@mailgw.test>')).map((r) => r.mailbox)).toEqual(['Entwürfe']);
    expect((await api.append(child, textMessage({ subject: 'Kanji child' }))).statusCode).toBe(201);

    // Rename: the messages and the children go along.
    const renamed = await api.patchMailbox('Entwürfe', { path: 'Brouillons-été' });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json()).toMatchObject({ path: 'Brouillons-été', name: 'Brouillons-été' });
    expect((await api.list('Brouillons-été')).messages.map((m) => m.subject)).toEqual(['Umlaut traveller']);
    const parentRenamed = await api.patchMailbox('日本語', { path: 'にほんご' });
    expect(parentRenamed.statusCode, parentRenamed.body).toBe(200);
    const renamedChild = ['にほんご', '下書き'].join(delimiter);
    expect((await api.list(renamedChild)).messages.map((m) => m.subject)).toEqual(['Kanji child']);
    const afterRename = (await api.mailboxes()).map((m) => m.path);
    expect(afterRename).toEqual(expect.arrayContaining(['Brouillons-été', 'にほんご', renamedChild]));
    expect(afterRename).not.toContain('Entwürfe');
    expect(afterRename.filter((p) => p.startsWith('日本語'))).toEqual([]);

    for (const path of [renamedChild, 'にほんご', 'Brouillons-été']) {
      const res = await api.deleteMailbox(path);
      expect(res.statusCode, `${path}: ${res.body}`).toBe(204);
    }
    const left = await doveadmMailboxes();
    for (const path of ['Brouillons-été', 'にほんご', renamedChild]) expect(left).not.toContain(path);
  });

  it('answers 409, 404 and 400 for a taken, a missing and the INBOX name', async () => {
    for (const path of ['Taken', 'Mover']) expect((await api.createMailbox(path)).statusCode).toBe(201);
    const onto = await api.patchMailbox('Mover', { path: 'Taken' });
    expect(onto.statusCode, onto.body).toBe(409);
    expect(problem(onto).code).toBe('MAILBOX_EXISTS');
    expect(await doveadmMailboxes()).toEqual(expect.arrayContaining(['Mover', 'Taken']));

    const renameMissing = await api.patchMailbox('Nowhere-Box', { path: 'Somewhere' });
    expect(renameMissing.statusCode, renameMissing.body).toBe(404);
    expect(problem(renameMissing).code).toBe('MAILBOX_NOT_FOUND');
    const deleteMissing = await api.deleteMailbox('Nowhere-Box');
    expect(deleteMissing.statusCode, deleteMissing.body).toBe(404);
    expect(problem(deleteMissing).code).toBe('MAILBOX_NOT_FOUND');

    for (const inbox of ['INBOX', 'inbox']) {
      const renameInbox = await api.patchMailbox(inbox, { path: 'Old-Inbox' });
      expect(renameInbox.statusCode, renameInbox.body).toBe(400);
      expect(problem(renameInbox).code).toBe('VALIDATION_FAILED');
    }
    expect(await doveadmMailboxes()).not.toContain('Old-Inbox');

    // Onto INBOX, which always exists: from a real mailbox, and from a hierarchy-only parent (which
    // Dovecot would accept, moving its children under INBOX).
    const kid = ['Lone', 'Kid'].join(delimiter);
    expect((await api.createMailbox(kid)).statusCode).toBe(201);
    for (const [from, to] of [['Mover', 'INBOX'], ['Lone', 'inbox']]) {
      const res = await api.patchMailbox(from!, { path: to });
      expect(res.statusCode, `${from} → ${to}: ${res.body}`).toBe(409);
      expect(problem(res).code).toBe('MAILBOX_EXISTS');
    }
    expect(await doveadmMailboxes()).toEqual(expect.arrayContaining(['Mover', kid]));
    expect(await doveadmMailboxes()).not.toContain(['INBOX', 'Kid'].join(delimiter));

    // Under its own child: a caller's mistake, not a server fault.
    const under = await api.patchMailbox('Mover', { path: ['Mover', 'Deeper'].join(delimiter) });
    expect(under.statusCode, under.body).toBe(400);
    expect(problem(under).code).toBe('VALIDATION_FAILED');
    expect(await doveadmMailboxes()).toContain('Mover');
  });

  it('creates a mailbox named with a trailing delimiter under the name without it', async () => {
    const res = await api.createMailbox(`Container${delimiter}`);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ path: 'Container', name: 'Container' });
    expect(await doveadmMailboxes()).toContain('Container');
    expect((await api.createMailbox('Container')).statusCode).toBe(409);
  });

  it('a deleted or renamed mailbox that pooled sessions had selected answers 404, and nothing answers 5xx', async () => {
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'In Doomed' })], { mailbox: 'Doomed' });
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'In Renamed' })], { mailbox: 'Renamed' });
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'In Outside' })], { mailbox: 'Outside' });
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'In Child' })], { mailbox: 'Parent/Child' });
    const child = ['Parent', 'Child'].join(delimiter);
    // Pooled sessions with each mailbox selected: concurrent listings take a session each (4 is the cap).
    const pages = await Promise.all(['Doomed', 'Renamed', 'Outside', child].map((path) => api.list(path)));
    for (const page of pages) expect(page.total).toBe(1);

    expect((await api.deleteMailbox('Doomed')).statusCode).toBe(204);
    expect((await api.patchMailbox('Renamed', { path: 'Renamed-Now' })).statusCode).toBe(200);
    // Renaming a parent renames the child a session had selected.
    expect((await api.patchMailbox('Parent', { path: 'Parent-Now' })).statusCode).toBe(200);
    // Another client deletes one behind the gateway's back.
    await dovecot.doveadm(['mailbox', 'delete', '-u', user.username, 'Outside']);

    const others = await Promise.all(Array.from({ length: 6 }, () => gw.app.inject({ url: `${api.box('INBOX')}/messages` })));
    for (const res of others) expect(res.statusCode, res.body).toBe(200);
    for (const path of ['Doomed', 'Renamed', 'Outside', child]) {
      const replies = await Promise.all(Array.from({ length: 3 }, () => gw.app.inject({ url: `${api.box(path)}/messages` })));
      for (const res of replies) {
        expect(res.statusCode, `${path}: ${res.body}`).toBe(404);
        expect(problem(res).code).toBe('MAILBOX_NOT_FOUND');
      }
    }
    expect((await api.list('Renamed-Now')).messages.map((m) => m.subject)).toEqual(['In Renamed']);
    expect((await api.list(['Parent-Now', 'Child'].join(delimiter))).messages.map((m) => m.subject)).toEqual(['In Child']);
  });
});

describe('listing filters against a reference model', () => {
  interface Seed {
    key: string;
    from: string;
    to: string;
    subject: string;
    body: string;
    idate: string;
    flags: string[];
  }
  const SEEDS: Seed[] = [
    { key: 'a', from: 'Alice Example <alice@one.test>', to: 'Bob <bob@two.test>', subject: 'Quarterly report', body: 'budget figures', idate: '2023-01-15T12:00:00Z', flags: ['\\Seen'] },
    { key: 'b', from: 'Carol Singer <carol@three.test>', to: 'Bob <bob@two.test>', subject: 'Lunch on Friday', body: 'the pizza place', idate: '2023-06-01T12:00:00Z', flags: ['\\Flagged'] },
    { key: 'c', from: 'alice@one.test', to: 'Dave <dave@four.test>', subject: 'Report draft', body: 'pizza and budget', idate: '2024-02-10T12:00:00Z', flags: ['\\Answered', '\\Seen'] },
    { key: 'd', from: 'Eve <eve@five.test>', to: 'Bob <bob@two.test>', subject: 'Big file', body: 'x'.repeat(20_000), idate: '2024-03-01T12:00:00Z', flags: [] },
    { key: 'e', from: 'Alice Example <alice@one.test>', to: 'Carol Singer <carol@three.test>', subject: 'Re: Lunch on Friday', body: 'see you there', idate: '2024-03-02T12:00:00Z', flags: ['\\Seen', '\\Flagged', '\\Answered'] },
    { key: 'f', from: 'Frank <frank@six.test>', to: 'Bob <bob@two.test>', subject: 'Newsletter', body: 'unsubscribe from the budget news', idate: '2024-07-20T12:00:00Z', flags: [] },
  ];
  let api: ReturnType<typeof routes>;
  /** key → size as the server counts it (RFC822.SIZE). */
  const sizes = new Map<string, number>();

  beforeAll(async () => {
    const user = await dovecot.createUser('filters');
    const client = imapClient(user);
    await client.connect();
    try {
      await client.mailboxCreate('Filters');
      for (const seed of SEEDS) {
        const message = textMessage({ subject: seed.subject, from: seed.from, to: seed.to, body: seed.body, messageId: `<${seed.key}@filters.test>` });
        const result = await client.append('Filters', message, seed.flags, new Date(seed.idate));
        expect(result && result.uid).toBeTypeOf('number');
      }
    } finally {
      await client.logout();
    }
    // The 2,000-message mailbox: one old flagged message first (UID 1), then 1,999 others.
    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'Ancient unique relic' })], { mailbox: 'Big', flags: 'F' });
    await dovecot.seedMaildir(
      user.username,
      Array.from({ length: 1999 }, (_, i) => textMessage({ subject: `Bulk ${i + 2} ${(i + 2) % 2 === 0 ? 'even' : 'odd'}` })),
      { mailbox: 'Big' },
    );
    api = routes(gw, await createImapAccount(gw.app, dovecot, user));
    const all = await api.list('Filters');
    expect(all.total).toBe(SEEDS.length);
    for (const m of all.messages) {
      const seed = SEEDS.find((s) => s.subject === m.subject)!;
      // The internal dates were set by APPEND: the filters below depend on them.
      expect(m.receivedAt).toBe(new Date(seed.idate).toISOString());
      sizes.set(seed.key, m.size);
    }
  }, 60_000);

  const includes = (hay: string, needle: string): boolean => hay.toLowerCase().includes(needle.toLowerCase());
  const day = (s: Seed): string => s.idate.slice(0, 10);

  /** A query, and which seeds it must match (computed from the seeds, not written out by hand). */
  const cases: Array<[string, (s: Seed) => boolean]> = [
    ['from=alice', (s) => includes(s.from, 'alice')],
    ['from=Carol%20Singer', (s) => includes(s.from, 'Carol Singer')],
    ['to=bob%40two.test', (s) => includes(s.to, 'bob@two.test')],
    ['to=carol', (s) => includes(s.to, 'carol')],
    ['subject=lunch', (s) => includes(s.subject, 'lunch')],
    ['text=pizza', (s) => includes(s.body, 'pizza')],
    // TEXT covers the headers too: Dave appears only in c's To.
    ['text=dave', (s) => includes(s.to, 'dave')],
    ['since=2024-03-01', (s) => day(s) >= '2024-03-01'],
    ['before=2024-03-01', (s) => day(s) < '2024-03-01'],
    ['since=2024-02-10&before=2024-03-02', (s) => day(s) >= '2024-02-10' && day(s) < '2024-03-02'],
    ['seen=true', (s) => s.flags.includes('\\Seen')],
    ['seen=false', (s) => !s.flags.includes('\\Seen')],
    ['flagged=true', (s) => s.flags.includes('\\Flagged')],
    ['flagged=false', (s) => !s.flags.includes('\\Flagged')],
    ['answered=true', (s) => s.flags.includes('\\Answered')],
    ['answered=false', (s) => !s.flags.includes('\\Answered')],
    ['from=alice&seen=true&since=2024-01-01', (s) => includes(s.from, 'alice') && s.flags.includes('\\Seen') && day(s) >= '2024-01-01'],
    ['from=alice&flagged=true&answered=true', (s) => includes(s.from, 'alice') && s.flags.includes('\\Flagged') && s.flags.includes('\\Answered')],
    ['text=budget&seen=false', (s) => includes(s.body, 'budget') && !s.flags.includes('\\Seen')],
    ['subject=lunch&to=bob', (s) => includes(s.subject, 'lunch') && includes(s.to, 'bob')],
    ['subject=nothing-matches-this', () => false],
  ];

  it.each(cases)('%s', async (query, predicate) => {
    const expected = SEEDS.filter(predicate).map((s) => s.subject).reverse();
    const page = await api.list('Filters', `&${query}`);
    expect(page.messages.map((m) => m.subject)).toEqual(expected);
    expect(page.total).toBe(expected.length);
    expect(page.nextCursor).toBeNull();
  });

  it('larger and smaller compare sizes strictly, alone and together', async () => {
    const big = sizes.get('d')!;
    const smallest = Math.min(...sizes.values());
    const subjectsWhere = (test: (size: number) => boolean): string[] =>
      SEEDS.filter((s) => test(sizes.get(s.key)!)).map((s) => s.subject).reverse();
    const check = async (query: string, test: (size: number) => boolean): Promise<void> => {
      const page = await api.list('Filters', `&${query}`);
      const expected = subjectsWhere(test);
      expect(page.messages.map((m) => m.subject), query).toEqual(expected);
      expect(page.total, query).toBe(expected.length);
    };
    await check(`larger=${big - 1}`, (size) => size > big - 1);
    await check(`larger=${big}`, (size) => size > big);
    await check(`smaller=${smallest}`, (size) => size < smallest);
    await check(`smaller=${smallest + 1}`, (size) => size < smallest + 1);
    await check(`larger=${smallest}&smaller=${big}`, (size) => size > smallest && size < big);
    expect(subjectsWhere((size) => size > big - 1)).toEqual(['Big file']);
  });

  it('pages a filtered listing one message at a time with total on every page', async () => {
    const expected = SEEDS.filter((s) => includes(s.from, 'alice')).map((s) => s.subject).reverse();
    const { pages, messages } = await api.listAll('Filters', '&from=alice', 1);
    expect(messages.map((m) => m.subject)).toEqual(expected);
    expect(pages.map((p) => p.total)).toEqual(expected.map(() => expected.length));
    expect(pages.at(-1)!.nextCursor).toBeNull();
  });

  it('finds the one old message among 2,000 and pages a half-matching filter without gaps', async () => {
    const relic = await api.list('Big', '&subject=relic&flagged=true');
    expect(relic.messages.map((m) => [m.uid, m.subject])).toEqual([[1, 'Ancient unique relic']]);
    expect(relic.total).toBe(1);
    expect(relic.nextCursor).toBeNull();
    expect((await api.list('Big', '&flagged=true')).total).toBe(1);
    expect((await api.list('Big', '&flagged=false')).total).toBe(1999);

    const { pages, messages } = await api.listAll('Big', '&subject=even', 200);
    expect(pages).toHaveLength(5);
    for (const page of pages) expect(page.total).toBe(1000);
    const evenUids = Array.from({ length: 1000 }, (_, i) => 2000 - 2 * i);
    expect(messages.map((m) => m.uid)).toEqual(evenUids);
    expect(messages.every((m) => m.subject === `Bulk ${m.uid} even`)).toBe(true);
  });
});

describe('writes seen through a second gateway sharing the same Redis', () => {
  let redis: RedisServer;
  let gwA: TestGateway;
  let gwB: TestGateway;
  let user: DovecotUser;
  let a: ReturnType<typeof routes>;
  let b: ReturnType<typeof routes>;

  beforeAll(async () => {
    redis = await startRedis();
    const shared = { REDIS_URL: redis.url, SECRET_KEY: randomBytes(32).toString('hex') };
    gwA = await startGateway(shared);
    gwB = await startGateway(shared);
    user = await dovecot.createUser('twogw');
    await dovecot.seedMaildir(
      user.username,
      Array.from({ length: 5 }, (_, i) => textMessage({ subject: `Shared ${i + 1}`, messageId: `<shared-${i + 1}@mailgw.test>` })),
    );
    const account = await createImapAccount(gwA.app, dovecot, user);
    a = routes(gwA, account);
    b = routes(gwB, account);
    expect((await a.createMailbox('Elsewhere')).statusCode).toBe(201);
  });

  afterAll(async () => {
    await gwA?.close();
    await gwB?.close();
    await redis?.stop();
  });

  const etagOf = async (api: ReturnType<typeof routes>, gateway: TestGateway, mailbox: string, ifNoneMatch?: string): Promise<Reply> =>
    gateway.app.inject({ url: `${api.box(mailbox)}/messages`, headers: ifNoneMatch ? { 'if-none-match': ifNoneMatch } : {} });

  it('a flag change through A shows in B\'s very next listing and message view, with a new ETag', async () => {
    const before = await etagOf(b, gwB, 'INBOX');
    expect(before.statusCode).toBe(200);
    const etag1 = before.headers.etag as string;
    const target = (before.json() as Page).messages.find((m) => m.subject === 'Shared 3')!;
    expect(target.flagged).toBe(false);
    // B has parsed (and cached in Redis) the message before the change.
    expect(((await gwB.app.inject({ url: b.msg('INBOX', target.id) })).json() as Summary).seen).toBe(false);
    expect((await etagOf(b, gwB, 'INBOX', etag1)).statusCode).toBe(304);

    const patched = await a.patch('INBOX', target.id, { flagged: true, seen: true });
    expect(patched.statusCode, patched.body).toBe(200);

    const after = await etagOf(b, gwB, 'INBOX', etag1);
    expect(after.statusCode).toBe(200);
    const etag2 = after.headers.etag as string;
    expect(etag2).not.toBe(etag1);
    const seenByB = (after.json() as Page).messages.find((m) => m.id === target.id)!;
    expect(seenByB).toMatchObject({ flagged: true, seen: true });
    expect(((await gwB.app.inject({ url: b.msg('INBOX', target.id) })).json() as Summary).flags).toEqual(['\\Flagged', '\\Seen']);
    expect((await etagOf(b, gwB, 'INBOX', etag2)).statusCode).toBe(304);
  });

  it('a move through A shows in B\'s listings of both mailboxes, with new ETags', async () => {
    const inbox1 = await etagOf(b, gwB, 'INBOX');
    const elsewhere1 = await etagOf(b, gwB, 'Elsewhere');
    expect((elsewhere1.json() as Page).total).toBe(0);
    const target = (inbox1.json() as Page).messages.find((m) => m.subject === 'Shared 4')!;

    const moved = await a.move('INBOX', target.id, 'Elsewhere');
    expect(moved.statusCode, moved.body).toBe(200);
    const newId = (moved.json() as { id: string }).id;

    const inbox2 = await etagOf(b, gwB, 'INBOX', inbox1.headers.etag as string);
    expect(inbox2.statusCode).toBe(200);
    expect(inbox2.headers.etag).not.toBe(inbox1.headers.etag);
    expect((inbox2.json() as Page).messages.map((m) => m.id)).not.toContain(target.id);
    expect((inbox2.json() as Page).total).toBe((inbox1.json() as Page).total - 1);

    const elsewhere2 = await etagOf(b, gwB, 'Elsewhere', elsewhere1.headers.etag as string);
    expect(elsewhere2.statusCode).toBe(200);
    expect(elsewhere2.headers.etag).not.toBe(elsewhere1.headers.etag);
    expect((elsewhere2.json() as Page).messages.map((m) => [m.id, m.subject])).toEqual([[newId, 'Shared 4']]);

    expect(problem(await gwB.app.inject({ url: b.msg('INBOX', target.id) })).code).toBe('MESSAGE_NOT_FOUND');
    expect(((await gwB.app.inject({ url: b.msg('Elsewhere', newId) })).json() as Summary).subject).toBe('Shared 4');
  });

  it('a delete and an append through A show in B\'s very next listing', async () => {
    const before = await etagOf(b, gwB, 'INBOX');
    const victim = (before.json() as Page).messages.find((m) => m.subject === 'Shared 1')!;
    expect((await a.remove('INBOX', victim.id)).statusCode).toBe(204);
    const added = await a.append('INBOX', textMessage({ subject: 'Shared late' }));
    expect(added.statusCode, added.body).toBe(201);
    const after = await etagOf(b, gwB, 'INBOX', before.headers.etag as string);
    expect(after.statusCode).toBe(200);
    const subjects = (after.json() as Page).messages.map((m) => m.subject);
    expect(subjects[0]).toBe('Shared late');
    expect(subjects).not.toContain('Shared 1');
  });
});

describe('a mailbox whose PERMANENTFLAGS refuse keywords (scripted fake server)', () => {
  it('answers 422 FLAG_NOT_ALLOWED and stores nothing, while permitted flags are stored', async () => {
    const fake = await startFakeImap({ permanentFlags: '\\Seen \\Flagged', uidValidity: 7 });
    let account: string | undefined;
    try {
      const created = await gw.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        payload: { protocol: 'imap', host: fake.host, port: fake.port, security: 'none', username: 'fake', password: 'fake-pw' },
      });
      expect(created.statusCode, created.body).toBe(201);
      account = (created.json() as { id: string }).id;
      const url = `/v1/accounts/${account}/mailboxes/INBOX/messages/${encodeImapMessageId(7n, 1)}`;

      const allowed = await gw.app.inject({ method: 'PATCH', url, payload: { seen: true, flagged: true } });
      expect(allowed.statusCode, allowed.body).toBe(200);
      expect((allowed.json() as Summary).flags).toEqual(['\\Flagged', '\\Seen']);
      const stores = (): string[] => fake.commands.filter((c) => /^UID STORE/i.test(c));
      expect(stores()).toHaveLength(1);

      for (const payload of [{ addFlags: ['$Work'] }, { seen: false, addFlags: ['$Work'] }, { answered: true }]) {
        const refused = await gw.app.inject({ method: 'PATCH', url, payload });
        expect(refused.statusCode, refused.body).toBe(422);
        expect(problem(refused).code).toBe('FLAG_NOT_ALLOWED');
      }
      // Refused as a whole: not even the permitted part (seen=false) went to the server.
      expect(stores()).toHaveLength(1);
      expect([...fake.flags].sort()).toEqual(['\\Flagged', '\\Seen']);
    } finally {
      // Logs the pooled session out before the fake goes away.
      if (account !== undefined) await gw.app.inject({ method: 'DELETE', url: `/v1/accounts/${account}` });
      await fake.close();
    }
  });
});
