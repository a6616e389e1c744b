import { randomBytes } from 'node:crypto';
import libmime from 'libmime';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { rejection, thrown } from '../support/assertions.js';
import { GatewayError } from '../../src/errors.js';
import {
  composeMessage,
  isEmailAddress,
  prepareRawMessage,
  type ComposeOptions,
  type ComposeSources,
  type ComposedMessage,
  type OriginalMessage,
  type SendBody,
} from '../../src/outbox/compose.js';

const OPTIONS: ComposeOptions = { accountEmail: 'me@example.com', messageIdDomain: 'gw.example.net' };
const MSG_ID = /^<[A-Za-z0-9_-]{22}@gw\.example\.net>$/;

/** The original of replies and forwards: bare LF and raw UTF-8 (RFC 6532) bytes, to catch any rewriting. */
const ORIGINAL_RAW = Buffer.from(
  'From: Bob <bob@example.com>\nTo: me@example.com\nSubject: Plan für Montag\nMessage-ID: <orig@example.com>\n\nSee you 🎉\n',
);

const ORIGINAL: OriginalMessage = {
  messageId: '<orig@example.com>',
  references: ['<root@example.com>', '<mid@example.com>'],
  subject: 'Plan für Montag',
  from: [{ name: 'Bob', address: 'bob@example.com' }],
  replyTo: [],
  to: [
    { name: 'Me', address: 'Me@Example.COM' },
    { name: 'Carol', address: 'carol@example.com' },
  ],
  cc: [
    { name: '', address: 'dave@example.com' },
    { name: 'Bob again', address: 'BOB@example.com' },
    { name: '', address: 'ME@EXAMPLE.COM' },
  ],
};

interface FakeSources extends ComposeSources {
  calls: string[];
}

function fakeSources(original: OriginalMessage = ORIGINAL, stored: Record<string, { filename: string | null; contentType: string; content: Buffer }> = {}): FakeSources {
  const calls: string[] = [];
  return {
    calls,
    original: (mailbox, id) => {
      calls.push(`original ${mailbox} ${id}`);
      if (id === 'gone') return Promise.reject(new GatewayError('MESSAGE_NOT_FOUND', 'No such message in this mailbox'));
      return Promise.resolve(original);
    },
    raw: (mailbox, id) => {
      calls.push(`raw ${mailbox} ${id}`);
      return Promise.resolve(ORIGINAL_RAW);
    },
    attachment: (mailbox, id, attachmentId) => {
      calls.push(`attachment ${mailbox} ${id} ${attachmentId}`);
      const found = stored[attachmentId];
      if (!found) return Promise.reject(new GatewayError('ATTACHMENT_NOT_FOUND', `No attachment ${attachmentId} in this message`));
      return Promise.resolve(found);
    },
  };
}

const NO_SOURCES = fakeSources();

/** Composes and reads the message's bytes whole (the gateway reads them as they are produced). */
async function compose(body: SendBody, sources: ComposeSources = NO_SOURCES, options: ComposeOptions = OPTIONS): Promise<ComposedMessage & { raw: Buffer }> {
  const composed = await composeMessage(body, sources, options);
  return { ...composed, raw: Buffer.isBuffer(composed.raw) ? composed.raw : Buffer.concat(await composed.raw.toArray()) };
}

function addresses(field: AddressObject | AddressObject[] | undefined): Array<{ name: string; address: string | undefined }> {
  return [field ?? []].flat().flatMap((o) => o.value.map((a) => ({ name: a.name, address: a.address })));
}

/** The header block of a message, as text. */
function headerBlock(raw: Buffer): string {
  const end = raw.indexOf('\r\n\r\n');
  return raw.subarray(0, end).toString('latin1');
}

async function parse(raw: Buffer): Promise<ParsedMail> {
  return simpleParser(raw);
}

describe('composeMessage: headers and encodings', () => {
  it('non-ASCII subjects, display names and file names come back as sent (RFC 2047, RFC 2231), headers in ASCII', async () => {
    const subject = 'Привет 🎉 会議の議題について、よろしくお願いします';
    const composed = await compose({
      from: { name: 'Ёлкин Пётр', address: 'petr@example.com' },
      to: [{ name: '山田 太郎', address: 'taro@example.jp' }],
      cc: [{ name: 'Zoë 😀 "Quotes", Comma', address: 'zoe@example.org' }],
      replyTo: [{ name: 'Отдел', address: 'dept@example.com' }],
      subject,
      text: 'Текст 日本語 🎉',
      attachments: [{ filename: 'отчёт 報告書 📎.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4').toString('base64') }],
    });
    // RFC 5322 §2.2 without RFC 6532: every header byte is US-ASCII, encoded words do the rest.
    expect(headerBlock(composed.raw)).toMatch(/^[\t\r\n\x20-\x7e]*$/);
    const parsed = await parse(composed.raw);
    expect(parsed.subject).toBe(subject);
    expect(addresses(parsed.from)).toEqual([{ name: 'Ёлкин Пётр', address: 'petr@example.com' }]);
    expect(addresses(parsed.to)).toEqual([{ name: '山田 太郎', address: 'taro@example.jp' }]);
    expect(addresses(parsed.cc)).toEqual([{ name: 'Zoë 😀 "Quotes", Comma', address: 'zoe@example.org' }]);
    expect(addresses(parsed.replyTo)).toEqual([{ name: 'Отдел', address: 'dept@example.com' }]);
    expect(parsed.text?.trim()).toBe('Текст 日本語 🎉');
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.filename).toBe('отчёт 報告書 📎.pdf');
    expect(parsed.attachments[0]?.contentType).toBe('application/pdf');
  });

  it('the Message-ID is generated, random, and the same in the header and the result; Date and MIME-Version are set', async () => {
    const a = await compose({ to: [{ address: 'x@example.org' }], subject: 'one' });
    const b = await compose({ to: [{ address: 'x@example.org' }], subject: 'two' });
    expect(a.messageId).toMatch(MSG_ID);
    expect(b.messageId).not.toBe(a.messageId);
    const parsed = await parse(a.raw);
    expect(parsed.messageId).toBe(a.messageId);
    expect(headerBlock(a.raw)).toContain(`\r\nMessage-ID: ${a.messageId}\r\n`);
    expect(parsed.date).toBeInstanceOf(Date);
    expect(Math.abs((parsed.date?.getTime() ?? 0) - Date.now())).toBeLessThan(5 * 60_000);
    expect(parsed.headers.get('mime-version')).toBe('1.0');
    expect(a.markOriginal).toBeUndefined();
  });

  it('custom headers are sent, non-ASCII values encoded', async () => {
    const composed = await compose({
      to: [{ address: 'x@example.org' }],
      headers: { 'X-Campaign': '7', 'X-Note': 'Grüße 🎉', 'List-Unsubscribe': '<mailto:u@example.org>' },
    });
    const parsed = await parse(composed.raw);
    expect(parsed.headers.get('x-campaign')).toBe('7');
    // mailparser leaves unknown fields encoded: decode the RFC 2047 words here.
    expect(headerBlock(composed.raw)).not.toContain('Grüße');
    expect(libmime.decodeWords(String(parsed.headers.get('x-note')))).toBe('Grüße 🎉');
    expect(headerBlock(composed.raw)).toContain('List-Unsubscribe: <mailto:u@example.org>');
  });

  it('from defaults to the account email', async () => {
    const composed = await compose({ to: [{ address: 'x@example.org' }] });
    expect(addresses((await parse(composed.raw)).from)).toEqual([{ name: '', address: 'me@example.com' }]);
    expect(composed.envelope.from).toBe('me@example.com');
  });

  it('IDN domains are accepted and written as A-labels in the header and the envelope', async () => {
    const composed = await compose({ to: [{ name: 'Jörg', address: 'joerg@bücher.de' }] });
    expect(headerBlock(composed.raw)).toContain('<joerg@xn--bcher-kva.de>');
    expect(composed.envelope.to).toEqual(['joerg@xn--bcher-kva.de']);
  });
});

describe('composeMessage: bodies and attachments', () => {
  it('text and html come back as given, as multipart/alternative', async () => {
    const text = 'Hello\nsecond line with ü\n' + 'long '.repeat(100);
    const html = '<p>Hello <b>wörld</b> 🎉</p>';
    const composed = await compose({ to: [{ address: 'x@example.org' }], text, html });
    const parsed = await parse(composed.raw);
    expect(parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/alternative' });
    expect(parsed.text?.replace(/\r\n/g, '\n').trimEnd()).toBe(text.trimEnd());
    expect(parsed.html).toBe(html);
  });

  it('a subject-only message is legal: an empty text/plain body', async () => {
    const composed = await compose({ to: [{ address: 'x@example.org' }], subject: 'Just a subject' });
    const parsed = await parse(composed.raw);
    expect(parsed.subject).toBe('Just a subject');
    expect(parsed.headers.get('content-type')).toMatchObject({ value: 'text/plain' });
    expect(parsed.text ?? '').toBe('');
    expect(parsed.attachments).toEqual([]);
  });

  it('attachments are byte-exact, a 1 MB random binary included, and referenced ones keep their name and type', async () => {
    const binary = randomBytes(1024 * 1024);
    const stored = { filename: 'scan 日本.png', contentType: 'image/png', content: randomBytes(4096) };
    const sources = fakeSources(ORIGINAL, { '2': stored, '3': { filename: null, contentType: 'application/octet-stream', content: Buffer.from([0, 1, 2]) } });
    const composed = await compose(
      {
        to: [{ address: 'x@example.org' }],
        text: 'see attached',
        attachments: [
          { filename: 'random.bin', contentType: 'application/octet-stream', content: binary.toString('base64') },
          { mailbox: 'INBOX', id: 'm1', attachmentId: '2' },
          { mailbox: 'INBOX', id: 'm1', attachmentId: '3' },
          // MIME-style line breaks in the base64 are fine.
          { filename: 'wrapped.txt', content: 'aGVs\r\nbG8g\nd29y bGQ=' },
        ],
      },
      sources,
    );
    expect(sources.calls).toEqual(['attachment INBOX m1 2', 'attachment INBOX m1 3']);
    const parsed = await parse(composed.raw);
    expect(parsed.text?.trim()).toBe('see attached');
    const [random, scan, unnamed, wrapped] = parsed.attachments;
    expect(random?.filename).toBe('random.bin');
    expect(random?.content.equals(binary)).toBe(true);
    expect(scan?.filename).toBe('scan 日本.png');
    expect(scan?.contentType).toBe('image/png');
    expect(scan?.contentDisposition).toBe('attachment');
    expect(scan?.content.equals(stored.content)).toBe(true);
    expect(unnamed?.content.equals(Buffer.from([0, 1, 2]))).toBe(true);
    expect(wrapped?.content.toString()).toBe('hello world');
  });

  it('attachments without text or html still make a multipart/mixed message', async () => {
    const composed = await compose({ to: [{ address: 'x@example.org' }], attachments: [{ filename: 'a.txt', content: 'YQ==' }] });
    const parsed = await parse(composed.raw);
    expect(parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/mixed' });
    expect(parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([['a.txt', 'a']]);
  });

  it('a 10 MB attachment composes and comes back intact', async () => {
    const big = randomBytes(10 * 1024 * 1024);
    const composed = await compose({ to: [{ address: 'x@example.org' }], attachments: [{ filename: 'big.bin', content: big.toString('base64') }] });
    // base64 with line breaks: about 4/3 of the size plus CRLF every 76 characters, and little else.
    expect(composed.raw.length).toBeLessThan(big.length * 1.4);
    const parsed = await parse(composed.raw);
    expect(parsed.attachments[0]?.content.equals(big)).toBe(true);
  });
});

describe('composeMessage: Bcc and the envelope', () => {
  it('Bcc is never in the bytes but is in the envelope; the envelope has each address once, in order', async () => {
    const composed = await compose({
      from: { name: 'Sender', address: 'sender@example.com' },
      to: [{ address: 'a@example.org' }, { name: 'A again', address: 'A@Example.org' }],
      cc: [{ address: 'c@example.org' }],
      bcc: [{ name: 'Secret', address: 'hidden@example.net' }, { address: 'c@example.org' }],
      text: 'hi',
    });
    expect(composed.raw.toString('latin1')).not.toMatch(/hidden|^bcc:/im);
    const parsed = await parse(composed.raw);
    expect(parsed.bcc).toBeUndefined();
    expect(composed.envelope).toEqual({ from: 'sender@example.com', to: ['a@example.org', 'c@example.org', 'hidden@example.net'] });
  });

  it('a message with Bcc recipients only is accepted', async () => {
    const composed = await compose({ bcc: [{ address: 'hidden@example.net' }], text: 'hi' });
    expect(composed.envelope.to).toEqual(['hidden@example.net']);
    expect(composed.raw.toString('latin1')).not.toContain('hidden@example.net');
  });
});

describe('composeMessage: replies and forwards', () => {
  it('reply: threading headers, Re: subject, the original From as recipient, \\Answered', async () => {
    const sources = fakeSources();
    const composed = await compose({ text: 'Sounds good', reference: { mailbox: 'INBOX', id: 'm1', action: 'reply' } }, sources);
    expect(sources.calls).toEqual(['original INBOX m1']);
    const parsed = await parse(composed.raw);
    expect(parsed.inReplyTo).toBe('<orig@example.com>');
    expect(parsed.references).toEqual(['<root@example.com>', '<mid@example.com>', '<orig@example.com>']);
    expect(parsed.subject).toBe('Re: Plan für Montag');
    expect(addresses(parsed.to)).toEqual([{ name: 'Bob', address: 'bob@example.com' }]);
    expect(parsed.cc).toBeUndefined();
    expect(composed.envelope.to).toEqual(['bob@example.com']);
    expect(composed.markOriginal).toEqual({ mailbox: 'INBOX', id: 'm1', flag: '\\Answered' });
  });

  it('reply goes to the Reply-To when the original has one, and does not stack Re:', async () => {
    const sources = fakeSources({ ...ORIGINAL, subject: 'RE: Plan', replyTo: [{ name: 'List', address: 'list@example.org' }] });
    const composed = await compose({ text: 'ok', reference: { mailbox: 'INBOX', id: 'm1', action: 'reply' } }, sources);
    const parsed = await parse(composed.raw);
    expect(parsed.subject).toBe('RE: Plan');
    expect(composed.envelope.to).toEqual(['list@example.org']);
  });

  it('replyAll: From plus To and Cc, without the account address in any case and without duplicates', async () => {
    const composed = await compose({ text: 'all', reference: { mailbox: 'INBOX', id: 'm1', action: 'replyAll' } }, fakeSources());
    const parsed = await parse(composed.raw);
    expect(addresses(parsed.to)).toEqual([
      { name: 'Bob', address: 'bob@example.com' },
      { name: 'Carol', address: 'carol@example.com' },
    ]);
    expect(addresses(parsed.cc)).toEqual([{ name: '', address: 'dave@example.com' }]);
    expect(composed.envelope.to).toEqual(['bob@example.com', 'carol@example.com', 'dave@example.com']);
    expect(composed.raw.toString('latin1').toLowerCase()).not.toContain('me@example.com>');
    expect(composed.markOriginal?.flag).toBe('\\Answered');
  });

  it('replyAll also leaves out the From address used when it is not the account email', async () => {
    const original = { ...ORIGINAL, to: [...ORIGINAL.to, { name: 'Alias', address: 'Alias@example.com' }] };
    const composed = await compose(
      { from: { address: 'alias@example.com' }, text: 'x', reference: { mailbox: 'INBOX', id: 'm1', action: 'replyAll' } },
      fakeSources(original),
    );
    expect(composed.envelope.to).toEqual(['bob@example.com', 'carol@example.com', 'dave@example.com']);
  });

  it('a given to (and cc) replaces the default recipients; a given subject is kept; threading stays', async () => {
    const composed = await compose(
      {
        to: [{ address: 'me@example.com' }],
        cc: [{ address: 'ops@example.org' }],
        subject: 'Own subject',
        text: 'x',
        reference: { mailbox: 'INBOX', id: 'm1', action: 'replyAll' },
      },
      fakeSources(),
    );
    const parsed = await parse(composed.raw);
    expect(parsed.subject).toBe('Own subject');
    expect(composed.envelope.to).toEqual(['me@example.com', 'ops@example.org']);
    expect(parsed.inReplyTo).toBe('<orig@example.com>');
  });

  it('replyAll without to but with cc keeps the body cc as it is', async () => {
    const composed = await compose(
      { cc: [{ address: 'ops@example.org' }], reference: { mailbox: 'INBOX', id: 'm1', action: 'replyAll' } },
      fakeSources(),
    );
    expect(composed.envelope.to).toEqual(['bob@example.com', 'carol@example.com', 'ops@example.org']);
  });

  it('original addresses that cannot be sent to are skipped', async () => {
    const original = { ...ORIGINAL, to: [{ name: 'undisclosed-recipients', address: '' }, { name: '', address: 'localuser' }] };
    const composed = await compose({ reference: { mailbox: 'INBOX', id: 'm1', action: 'replyAll' } }, fakeSources(original));
    expect(composed.envelope.to).toEqual(['bob@example.com', 'dave@example.com']);
  });

  it('an original without Message-ID gives no In-Reply-To and only its References', async () => {
    const composed = await compose({ reference: { mailbox: 'INBOX', id: 'm1', action: 'reply' } }, fakeSources({ ...ORIGINAL, messageId: null, references: [] }));
    const parsed = await parse(composed.raw);
    expect(parsed.inReplyTo).toBeUndefined();
    expect(parsed.references).toBeUndefined();
    expect(parsed.subject).toBe('Re: Plan für Montag');
  });

  it('forward: the original attached as message/rfc822 byte for byte, Fwd: subject, threading headers, $Forwarded', async () => {
    const sources = fakeSources();
    const composed = await compose(
      { to: [{ address: 'eve@example.org' }], text: 'FYI', reference: { mailbox: 'Archive', id: 'm9', action: 'forward' } },
      sources,
    );
    expect(sources.calls).toEqual(['original Archive m9', 'raw Archive m9']);
    const parsed = await parse(composed.raw);
    expect(parsed.subject).toBe('Fwd: Plan für Montag');
    expect(parsed.inReplyTo).toBe('<orig@example.com>');
    expect(parsed.references).toEqual(['<root@example.com>', '<mid@example.com>', '<orig@example.com>']);
    expect(parsed.text?.trim()).toBe('FYI');
    expect(parsed.attachments).toHaveLength(1);
    const [attached] = parsed.attachments;
    expect(attached?.contentType).toBe('message/rfc822');
    expect(attached?.filename).toBe('Plan für Montag.eml');
    expect(attached?.content.equals(ORIGINAL_RAW)).toBe(true);
    // RFC 2046 §5.2.1: a message/rfc822 body is not encoded, so its bytes are in the output as they are.
    expect(composed.raw.includes(ORIGINAL_RAW)).toBe(true);
    expect(composed.envelope.to).toEqual(['eve@example.org']);
    expect(composed.markOriginal).toEqual({ mailbox: 'Archive', id: 'm9', flag: '$Forwarded' });
  });

  it('forward does not stack Fwd: and takes other attachments beside the original', async () => {
    const composed = await compose(
      {
        to: [{ address: 'eve@example.org' }],
        attachments: [{ filename: 'note.txt', content: 'bm90ZQ==' }],
        reference: { mailbox: 'INBOX', id: 'm1', action: 'forward' },
      },
      fakeSources({ ...ORIGINAL, subject: 'Fw: Plan' }),
    );
    const parsed = await parse(composed.raw);
    expect(parsed.subject).toBe('Fw: Plan');
    expect(parsed.attachments.map((a) => a.filename)).toEqual(['Fw Plan.eml', 'note.txt']);
  });

  it('forward needs a recipient: there are no defaults', async () => {
    const err = await rejection(compose({ text: 'x', reference: { mailbox: 'INBOX', id: 'm1', action: 'forward' } }, fakeSources()));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.message).toMatch(/^body\/to /);
  });

  it('a reply-all to a note to self has nobody to go to', async () => {
    const self: OriginalMessage = { ...ORIGINAL, from: [{ name: '', address: 'me@example.com' }], to: [{ name: '', address: 'ME@example.com' }], cc: [] };
    const err = await rejection(compose({ reference: { mailbox: 'INBOX', id: 'm1', action: 'replyAll' } }, fakeSources(self)));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.message).toMatch(/^body\/to /);
  });

  it("the mail layer's errors for the original pass through", async () => {
    const err = await rejection(compose({ text: 'x', reference: { mailbox: 'INBOX', id: 'gone', action: 'reply' } }, fakeSources()));
    expect(err.code).toBe('MESSAGE_NOT_FOUND');
  });
});

describe('composeMessage: validation', () => {
  async function failure(body: SendBody, options: ComposeOptions = OPTIONS): Promise<string> {
    const err = await rejection(compose(body, NO_SOURCES, options));
    expect(err.code).toBe('VALIDATION_FAILED');
    return err.message;
  }
  const to = [{ address: 'x@example.org' }];

  it('from is required when the account has no email', async () => {
    expect(await failure({ to }, { ...OPTIONS, accountEmail: null })).toMatch(/^body\/from is required: this account has no email/);
    const ok = await compose({ from: { address: 'a@example.org' }, to }, NO_SOURCES, { ...OPTIONS, accountEmail: null });
    expect(ok.envelope.from).toBe('a@example.org');
  });

  it('a message needs at least one recipient', async () => {
    expect(await failure({ text: 'x' })).toMatch(/^body\/to is required/);
    expect(await failure({ to: [], cc: [], bcc: [], text: 'x' })).toMatch(/^body\/to is required/);
  });

  it('every address is checked, the detail naming the field and index', async () => {
    expect(await failure({ to, cc: [{ address: 'ok@example.org' }, { address: 'Bob <bob@example.org>' }] })).toBe('body/cc/1/address is not an email address');
    expect(await failure({ to: [{ address: 'a@example.org, b@example.org' }] })).toBe('body/to/0/address is not an email address');
    expect(await failure({ to, bcc: [{ address: 'a@example.org\r\nRCPT TO:<x@evil>' }] })).toBe('body/bcc/0/address is not an email address');
    expect(await failure({ to, replyTo: [{ address: '@example.org' }] })).toBe('body/replyTo/0/address is not an email address');
    expect(await failure({ to: [{ address: 'nobody@' }] })).toBe('body/to/0/address is not an email address');
    expect(await failure({ from: { address: 'nodomain' }, to })).toBe('body/from/address is not an email address');
    expect(await failure({ to: [{ name: 'Evil\r\nBcc: x@evil', address: 'x@example.org' }] })).toBe('body/to/0/name must not contain CR or LF');
  });

  it('custom headers: field names per RFC 5322, no line breaks, no structural fields', async () => {
    expect(await failure({ to, headers: { 'X Bad': '1' } })).toMatch(/^body\/headers\/X Bad is not a header field name/);
    expect(await failure({ to, headers: { 'X-Ü': '1' } })).toMatch(/^body\/headers\/X-Ü is not a header field name/);
    expect(await failure({ to, headers: { 'X-Inject': 'a\r\nBcc: x@evil' } })).toBe('body/headers/X-Inject must not contain CR or LF');
    for (const name of ['Subject', 'message-id', 'BCC', 'Content-Type', 'References', 'MIME-Version', 'Date', 'Reply-To']) {
      expect(await failure({ to, headers: { [name]: 'x' } })).toMatch(new RegExp(`^body/headers/${name} is set by the gateway`));
    }
  });

  it('a base64 attachment must be base64', async () => {
    expect(await failure({ to, attachments: [{ content: 'YQ==' }, { filename: 'x', content: 'not base64!' }] })).toBe(
      'body/attachments/1/content is not base64',
    );
    expect(await failure({ to, attachments: [{ content: 'YQ=a' }] })).toBe('body/attachments/0/content is not base64');
    expect(await failure({ to, attachments: [{ content: 'Y' }] })).toBe('body/attachments/0/content is not base64');
  });

  it('a base64 attachment has a file name without control characters and a media type', async () => {
    expect(await failure({ to, attachments: [{ filename: 'a\r\nBcc: x@evil', content: 'YQ==' }] })).toBe(
      'body/attachments/0/filename must not contain control characters',
    );
    expect(await failure({ to, attachments: [{ contentType: 'pdf', content: 'YQ==' }] })).toMatch(/^body\/attachments\/0\/contentType is not a media type/);
    expect(await failure({ to, attachments: [{ contentType: 'text/plain\r\nBcc: x@evil', content: 'YQ==' }] })).toMatch(
      /^body\/attachments\/0\/contentType is not a media type/,
    );
    const ok = await compose({ to, attachments: [{ filename: 'a.txt', contentType: 'text/plain; charset=utf-8', content: 'w7w=' }] });
    const [attachment] = (await parse(ok.raw)).attachments;
    expect(attachment?.contentType).toBe('text/plain');
    expect(attachment?.content.toString()).toBe('ü');
  });

  it('line breaks in a subject cannot add header fields', async () => {
    const composed = await compose({ to, subject: 'Hi\r\nBcc: evil@example.net' });
    const parsed = await parse(composed.raw);
    expect(parsed.bcc).toBeUndefined();
    expect(parsed.subject).toBe('Hi Bcc: evil@example.net');
    expect(composed.envelope.to).toEqual(['x@example.org']);
  });
});

describe('isEmailAddress', () => {
  it('takes one addr-spec, IDN and quoted local parts included', () => {
    for (const ok of ['a@example.org', 'first.last+tag@sub.example.co.uk', 'user@bücher.de', 'пользователь@пример.рф', '"john doe"@example.org', 'x@[192.0.2.1]', 'root@localhost']) {
      expect(isEmailAddress(ok), ok).toBe(true);
    }
    for (const bad of ['', 'a', '@b', 'a@', 'a@b@c', 'a b@c.org', 'a@b c.org', '<a@b.org>', 'a@b.org\n', 'a..b@c.org', '.a@c.org', 'a@-b.org', 'a@b..org', `${'x'.repeat(65)}@c.org`]) {
      expect(isEmailAddress(bad), bad).toBe(false);
    }
  });
});

describe('prepareRawMessage', () => {
  const opts = OPTIONS;

  it('removes every Bcc field with its folded lines and changes no other byte (CRLF)', () => {
    const before = 'Message-ID: <m1@example.com>\r\nFrom: Ann <ann@example.com>\r\nTo: bob@example.org\r\n';
    const bcc1 = 'Bcc: hidden@example.net,\r\n\tsecret@example.net,\r\n  third@example.net\r\n';
    const middle = 'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nX-Trailing-Space: a \r\n';
    const bcc2 = 'BCC : late@example.net\r\n';
    const after = 'Cc: carol@example.org\r\n\r\nBody line\r\nBcc: this is the body, not a header\r\n\r\n';
    const raw = Buffer.from(before + bcc1 + middle + bcc2 + after);
    const prepared = prepareRawMessage(raw, {}, opts);
    expect(prepared.raw.equals(Buffer.from(before + middle + after))).toBe(true);
    expect(prepared.messageId).toBe('<m1@example.com>');
    expect(prepared.envelope).toEqual({
      from: 'ann@example.com',
      to: ['bob@example.org', 'carol@example.org', 'hidden@example.net', 'secret@example.net', 'third@example.net', 'late@example.net'],
    });
  });

  it('handles bare LF messages and keeps 8-bit bytes and the body as they are', () => {
    const head = 'From: Jörg <joerg@example.com>\nTo: Team: a@example.org, "B, b" <b@example.org>;, c@example.org\nMessage-ID: <lf@example.com>\n';
    const body = '\nbinary-ish \u00ff\u0000\r\u0080 body\n';
    const raw = Buffer.concat([Buffer.from(head), Buffer.from('Bcc: x@example.net\n'), Buffer.from('Subject: x\n'), Buffer.from(body, 'latin1')]);
    const prepared = prepareRawMessage(raw, {}, opts);
    expect(prepared.raw.equals(Buffer.concat([Buffer.from(head), Buffer.from('Subject: x\n'), Buffer.from(body, 'latin1')]))).toBe(true);
    expect(prepared.envelope).toEqual({ from: 'joerg@example.com', to: ['a@example.org', 'b@example.org', 'c@example.org', 'x@example.net'] });
  });

  it('IDN domains in the header block go into the envelope as A-labels; the bytes stay UTF-8 (RFC 6532)', () => {
    const raw = Buffer.from('From: Jörg <joerg@bücher.de>\r\nTo: ana@exämple.org, пользователь@пример.рф\r\nMessage-ID: <i@x>\r\n\r\nhi\r\n');
    const prepared = prepareRawMessage(raw, {}, opts);
    expect(prepared.raw).toBe(raw);
    expect(prepared.envelope).toEqual({ from: 'joerg@xn--bcher-kva.de', to: ['ana@xn--exmple-cua.org', 'пользователь@пример.рф'] });
  });

  it('only an empty Message-ID field is replaced', () => {
    const raw = Buffer.from('From: ann@example.com\r\nMessage-ID: \r\nTo: bob@example.org\r\n\r\nhi\r\n');
    const prepared = prepareRawMessage(raw, {}, opts);
    expect(prepared.raw.toString()).toBe(`Message-ID: ${prepared.messageId}\r\nFrom: ann@example.com\r\nTo: bob@example.org\r\n\r\nhi\r\n`);
    const bare = prepareRawMessage(Buffer.from('From: ann@example.com\r\nMessage-ID: abc@example.com\r\nTo: bob@example.org\r\n\r\nhi\r\n'), {}, opts);
    expect(bare.messageId).toBe('<abc@example.com>');
    expect(bare.raw.toString()).toContain('\r\nMessage-ID: abc@example.com\r\n');
  });

  it('a message without Bcc and with a Message-ID is sent as the very same bytes', () => {
    const raw = Buffer.from('From: ann@example.com\r\nTo: bob@example.org\r\nMessage-ID:\r\n <folded@example.com>\r\n\r\nhi\r\n');
    const prepared = prepareRawMessage(raw, {}, opts);
    expect(prepared.raw).toBe(raw);
    expect(prepared.messageId).toBe('<folded@example.com>');
  });

  it('adds a Message-ID at the top when there is none, with the message’s own line break', () => {
    const crlf = Buffer.from('From: ann@example.com\r\nTo: bob@example.org\r\n\r\nhi\r\n');
    const a = prepareRawMessage(crlf, {}, opts);
    expect(a.messageId).toMatch(MSG_ID);
    expect(a.raw.equals(Buffer.concat([Buffer.from(`Message-ID: ${a.messageId}\r\n`), crlf]))).toBe(true);
    const lf = Buffer.from('From: ann@example.com\nTo: bob@example.org\n\nhi\n');
    const b = prepareRawMessage(lf, {}, opts);
    expect(b.raw.equals(Buffer.concat([Buffer.from(`Message-ID: ${b.messageId}\n`), lf]))).toBe(true);
  });

  it('the added Message-ID is what mailparser reads back, and Bcc is gone', async () => {
    const raw = Buffer.from('From: ann@example.com\r\nBcc: hidden@example.net\r\nSubject: s\r\n\r\nhi\r\n');
    const prepared = prepareRawMessage(raw, {}, opts);
    const parsed = await parse(prepared.raw);
    expect(parsed.messageId).toBe(prepared.messageId);
    expect(parsed.bcc).toBeUndefined();
    expect(prepared.envelope.to).toEqual(['hidden@example.net']);
  });

  it('override recipients replace the header ones; Bcc is removed all the same', () => {
    const raw = Buffer.from('From: ann@example.com\r\nTo: bob@example.org\r\nBcc: hidden@example.net\r\nMessage-ID: <o@x>\r\n\r\nhi\r\n');
    const prepared = prepareRawMessage(raw, { to: ['Zed <zed@example.org>'], bcc: ['q@example.org', 'ZED@example.org'] }, opts);
    expect(prepared.envelope).toEqual({ from: 'ann@example.com', to: ['zed@example.org', 'q@example.org'] });
    expect(prepared.raw.toString()).not.toContain('hidden');
    for (const cc of ['not an address', 'ok@example.org, bob', '']) {
      const err = thrown(() => prepareRawMessage(raw, { to: ['ok@example.org'], cc: [cc] }, opts));
      expect(err.code).toBe('VALIDATION_FAILED');
      expect(err.message).toBe('querystring/cc/0 is not an email address');
    }
  });

  it('the envelope sender is the From address, else the account email, else a validation error', () => {
    const noFrom = Buffer.from('To: bob@example.org\r\nMessage-ID: <n@x>\r\n\r\nhi\r\n');
    expect(prepareRawMessage(noFrom, {}, opts).envelope.from).toBe('me@example.com');
    const err = thrown(() => prepareRawMessage(noFrom, {}, { ...opts, accountEmail: null }));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.message).toMatch(/From/);
  });

  it('no recipients is a validation error naming to', () => {
    const err = thrown(() => prepareRawMessage(Buffer.from('From: ann@example.com\r\nTo: undisclosed-recipients:;\r\n\r\nhi\r\n'), {}, opts));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.message).toMatch(/^to is required/);
  });

  it('a recipient in the headers that is not an address is refused', () => {
    for (const to of ['bob', 'bob, carol@example.org', 'Team: x@example.org, nobody@;']) {
      const err = thrown(() => prepareRawMessage(Buffer.from(`From: ann@example.com\r\nTo: ${to}\r\n\r\nhi\r\n`), {}, opts));
      expect(err.code).toBe('VALIDATION_FAILED');
      expect(err.message).toBe(`body: the To field ${JSON.stringify(to)} names a mailbox that is not an email address`);
    }
    const from = thrown(() => prepareRawMessage(Buffer.from('From: ann\r\nTo: bob@example.org\r\n\r\nhi\r\n'), {}, opts));
    expect(from.message).toMatch(/^body: the From field/);
  });

  it('something that is not a message is refused', () => {
    for (const text of ['From: ann@example.com\r\nTo: bob@example.org\r\n', 'hello world\r\n\r\nbody', '\r\nFrom: a@b.org\r\n\r\n', ' folded: x\r\n\r\n', 'From a@b.org Mon Jan 1\nTo: b@c.org\n\nx', '']) {
      const err = thrown(() => prepareRawMessage(Buffer.from(text), {}, opts));
      expect(err.code, JSON.stringify(text)).toBe('VALIDATION_FAILED');
      expect(err.message).toMatch(/^body is not an RFC 5322 message/);
    }
  });
});
