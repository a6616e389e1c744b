/**
 * A message over 20 MB through a listening gateway and real HTTP: /raw streams byte-exact with the
 * right Content-Length, a Range from deep inside it is served, the attachment downloads decoded
 * byte-exact, and the gateway does not hold the message in memory several times over.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { messageWithAttachment } from '../support/messages.js';

const { dovecot } = testServers();

const ATTACHMENT_BYTES = 21 * 1024 * 1024;
const MB = 1024 * 1024;

let gw: TestGateway;
let base: string;
let user: DovecotUser;
let account: string;
let id: string;
let messageSize: number;
let messageSha: string;
let attachmentSha: string;
let slice: { start: number; bytes: Buffer };

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Peak RSS while `work` runs, sampled every 20 ms. */
async function peakRss<T>(work: () => Promise<T>): Promise<{ value: T; before: number; peak: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  try {
    const value = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, before, peak };
  } finally {
    clearInterval(timer);
  }
}

/** GETs `path`, hashing the body as it streams in (the client never holds it whole). */
async function download(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, { headers });
  const hash = createHash('sha256');
  let length = 0;
  let chunks = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    length += chunk.length;
    chunks += 1;
  }
  return { res, sha: hash.digest('hex'), length, chunks };
}

beforeAll(async () => {
  user = await dovecot.createUser('large');
  let message: Buffer | undefined;
  {
    const content = randomBytes(ATTACHMENT_BYTES);
    attachmentSha = sha(content);
    message = messageWithAttachment({ subject: 'Large', filename: 'random.bin', content });
  }
  messageSize = message.length;
  messageSha = sha(message);
  slice = { start: 20 * MB + 12345, bytes: Buffer.from(message.subarray(20 * MB + 12345, 20 * MB + 12345 + 1000)) };
  await dovecot.seedMaildir(user.username, [message]);
  message = undefined;

  gw = await startGateway();
  base = await gw.app.listen({ host: '127.0.0.1', port: 0 });
  account = await createImapAccount(gw.app, dovecot, user);
  const list = await fetch(`${base}/v1/accounts/${account}/mailboxes/INBOX/messages`);
  const page = (await list.json()) as { messages: Array<{ id: string; size: number; hasAttachments: boolean }> };
  expect(page.messages).toHaveLength(1);
  id = page.messages[0]!.id;
  expect(page.messages[0]!.size).toBe(messageSize);
  expect(page.messages[0]!.hasAttachments).toBe(true);
}, 60_000);

afterAll(async () => {
  await gw?.close();
});

const messageUrl = (suffix = ''): string => `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}${suffix}`;

describe('a message over 20 MB', () => {
  it('is over 20 MB', () => {
    expect(messageSize).toBeGreaterThan(20 * MB);
  });

  it('streams through /raw byte-exact with the right Content-Length, without buffering it several times over', async ({ annotate }) => {
    global.gc?.();
    const { value: got, before, peak } = await peakRss(() => download(messageUrl('/raw')));
    const growthMb = (peak - before) / MB;
    await annotate(`raw download of ${(messageSize / MB).toFixed(1)} MB: RSS ${(before / MB).toFixed(0)} MB → peak ${(peak / MB).toFixed(0)} MB (+${growthMb.toFixed(0)} MB), ${got.chunks} chunks`);
    expect(got.res.status).toBe(200);
    expect(got.res.headers.get('content-type')).toBe('message/rfc822');
    expect(Number(got.res.headers.get('content-length'))).toBe(messageSize);
    expect(got.length).toBe(messageSize);
    expect(got.sha).toBe(messageSha);
    expect(got.chunks).toBeGreaterThan(1); // arrived as a stream, not one write
    expect(growthMb).toBeLessThan(200);
  });

  it('serves a Range from deep inside it as 206', async () => {
    const end = slice.start + slice.bytes.length - 1;
    const res = await fetch(`${base}${messageUrl('/raw')}`, { headers: { range: `bytes=${slice.start}-${end}` } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${slice.start}-${end}/${messageSize}`);
    expect(Number(res.headers.get('content-length'))).toBe(slice.bytes.length);
    expect(Buffer.from(await res.arrayBuffer()).equals(slice.bytes)).toBe(true);
  });

  it('opens, and its attachment downloads decoded byte-exact', async ({ annotate }) => {
    global.gc?.();
    const { value: got, before, peak } = await peakRss(async () => {
      const detail = await fetch(`${base}${messageUrl()}`);
      expect(detail.status).toBe(200);
      const msg = (await detail.json()) as { attachments: Array<{ id: string; filename: string; size: number }> };
      expect(msg.attachments).toHaveLength(1);
      expect(msg.attachments[0]).toMatchObject({ filename: 'random.bin', size: ATTACHMENT_BYTES });
      return download(messageUrl(`/attachments/${msg.attachments[0]!.id}`));
    });
    const growthMb = (peak - before) / MB;
    await annotate(`parse + attachment download of ${(ATTACHMENT_BYTES / MB).toFixed(0)} MB: RSS ${(before / MB).toFixed(0)} MB → peak ${(peak / MB).toFixed(0)} MB (+${growthMb.toFixed(0)} MB)`);
    expect(got.res.status).toBe(200);
    expect(got.res.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.res.headers.get('content-disposition')).toContain('random.bin');
    expect(got.length).toBe(ATTACHMENT_BYTES);
    expect(got.sha).toBe(attachmentSha);
    expect(growthMb).toBeLessThan(200);
  });

  it('gives every session back afterwards', async () => {
    const stats = gw.app.services.imap.poolStats().get(account)!;
    expect(stats).toMatchObject({ busy: 0, streams: 0, waiting: 0 });
  });
});
