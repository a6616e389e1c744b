/**
 * Attachment downloads against the real Dovecot: each chunk a partial FETCH of the part's section
 * (`BODY.PEEK[<part>]<offset.length>`), the transfer encoding undone in the gateway across chunk
 * boundaries. Gateways with tiny chunks (7 and 61 bytes) make every small attachment cross many of
 * them, at every kind of cut: inside a base64 quantum or line break, inside a quoted-printable
 * escape or soft line break. Every download must be byte-exact: the bytes that were encoded, and
 * what mailparser (the message view's parser) decodes from the same message.
 */
import { randomBytes } from 'node:crypto';
import libqp from 'libqp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessageId } from '../../src/mail/message-id.js';
import { extractAttachment } from '../../src/mail/mime/extract-attachment.js';
import { readAll } from '../support/assertions.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { startLatencyProxy } from '../support/latency-proxy.js';
import { headerLines } from '../support/messages.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();

interface Part {
  filename: string;
  /** Content-Type and Content-Transfer-Encoding lines (the disposition is added). */
  headers: string[];
  /** The body as it stands in the message (encoded). */
  body: string;
  /** The decoded bytes the download must give. */
  expected: Buffer;
}

const wrap = (text: string, width: number): string => text.replace(new RegExp(`.{${width}}`, 'g'), '$&\r\n');

function base64Part(filename: string, bytes: Buffer, width = 76): Part {
  return { filename, headers: ['Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64'], body: wrap(bytes.toString('base64'), width), expected: bytes };
}

/**
 * Quoted-printable of any bytes: CR and LF escaped too (libqp keeps them as line breaks, which
 * servers normalise), lines cut by soft breaks at 76, a blank escaped only when it would end the part.
 */
function qpEncode(bytes: Buffer): string {
  let out = '';
  let line = 0;
  for (const [i, byte] of bytes.entries()) {
    const literal = (byte >= 33 && byte <= 126 && byte !== 0x3d) || (byte === 0x20 && i < bytes.length - 1);
    const piece = literal ? String.fromCharCode(byte) : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    if (line + piece.length > 75) {
      out += '=\r\n';
      line = 0;
    }
    out += piece;
    line += piece.length;
  }
  return out;
}

function qpPart(filename: string, bytes: Buffer, body = qpEncode(bytes)): Part {
  return { filename, headers: ['Content-Type: application/octet-stream', 'Content-Transfer-Encoding: quoted-printable'], body, expected: bytes };
}

/** A multipart/mixed message: a text body, then the parts as attachments (parts 2, 3, ...). */
function message(subject: string, parts: Part[]): Buffer {
  const boundary = `b-${randomBytes(6).toString('hex')}`;
  const lines = [
    ...headerLines(subject),
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    'See the attachments.',
  ];
  for (const part of parts) {
    lines.push(`--${boundary}`, ...part.headers, `Content-Disposition: attachment; filename="${part.filename}"`, '', part.body);
  }
  lines.push(`--${boundary}--`, '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

const random = (bytes: number) => randomBytes(bytes);
/** Text with what quoted-printable has to say about it: 8-bit, `=`, long lines, blanks before line ends. */
const qpText = Buffer.from(`${'Grüße, café = naïve; '.repeat(30)}\r\ntrailing blanks \t \r\n${'x'.repeat(300)}\r\n= at the end =`, 'utf8');
/** Quoted-printable written by hand the way senders do: lower-case hex, blanks after soft breaks, blanks before line ends. */
const qpHandWritten = 'caf=c3=a9 na=C3=AFve=\r\n and a soft break with padding=  \t\r\nafter it; blanks before a hard break   \r\n=3D and =3d, a lone = sign, =ZZ, end=';

const PARTS: Part[] = [
  ...[0, 1, 2, 3, 4, 57, 58, 59, 1000, 4099, 20_000].map((n) => base64Part(`b64-${n}.bin`, random(n))),
  base64Part('b64-one-line.bin', random(3_001), 100_000),
  base64Part('b64-short-lines.bin', random(2_000), 5),
  ...[0, 1, 100, 5_000].map((n) => qpPart(`qp-${n}.bin`, random(n))),
  qpPart('qp-text.txt', qpText, libqp.wrap(libqp.encode(qpText), 76)),
  {
    filename: 'qp-hand.txt',
    headers: ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: Quoted-Printable'],
    body: qpHandWritten,
    expected: libqp.decode(qpHandWritten),
  },
  {
    filename: 'latin1.txt',
    headers: ['Content-Type: text/plain; charset=ISO-8859-1', 'Content-Transfer-Encoding: 8bit'],
    body: `${'Gr\xfc\xdfe aus K\xf6ln. '.repeat(40)}\r\nzwei Zeilen`,
    expected: Buffer.from(`${'Gr\xfc\xdfe aus K\xf6ln. '.repeat(40)}\r\nzwei Zeilen`, 'latin1'),
  },
  {
    filename: 'seven.txt',
    headers: ['Content-Type: text/plain; charset=us-ascii'],
    body: 'no transfer encoding declared: 7bit\r\nsecond line',
    expected: Buffer.from('no transfer encoding declared: 7bit\r\nsecond line'),
  },
];

const UUENCODED = 'begin 644 hi.txt\r\n#:&D*\r\n`\r\nend';

/** A message that is one part, an attachment itself (its part 1 is the whole body, fetched as TEXT). */
function singlePart(bytes: Buffer): Buffer {
  const lines = [
    ...headerLines('single part'),
    'Content-Type: application/pdf; name="single.pdf"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="single.pdf"',
    '',
    wrap(bytes.toString('base64'), 76),
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

const singleBytes = random(5_000);
const forwarded = message('inner', [base64Part('inner.bin', random(3_000)), qpPart('inner-qp.bin', random(700))]);
const uuencoded = message('uuencoded', [
  { filename: 'hi.txt', headers: ['Content-Type: application/octet-stream', 'Content-Transfer-Encoding: x-uuencode'], body: UUENCODED, expected: Buffer.from(UUENCODED) },
]);
const MESSAGES: Array<{ subject: string; source: Buffer }> = [
  { subject: 'many', source: message('many', PARTS) },
  { subject: 'single part', source: singlePart(singleBytes) },
  // A message/rfc822 attachment that carries attachments of its own.
  {
    subject: 'forwarded',
    source: message('forwarded', [
      { filename: 'forwarded.eml', headers: ['Content-Type: message/rfc822'], body: forwarded.toString('latin1'), expected: forwarded },
    ]),
  },
  { subject: 'uuencoded', source: uuencoded },
];

interface Listed {
  id: string;
  subject: string;
}
interface Attachment {
  id: string;
  filename: string | null;
  contentType: string;
  size: number;
}

let user: DovecotUser;
/** Every gateway under test, by its chunk size (undefined: the default 1 MiB). */
const gateways: Array<{ chunkBytes: number | undefined; gw: TestGateway; account: string }> = [];
const CHUNK_SIZES = [7, 61, 1000, undefined];

beforeAll(async () => {
  user = await dovecot.createUser('attach');
  await dovecot.seedMaildir(user.username, MESSAGES.map((m) => m.source));
  for (const chunkBytes of CHUNK_SIZES) {
    const gw = await startGateway({}, chunkBytes === undefined ? {} : { downloadChunkBytes: chunkBytes });
    gateways.push({ chunkBytes, gw, account: await createImapAccount(gw.app, dovecot, user) });
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(gateways.map(({ gw }) => gw.close()));
});

async function listing(gw: TestGateway, account: string): Promise<Map<string, string>> {
  const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
  expect(res.statusCode, res.body).toBe(200);
  return new Map((res.json() as { messages: Listed[] }).messages.map((m) => [m.subject, m.id]));
}

async function attachmentsOf(gw: TestGateway, account: string, id: string): Promise<Attachment[]> {
  const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}` });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { attachments: Attachment[] }).attachments;
}

/** mailparser's decoding of one attachment of `source`. */
async function reference(source: Buffer, attachmentId: string): Promise<Buffer> {
  const extracted = await extractAttachment(source, attachmentId);
  expect(extracted, attachmentId).not.toBeNull();
  return readAll(extracted!.content);
}

describe.each(CHUNK_SIZES.map((chunkBytes) => ({ chunkBytes, label: chunkBytes === undefined ? 'default (1 MiB)' : `${chunkBytes}-byte` })))(
  'attachment downloads in $label chunks',
  ({ chunkBytes }) => {
    const target = () => gateways.find((g) => g.chunkBytes === chunkBytes)!;

    it('give each base64, quoted-printable, 8bit and 7bit attachment byte-exact, as mailparser decodes it and of the listed size', async () => {
      const { gw, account } = target();
      const id = (await listing(gw, account)).get('many')!;
      const attachments = await attachmentsOf(gw, account, id);
      expect(attachments.map((a) => a.filename)).toEqual(PARTS.map((p) => p.filename));
      const source = MESSAGES[0]!.source;
      const wrong: string[] = [];
      for (const [i, attachment] of attachments.entries()) {
        const part = PARTS[i]!;
        const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}/attachments/${attachment.id}` });
        expect(res.statusCode, `${part.filename}: ${res.body}`).toBe(200);
        expect(res.headers['content-transfer-encoding'], part.filename).toBeUndefined();
        if (!res.rawPayload.equals(part.expected)) wrong.push(`${part.filename}: ${res.rawPayload.length} bytes, expected ${part.expected.length}`);
        // mailparser makes an empty quoted-printable part CRLF (so the message view lists 2 bytes); Dovecot serves it empty.
        if (part.filename === 'qp-0.bin') continue;
        expect(part.expected.equals(await reference(source, attachment.id)), `mailparser on ${part.filename}`).toBe(true);
        expect(attachment.size, part.filename).toBe(part.expected.length);
      }
      expect(wrong).toEqual([]);
    });

    it('keep the part charset in Content-Type, lower-cased', async () => {
      const { gw, account } = target();
      const id = (await listing(gw, account)).get('many')!;
      const latin1 = (await attachmentsOf(gw, account, id)).find((a) => a.filename === 'latin1.txt')!;
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}/attachments/${latin1.id}` });
      expect(res.headers['content-type']).toBe('text/plain; charset=iso-8859-1');
    });

    it('give the body of a single-part message that is an attachment, and the attachments of a forwarded message', async () => {
      const { gw, account } = target();
      const ids = await listing(gw, account);
      const single = await attachmentsOf(gw, account, ids.get('single part')!);
      expect(single).toHaveLength(1);
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${ids.get('single part')}/attachments/${single[0]!.id}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.rawPayload.equals(singleBytes)).toBe(true);

      const forwardedId = ids.get('forwarded')!;
      const forwarded = await attachmentsOf(gw, account, forwardedId);
      expect(forwarded.length).toBeGreaterThan(0);
      for (const attachment of forwarded) {
        const got = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${forwardedId}/attachments/${attachment.id}` });
        expect(got.statusCode, got.body).toBe(200);
        const ref = await reference(MESSAGES[2]!.source, attachment.id);
        expect(got.rawPayload.equals(ref), attachment.filename ?? attachment.id).toBe(true);
      }
    });

    it('send a part in an encoding the gateway does not know as it is, and say which', async () => {
      const { gw, account } = target();
      const id = (await listing(gw, account)).get('uuencoded')!;
      const [attachment] = await attachmentsOf(gw, account, id);
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}/attachments/${attachment!.id}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-transfer-encoding']).toBe('x-uuencode');
      expect(res.body).toBe(UUENCODED);
    });
  },
);

/**
 * Broken MIME where the server numbers parts differently from the gateway's parse: the view's ids and
 * sizes come from the parse, so each download must give that part's bytes, never the part the server
 * has under the same number (decision 0018).
 */
describe('attachments of broken MIME (the server numbers the parts otherwise)', () => {
  const pdf = Buffer.from('%PDF-1.4 pretend '.repeat(64));
  const png = random(700);
  const b64 = (bytes: Buffer): string => wrap(bytes.toString('base64'), 76);
  const lines = (subject: string, body: string[]): Buffer => Buffer.from([...headerLines(subject), 'Content-Type: multipart/mixed; boundary="b"', '', ...body].join('\r\n'), 'latin1');
  const pdfPart = ['Content-Type: application/pdf; name="doc.pdf"', 'Content-Transfer-Encoding: base64', '', b64(pdf)];
  const pngPart = ['Content-Type: image/png; name="pic.png"', 'Content-Transfer-Encoding: base64', '', b64(png)];
  const BROKEN = [
    // A doubled boundary: Dovecot counts an empty part between the two, the parse does not.
    { subject: 'doubled boundary', source: lines('doubled boundary', ['--b', 'Content-Type: text/plain', '', 'hello', '--b', '--b', ...pdfPart, '--b', ...pngPart, '--b--', '']) },
    // A part whose first line is not a header: Dovecot takes it for an empty text part, the parse skips it.
    { subject: 'headerless part', source: lines('headerless part', ['--b', 'Content-Type: text/plain', '', 'hello', '--b', 'no headers here, just text', '--b', ...pdfPart, '--b--', '']) },
  ];
  let gw: TestGateway;
  let account: string;

  beforeAll(async () => {
    const owner = await dovecot.createUser('broken');
    await dovecot.seedMaildir(owner.username, BROKEN.map((m) => m.source));
    gw = await startGateway();
    account = await createImapAccount(gw.app, dovecot, owner);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('download the bytes of the part the view names, of the size it states', async () => {
    const ids = await listing(gw, account);
    const expected: Record<string, Buffer> = { 'doc.pdf': pdf, 'pic.png': png };
    for (const { subject } of BROKEN) {
      const attachments = await attachmentsOf(gw, account, ids.get(subject)!);
      expect(attachments.map((a) => a.filename), subject).toEqual(subject === 'doubled boundary' ? ['doc.pdf', 'pic.png'] : ['doc.pdf']);
      for (const attachment of attachments) {
        const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${ids.get(subject)}/attachments/${attachment.id}` });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers['content-type'], `${subject} ${attachment.filename}`).toBe(attachment.contentType);
        expect(res.rawPayload.length, `${subject} ${attachment.filename}`).toBe(attachment.size);
        expect(res.rawPayload.equals(expected[attachment.filename!]!), `${subject} ${attachment.filename}`).toBe(true);
      }
    }
    // Served from the gateway's parse, and counted so an operator sees how often.
    const metrics = await gw.app.inject({ url: '/metrics' });
    expect(metrics.body).toMatch(/^mailgw_attachments_from_parse_total 3$/m);
  });
});

describe('a text part marked inline with a file name', () => {
  it('is body in the listing and the view alike (RFC 2183 §2.1), not an attachment', async () => {
    const owner = await dovecot.createUser('inline-text');
    const source = Buffer.from(
      [...headerLines('inline text'), 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'body text', '--b', 'Content-Type: text/plain; name="notes.txt"', 'Content-Disposition: inline; filename="notes.txt"', '', 'notes content', '--b--', ''].join('\r\n'),
    );
    await dovecot.seedMaildir(owner.username, [source]);
    const gw = await startGateway();
    try {
      const account = await createImapAccount(gw.app, dovecot, owner);
      const [summary] = ((await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` })).json() as { messages: Array<{ id: string; hasAttachments: boolean }> }).messages;
      const view = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${summary!.id}` })).json() as { text: string; attachments: unknown[]; hasAttachments: boolean };
      expect({ listing: summary!.hasAttachments, view: view.hasAttachments, attachments: view.attachments }).toEqual({ listing: false, view: false, attachments: [] });
      expect(view.text).toContain('notes content');
    } finally {
      await gw.close();
    }
  });
});

describe("a multipart/digest's entries (RFC 2046 §5.1.5: message/rfc822 by default)", () => {
  const entry = (n: number): string => `From: list${n}@example.com\r\nSubject: entry ${n}\r\n\r\nBody of entry ${n}\r\n`;
  const source = Buffer.from(
    [...headerLines('digest'), 'Content-Type: multipart/digest; boundary="d"', '', '--d', '', entry(1), '--d', '', entry(2), '--d--', ''].join('\r\n'),
  );
  let gw: TestGateway;
  let account: string;

  beforeAll(async () => {
    const owner = await dovecot.createUser('digest');
    await dovecot.seedMaildir(owner.username, [source]);
    gw = await startGateway();
    account = await createImapAccount(gw.app, dovecot, owner);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('are attached messages in the listing, the view and the downloads, as the server numbers them', async () => {
    const listed = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages` });
    const [summary] = (listed.json() as { messages: Array<{ id: string; hasAttachments: boolean }> }).messages;
    expect(summary!.hasAttachments).toBe(true);
    const view = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${summary!.id}` })).json() as { text: string | null; attachments: Attachment[] };
    expect(view.text ?? '').not.toContain('Body of entry');
    expect(view.attachments.map((a) => [a.id, a.contentType])).toEqual([['1', 'message/rfc822'], ['2', 'message/rfc822']]);
    for (const attachment of view.attachments) {
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${summary!.id}/attachments/${attachment.id}` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.rawPayload.length).toBe(attachment.size);
      expect(res.body.trimEnd()).toBe(entry(Number(attachment.id)).trimEnd());
    }
    // Dovecot numbers a digest's entries the same way: its parts serve them, no parse needed.
    expect((await gw.app.inject({ url: '/metrics' })).body).toMatch(/^mailgw_attachments_from_parse_total 0$/m);
  });
});

describe('the FETCHes of an attachment download', () => {
  it('are partial FETCHes of the part, one chunk each, on sessions leased per chunk and given back between them', async () => {
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    const gw = await startGateway({}, { downloadChunkBytes: 61 });
    try {
      const account = await createImapAccount(gw.app, dovecot, user, { host: proxy.host, port: proxy.port });
      const id = (await listing(gw, account)).get('many')!;
      const attachments = await attachmentsOf(gw, account, id);
      const index = PARTS.findIndex((p) => p.filename === 'b64-4099.bin');
      const attachment = attachments[index]!;
      const before = proxy.clientText().length;
      const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/INBOX/messages/${id}/attachments/${attachment.id}` });
      expect(res.rawPayload.equals(PARTS[index]!.expected)).toBe(true);
      const sent = proxy.clientText().slice(before);
      // One BODYSTRUCTURE to find the part, then BODY.PEEK[<part>]<offset.61> for offset 0, 61, ... until a short answer.
      expect(sent).toMatch(/UID FETCH \d+ \(UID BODYSTRUCTURE\b/);
      const offsets = [...sent.matchAll(new RegExp(`BODY\\.PEEK\\[${attachment.id.replace('.', '\\.')}\\]<(\\d+)\\.61>`, 'g'))].map((m) => Number(m[1]));
      const encodedLength = Buffer.byteLength(PARTS[index]!.body);
      expect(offsets).toEqual(Array.from({ length: Math.floor(encodedLength / 61) + 1 }, (_, i) => i * 61));
      expect(gw.app.services.imap.poolStats().get(account)).toMatchObject({ busy: 0, streams: 0 });
    } finally {
      await gw.close();
      await proxy.close();
    }
  });

  it('check UIDVALIDITY for every chunk: a mailbox recreated mid-download ends it, and never gives another message’s bytes', async () => {
    const other = await dovecot.createUser('attach-uv');
    const first = message('first', [base64Part('first.bin', Buffer.alloc(4_000, 0x61))]);
    await dovecot.seedMaildir(other.username, [first], { mailbox: 'Box' });
    const gw = await startGateway({}, { downloadChunkBytes: 100 });
    try {
      const account = await createImapAccount(gw.app, dovecot, other);
      const page = (await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/Box/messages` })).json() as { messages: Listed[] };
      const id = page.messages[0]!.id;
      const part = await gw.app.services.imap.openPart(account, 'Box', decodeMessageId(id), '2');
      const firstChunk = await new Promise<Buffer>((resolve) => part.stream.once('data', (chunk: Buffer) => resolve(chunk)));
      part.stream.pause();
      expect(firstChunk.every((byte) => byte === 0x61)).toBe(true);

      // A new mailbox under the old name (a new UIDVALIDITY: Dovecot takes the time in seconds), whose
      // UID 1 is another message with another part 2.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await dovecot.doveadm(['mailbox', 'delete', '-u', other.username, 'Box']);
      await dovecot.doveadm(['mailbox', 'create', '-u', other.username, 'Box']);
      await dovecot.doveadm(['kick', other.username]);
      await dovecot.seedMaildir(other.username, [message('second', [base64Part('second.bin', Buffer.alloc(4_000, 0x62))])], { mailbox: 'Box' });
      // The old id's UID now names the new message.
      const check = directImapClient(dovecot, other);
      await check.connect();
      await check.mailboxOpen('Box');
      expect(await check.fetchOne('1', { uid: true }, { uid: true })).toMatchObject({ uid: 1 });
      await check.logout();

      const rest: Buffer[] = [];
      part.stream.on('data', (chunk: Buffer) => rest.push(chunk));
      const error = await new Promise<Error>((resolve) => part.stream.once('error', resolve).resume());
      expect(error).toMatchObject({ code: 'MESSAGE_NOT_FOUND' });
      expect(Buffer.concat(rest).every((byte) => byte === 0x61)).toBe(true);
    } finally {
      await gw.close();
    }
  });
});
