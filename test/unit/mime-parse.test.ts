import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MessageTooLargeError, parseMessage } from '../../src/mail/mime/parse-message.js';
import { extractAttachment } from '../../src/mail/mime/extract-attachment.js';
import { readAll } from '../support/assertions.js';
import type { ParsedAddress, ParsedMessage } from '../../src/mail/mime/parse-message.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpusFiles, enmimeDir, readCorpus } from '../support/corpus.js';

/** Joins lines with CRLF; Buffers are spliced in as raw bytes (for 8-bit charsets). */
function message(...parts: Array<string | Buffer>): Buffer {
  const chunks: Buffer[] = [];
  parts.forEach((part, i) => {
    if (i > 0) chunks.push(Buffer.from('\r\n'));
    chunks.push(Buffer.isBuffer(part) ? part : Buffer.from(part, 'utf8'));
  });
  return Buffer.concat(chunks);
}

function encodedWord(charset: string, bytes: Buffer): string {
  return `=?${charset}?B?${bytes.toString('base64')}?=`;
}

function expectAddressList(list: unknown): void {
  expect(Array.isArray(list)).toBe(true);
  for (const entry of list as ParsedAddress[]) {
    expect(Object.keys(entry).sort()).toEqual(['address', 'name']);
    expect(typeof entry.name).toBe('string');
    expect(typeof entry.address).toBe('string');
    expect(entry.address).not.toBe('');
  }
}

function expectWellFormed(m: ParsedMessage): void {
  expect(Object.keys(m).sort()).toEqual(
    [
      'attachments', 'bcc', 'cc', 'date', 'from', 'hasAttachments', 'headers', 'html', 'inReplyTo',
      'messageId', 'preview', 'references', 'replyTo', 'subject', 'text', 'to',
    ].sort(),
  );
  // The result is cached as JSON: it must survive a round trip unchanged (no Buffer, Date, stream).
  expect(JSON.parse(JSON.stringify(m))).toEqual(m);
  for (const key of ['messageId', 'subject', 'inReplyTo', 'text', 'html', 'preview'] as const) {
    expect(m[key] === null || typeof m[key] === 'string').toBe(true);
  }
  for (const key of ['from', 'to', 'cc', 'bcc', 'replyTo'] as const) expectAddressList(m[key]);
  if (m.date !== null) expect(new Date(m.date).toISOString()).toBe(m.date);
  if (m.messageId !== null) expect(m.messageId).toMatch(/^<[^<>\s]+>$/);
  if (m.inReplyTo !== null) expect(m.inReplyTo).toMatch(/^<[^<>\s]+>$/);
  for (const ref of m.references) expect(ref).toMatch(/^<[^<>\s]+>$/);
  for (const h of m.headers) {
    expect(h.key).toMatch(/^[^A-Z:\s]+$/);
    expect(h.value).not.toMatch(/[\r\n]/);
  }
  if (m.preview !== null) {
    expect(Array.from(m.preview).length).toBeLessThanOrEqual(200);
    expect(m.preview).not.toMatch(/\s{2}|^\s|\s$/);
  }
  const ids = new Set<string>();
  for (const a of m.attachments) {
    expect(Object.keys(a).sort()).toEqual(['contentId', 'contentType', 'disposition', 'filename', 'id', 'partId', 'size']);
    expect(a.id).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(a.id).toMatch(/^[1-9][0-9]*(\.[1-9][0-9]*)*$/); // an IMAP body part number
    expect(a.partId).toBe(a.id);
    expect(ids.has(a.id)).toBe(false);
    ids.add(a.id);
    expect(a.contentType).toMatch(/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/);
    expect(['attachment', 'inline']).toContain(a.disposition);
    expect(Number.isInteger(a.size) && a.size >= 0).toBe(true);
    expect(a.filename === null || (typeof a.filename === 'string' && a.filename.length > 0)).toBe(true);
    if (a.contentId !== null) expect(a.contentId).not.toMatch(/^<|>$/);
  }
  expect(typeof m.hasAttachments).toBe('boolean');
  if (m.attachments.some((a) => a.disposition === 'attachment')) expect(m.hasAttachments).toBe(true);
  if (m.attachments.length === 0) expect(m.hasAttachments).toBe(false);
}

describe('parseMessage over the mail-gem corpus', () => {
  const files = corpusFiles();

  it('finds the corpus', () => {
    expect(files.length).toBeGreaterThanOrEqual(100);
  });

  it.each(files)('%s parses into well-formed output, the same from a Buffer and from a stream', async (file) => {
    const bytes = readCorpus(file);
    const fromBuffer = await parseMessage(bytes);
    expectWellFormed(fromBuffer);
    // Small, uneven chunks: boundaries and multibyte characters get split across writes.
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 37) chunks.push(bytes.subarray(i, i + 37));
    const fromStream = await parseMessage(Readable.from(chunks));
    expect(fromStream).toEqual(fromBuffer);
  });
});

describe('charsets', () => {
  it('decodes ISO-2022-JP text (corpus multi_charset/japanese_iso_2022.eml)', async () => {
    const m = await parseMessage(readCorpus('multi_charset/japanese_iso_2022.eml'));
    expect(m.text).toContain('すみません。');
    expect(m.subject).toBe('まみむめも');
    expect(m.to).toEqual([{ name: 'みける', address: 'raasdnil@gmail.com' }]);
  });

  it('decodes Shift_JIS text (corpus multi_charset/japanese_shift_jis.eml)', async () => {
    const m = await parseMessage(readCorpus('multi_charset/japanese_shift_jis.eml'));
    expect(m.text).toContain('あいうえお');
    expect(m.text).toContain('このメールはテスト用のメールです。');
  });

  it('decodes ks_c_5601-1987 text (corpus multi_charset/ks_c_5601-1987.eml)', async () => {
    const m = await parseMessage(readCorpus('multi_charset/ks_c_5601-1987.eml'));
    expect(m.text?.trim()).toBe('스티해');
  });

  it('decodes an EUC-KR encoded-word subject and body (corpus plain_emails/raw_email.eml)', async () => {
    const m = await parseMessage(readCorpus('plain_emails/raw_email.eml'));
    expect(m.subject).toBe('NOTE: 한국말로 하는 것');
    expect(m.text).toContain('대부분의 마찬가지로, 우리는 하나님을 믿습니다.');
  });

  it('decodes a windows-1251 encoded-word display name (corpus plain_emails/raw_email_bad_time.eml)', async () => {
    const m = await parseMessage(readCorpus('plain_emails/raw_email_bad_time.eml'));
    expect(m.from[0]?.name).toBe('Атиковa');
  });

  it('reads raw UTF-8 headers (RFC 6532, corpus rfc6532/utf8_headers.eml)', async () => {
    const m = await parseMessage(readCorpus('rfc6532/utf8_headers.eml'));
    expect(m.subject).toBe('Säying Hello');
    expect(m.from).toEqual([{ name: 'Jöhn Doe', address: 'jdöe@mächine.example' }]);
  });

  // Byte sequences written out from the charsets' tables, so the test does not use the decoder it checks.
  const cases: Array<{ charset: string; bytes: number[]; expected: string }> = [
    { charset: 'GB2312', bytes: [0xd6, 0xd0, 0xce, 0xc4], expected: '中文' },
    { charset: 'GBK', bytes: [0xd6, 0xd0, 0xce, 0xc4, 0xa8, 0xa6], expected: '中文é' },
    { charset: 'GB18030', bytes: [0xd6, 0xd0, 0x94, 0x39, 0xfc, 0x36], expected: '中😀' },
    { charset: 'Big5', bytes: [0xa4, 0xa4, 0xa4, 0xe5], expected: '中文' },
    { charset: 'KOI8-R', bytes: [0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4], expected: 'Привет' },
    { charset: 'windows-1251', bytes: [0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2], expected: 'Привет' },
    { charset: 'windows-1252', bytes: [0x63, 0x61, 0x66, 0xe9, 0x20, 0x80], expected: 'café €' },
    { charset: 'ISO-8859-2', bytes: [0xa3, 0xf3, 0x64, 0xbc], expected: 'Łódź' },
    { charset: 'ISO-2022-JP', bytes: [0x1b, 0x24, 0x42, 0x46, 0x7c, 0x4b, 0x5c, 0x1b, 0x28, 0x42], expected: '日本' },
  ];

  it.each(cases)('decodes $charset body and subject to Unicode', async ({ charset, bytes, expected }) => {
    const raw = Buffer.from(bytes);
    const m = await parseMessage(
      message(
        `Subject: ${encodedWord(charset, raw)}`,
        'MIME-Version: 1.0',
        `Content-Type: text/plain; charset="${charset}"`,
        'Content-Transfer-Encoding: 8bit',
        '',
        Buffer.concat([Buffer.from('<'), raw, Buffer.from('>')]),
      ),
    );
    expect(m.subject).toBe(expected);
    expect(m.text?.trim()).toBe(`<${expected}>`);
  });

  it('decodes an HTML part from its charset too', async () => {
    const m = await parseMessage(
      message(
        'Content-Type: text/html; charset=big5',
        '',
        Buffer.concat([Buffer.from('<p>'), Buffer.from([0xa4, 0xa4, 0xa4, 0xe5]), Buffer.from('</p>')]),
      ),
    );
    expect(m.html).toContain('<p>中文</p>');
    expect(m.preview).toBe('中文');
  });

  it('falls back instead of throwing on an unknown charset', async () => {
    const m = await parseMessage(
      message(
        'Subject: =?x-no-such-charset?Q?Caf=C3=A9?= ok',
        'Content-Type: text/plain; charset="x-no-such-charset"',
        '',
        'plain ascii words survive',
      ),
    );
    expect(m.text).toContain('plain ascii words survive');
    expect(m.subject).toContain('ok');
  });

  it('decodes raw 8-bit header bytes with the body charset when they are not UTF-8', async () => {
    const m = await parseMessage(
      message(
        Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xa4, 0xa4, 0xa4, 0xe5])]),
        'Content-Type: text/plain; charset=big5',
        '',
        'x',
      ),
    );
    expect(m.subject).toBe('中文');
  });

  it('never decodes UTF-7 (it would smuggle markup past filters)', async () => {
    const m = await parseMessage(message('Content-Type: text/html; charset=utf-7', '', '+ADw-script+AD4-'));
    expect(m.html).not.toContain('<script>');
  });
});

describe('multipart/digest (RFC 2046 §5.1.5)', () => {
  const entry = (n: number): string => `From: list${n}@example.com\r\nSubject: entry ${n}\r\n\r\nBody of entry ${n}\r\n`;
  const digest = [
    'From: list@example.com',
    'Subject: digest',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    '--outer',
    'Content-Type: text/plain',
    '',
    'Today in the list:',
    '--outer',
    'Content-Type: multipart/digest; boundary="d"',
    '',
    '--d',
    '',
    entry(1),
    '--d',
    '',
    entry(2),
    '--d',
    'Content-Type: text/plain',
    '',
    'A part that says what it is stays what it says.',
    '--d--',
    '--outer--',
    '',
  ].join('\r\n');

  it('lists the entries without a Content-Type as attached messages, not as text', async () => {
    const m = await parseMessage(Buffer.from(digest));
    expect(m.text).toContain('Today in the list:');
    expect(m.text).not.toContain('Body of entry');
    expect(m.attachments.filter((a) => a.contentType === 'message/rfc822').map((a) => a.id)).toEqual(['2.1', '2.2']);
    expect(m.hasAttachments).toBe(true);
    const first = await readAll((await extractAttachment(Buffer.from(digest), '2.1'))!.content);
    expect(first.toString().trimEnd()).toBe(entry(1).trimEnd());
    expect(first.length).toBe(m.attachments.find((a) => a.id === '2.1')!.size);
  });

  it('parses the same whatever the chunks of a stream', async () => {
    const whole = await parseMessage(Buffer.from(digest));
    for (const size of [1, 2, 3, 7, 64]) {
      const bytes = Buffer.from(digest);
      const chunks = Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
      expect(await parseMessage(Readable.from(chunks)), `${size}-byte chunks`).toEqual(whole);
    }
  });

  it('changes nothing outside a digest', async () => {
    const plain = Buffer.from(['Subject: x', 'Content-Type: multipart/mixed; boundary="b"', '', '--b', '', 'no header: text/plain here', '--b--', ''].join('\r\n'));
    const m = await parseMessage(plain);
    expect(m.text).toContain('no header: text/plain here');
    expect(m.attachments).toEqual([]);
  });
});

describe('boundary lines with transport padding (RFC 2046 §5.1.1)', () => {
  it('end no part early: white space after a delimiter line is padding', async () => {
    const m = await parseMessage(
      Buffer.from(
        ['Subject: padded', 'Content-Type: multipart/mixed; boundary="b"', '', '--b \t', 'Content-Type: text/plain', '', 'first line', '--b not a delimiter', 'still the first part', '--b  ', 'Content-Type: application/octet-stream; name="x.bin"', 'Content-Transfer-Encoding: base64', '', Buffer.from('payload bytes').toString('base64'), '--b--   ', ''].join('\r\n'),
      ),
    );
    expect(m.text).toContain('first line');
    expect(m.text).toContain('still the first part');
    expect(m.attachments.map((a) => [a.filename, a.size])).toEqual([['x.bin', 13]]);
  });
});

describe('a multipart whose headers lost their empty line', () => {
  it('ends the header block at the preamble, so the first part is read (enmime mail/qp-utf8-header-no-break.raw)', async () => {
    const m = await parseMessage(readFileSync(path.join(enmimeDir(), 'mail/qp-utf8-header-no-break.raw')));
    expect(m.text).toContain('Nullam venenatis ante');
    expect(m.subject).toBe('MIME UTF8 Test ¢ More Text');
  });
});

describe('header decoding at byte level', () => {
  const subjectOf = async (...headerBytes: Array<string | Buffer>): Promise<string | null> =>
    (await parseMessage(message(Buffer.concat([Buffer.from('Subject: '), ...headerBytes.map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(b, 'latin1')))]), '', 'x'))).subject;

  it('keeps raw 8-bit bytes inside an encoded word as bytes of its charset', async () => {
    expect(await subjectOf('=?iso-8859-1?Q?Gr', Buffer.from([0xfc, 0xdf]), 'e_aus_K', Buffer.from([0xf6]), 'ln?=')).toBe('Grüße aus Köln');
    const m = await parseMessage(message(Buffer.concat([Buffer.from('From: =?iso-8859-1?Q?J'), Buffer.from([0xf6]), Buffer.from('rg?= <j@example.com>')]), '', 'x'));
    expect(m.from).toEqual([{ name: 'Jörg', address: 'j@example.com' }]);
  });

  it('decodes UTF-7 in a header, and charsets named with an RFC 2231 language or garbage glued on', async () => {
    expect(await subjectOf('=?utf-7?Q?Hi_+AOQ-?=')).toBe('Hi ä');
    expect(await subjectOf('=?utf-8*de?Q?Gr=C3=BC=C3=9Fe?=')).toBe('Grüße');
    expect(await subjectOf('=?windows-1252http-equiv?Q?caf=E9?=')).toBe('café');
  });

  it('joins adjacent encoded words of one charset before decoding, so a character split across them stays whole', async () => {
    // "é" is C3 A9 in UTF-8: one byte in each word.
    expect(await subjectOf('=?utf-8?B?', Buffer.from([0xc3]).toString('base64'), '?= =?utf-8?B?', Buffer.from([0xa9]).toString('base64'), '?=')).toBe('é');
    // The white space between adjacent encoded words goes (RFC 2047 §6.2); text between them stays.
    expect(await subjectOf('=?utf-8?Q?a?= =?utf-8?Q?b?= c =?utf-8?Q?d?=')).toBe('ab c d');
  });

  it('takes an encoded word in the address itself only when it decodes to a plain address', async () => {
    const m = await parseMessage(message('To: x <=?utf-8?Q?a=40b.example?=>, y <=?utf-8?Q?=22evil=22_=3Cceo=40bank.example=3E?=@example.com>', '', 'x'));
    expect(m.to).toEqual([{ name: 'x', address: 'a@b.example' }]);
  });
});

describe('attachments', () => {
  it('decodes RFC 2231 file names with charset and continuations', async () => {
    const long = await parseMessage(readCorpus('multi_charset/japanese_attachment_long_name.eml'));
    expect(long.attachments.map((a) => a.filename)).toEqual([`${'かきくけこ'.repeat(5)}.txt`]);
    const latin1 = await parseMessage(readCorpus('attachment_emails/attachment_with_quoted_filename.eml'));
    expect(latin1.attachments.map((a) => a.filename)).toEqual(['Eelanalüüsi päring.jpg']);
  });

  it('decodes RFC 2047 encoded-word file names, quoted or not', async () => {
    const quoted = await parseMessage(readCorpus('multi_charset/japanese_attachment.eml'));
    expect(quoted.attachments.map((a) => [a.id, a.filename, a.contentType])).toEqual([['2', 'てすと.txt', 'text/plain']]);
    const bare = await parseMessage(readCorpus('attachment_emails/attachment_with_base64_encoded_name.eml'));
    expect(bare.attachments.map((a) => a.filename)).toEqual(['This is a test.pdf']);
  });

  it('reads a raw UTF-8 file name', async () => {
    const m = await parseMessage(readCorpus('attachment_emails/attachment_nonascii_filename.eml'));
    expect(m.attachments.map((a) => a.filename)).toEqual(['ciële.txt']);
  });

  it('keeps a forwarded message/rfc822 part as one attachment, not flattened into the body', async () => {
    const m = await parseMessage(readCorpus('attachment_emails/attachment_message_rfc822.eml'));
    expect(m.text).toBe('This is the first part.');
    expect(m.text).not.toContain('Just attaching another PDF');
    expect(m.attachments).toEqual([
      {
        id: '2',
        partId: '2',
        filename: 'ForwardedMessage.eml',
        contentType: 'message/rfc822',
        size: expect.any(Number),
        disposition: 'attachment',
        contentId: null,
      },
    ]);
    // The forwarded message's own PDF stays inside it.
    expect(m.attachments.some((a) => a.filename === 'broken.pdf')).toBe(false);
    expect(m.hasAttachments).toBe(true);
  });

  it('lists a cid image as inline with its Content-ID, next to a forwarded message', async () => {
    const m = await parseMessage(readCorpus('attachment_emails/attachment_message_rfc822_inline_image.eml'));
    const image = m.attachments.find((a) => a.contentType === 'image/png');
    expect(image).toMatchObject({
      id: '1.2',
      filename: 'img.png',
      disposition: 'inline',
      contentId: 'emedfeb92f-a786-4718-a446-98db8afb53fb@kronos',
    });
    // The HTML keeps its cid: link (no data: URL inlined), so clients can resolve it by contentId.
    expect(m.html).toContain(`cid:${image?.contentId}`);
    expect(m.attachments.find((a) => a.contentType === 'message/rfc822')?.disposition).toBe('attachment');
  });

  it('numbers nested parts like IMAP (corpus mime_emails/raw_email7.eml)', async () => {
    const m = await parseMessage(readCorpus('mime_emails/raw_email7.eml'));
    expect(m.attachments.map((a) => [a.id, a.filename])).toEqual([
      ['1.2', 'test.rb'],
      ['1.3', 'test.pdf'],
      ['2', 'smime.p7s'],
    ]);
  });

  it('gives id 1 to the body of a single-part message that is an attachment', async () => {
    const m = await parseMessage(readCorpus('attachment_emails/attachment_only_email.eml'));
    expect(m.attachments.map((a) => [a.id, a.filename, a.contentType, a.size])).toEqual([['1', 'blah.gz', 'application/x-gzip', 288]]);
    expect(m.text).toBeNull();
  });

  it('counts decoded bytes, not encoded ones', async () => {
    const payload = Buffer.from('0123456789'.repeat(100));
    const m = await parseMessage(
      message(
        'Content-Type: multipart/mixed; boundary=b',
        '',
        '--b',
        'Content-Type: text/plain',
        '',
        'hi',
        '--b',
        'Content-Type: application/octet-stream; name=x.bin',
        'Content-Transfer-Encoding: base64',
        '',
        payload.toString('base64').replace(/.{76}/g, '$&\r\n'),
        '--b--',
      ),
    );
    expect(m.attachments.map((a) => [a.id, a.filename, a.size])).toEqual([['2', 'x.bin', 1000]]);
  });

  describe('hasAttachments and inline parts', () => {
    const related = (extra: string[] = []): Buffer =>
      message(
        'Content-Type: multipart/mixed; boundary=outer',
        '',
        '--outer',
        'Content-Type: multipart/related; boundary=rel',
        '',
        '--rel',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>Logo: <img src="cid:logo@x"></p>',
        '--rel',
        'Content-Type: image/png',
        'Content-ID: <logo@x>',
        'Content-Transfer-Encoding: base64',
        '',
        'iVBORw0KGgo=',
        '--rel--',
        ...extra,
        '--outer--',
      );

    it('an image embedded into the HTML by Content-ID is inline and gets no paperclip', async () => {
      const m = await parseMessage(related());
      expect(m.attachments).toEqual([
        { id: '1.2', partId: '1.2', filename: null, contentType: 'image/png', size: 8, disposition: 'inline', contentId: 'logo@x' },
      ]);
      expect(m.hasAttachments).toBe(false);
    });

    it('a real attachment next to it gets the paperclip', async () => {
      const m = await parseMessage(
        related(['--outer', 'Content-Type: application/pdf; name=a.pdf', 'Content-Disposition: attachment; filename=a.pdf', '', '%PDF']),
      );
      expect(m.attachments.map((a) => [a.id, a.disposition])).toEqual([
        ['1.2', 'inline'],
        ['2', 'attachment'],
      ]);
      expect(m.hasAttachments).toBe(true);
    });

    it('an inline image the HTML does not show (Apple Mail photo) still counts', async () => {
      const m = await parseMessage(
        message(
          'Content-Type: multipart/mixed; boundary=b',
          '',
          '--b',
          'Content-Type: text/plain',
          '',
          'See the photo',
          '--b',
          'Content-Type: image/jpeg; name=IMG_1.jpg',
          'Content-Disposition: inline; filename=IMG_1.jpg',
          '',
          'jpegbytes',
          '--b--',
        ),
      );
      expect(m.attachments.map((a) => [a.filename, a.disposition])).toEqual([['IMG_1.jpg', 'inline']]);
      expect(m.hasAttachments).toBe(true);
    });
  });
});

describe('headers and addresses', () => {
  it('flattens address groups into their members', async () => {
    const m = await parseMessage(readCorpus('rfc2822/example04.eml'));
    expect(m.to).toEqual([
      { name: 'Chris Jones', address: 'c@a.test' },
      { name: '', address: 'joe@where.test' },
      { name: 'John', address: 'jdoe@one.test' },
    ]);
    expect(m.cc).toEqual([]); // "Undisclosed recipients:;" has no members
  });

  it('reads quoted display names with specials (corpus rfc2822/example03.eml)', async () => {
    const m = await parseMessage(readCorpus('rfc2822/example03.eml'));
    expect(m.cc).toEqual([
      { name: '', address: 'boss@nil.test' },
      { name: 'Giant; "Big" Box', address: 'sysservices@example.net' },
    ]);
  });

  it('reads In-Reply-To and References (corpus rfc2822/example07.eml)', async () => {
    const m = await parseMessage(readCorpus('rfc2822/example07.eml'));
    expect(m.messageId).toBe('<abcd.1234@local.machine.tld>');
    expect(m.inReplyTo).toBe('<3456@example.net>');
    expect(m.references).toEqual(['<1234@local.machine.example>', '<3456@example.net>']);
    expect(m.to).toEqual([{ name: 'Mary Smith: Personal Account', address: 'smith@home.example' }]);
  });

  it('lists every header line in order, unfolded and RFC 2047 decoded', async () => {
    const m = await parseMessage(
      message(
        'Received: from a by b;',
        '\tMon, 1 Jan 2024 00:00:00 +0000',
        'X-Custom: =?UTF-8?Q?caf=C3=A9?=',
        'Subject: =?UTF-8?B?w6lsw6h2ZQ==?=',
        ' =?UTF-8?B?IGV0IG1hw650cmU=?=',
        'Received: second',
        'Reply-To: "Support" <help@example.com>',
        'Bcc: hidden@example.com',
        '',
        'body',
      ),
    );
    expect(m.headers).toEqual([
      { key: 'received', value: 'from a by b; Mon, 1 Jan 2024 00:00:00 +0000' },
      { key: 'x-custom', value: 'café' },
      { key: 'subject', value: 'élève et maître' },
      { key: 'received', value: 'second' },
      { key: 'reply-to', value: '"Support" <help@example.com>' },
      { key: 'bcc', value: 'hidden@example.com' },
    ]);
    expect(m.subject).toBe('élève et maître');
    expect(m.replyTo).toEqual([{ name: 'Support', address: 'help@example.com' }]);
    expect(m.bcc).toEqual([{ name: '', address: 'hidden@example.com' }]);
  });

  it('reads obsolete syntax: comments and spaces in Date and Message-ID (corpus rfc2822/example13.eml)', async () => {
    const m = await parseMessage(readCorpus('rfc2822/example13.eml'));
    expect(m.date).toBe('1997-11-21T15:55:06.000Z');
    expect(m.messageId).toBe('<1234@local.machine.example>');
  });
});

describe('dates', () => {
  it.each([
    ['rfc2822/example01.eml', '1997-11-21T15:55:06.000Z'], // -0600
    ['rfc2822/example04.eml', '1969-02-14T03:02:54.000Z'], // -0330, before the epoch
    ['rfc2822/example12.eml', '1997-11-21T09:55:06.000Z'], // "21 Nov 97 09:55:06 GMT": two-digit year, zone name
    ['error_emails/content_transfer_encoding_7-bit.eml', '2002-01-10T02:47:50.000Z'], // "MST"
    ['multi_charset/japanese_shift_jis.eml', '2014-05-28T08:18:19.000Z'], // trailing "(JST)" comment
  ])('%s has date %s', async (file, iso) => {
    expect((await parseMessage(readCorpus(file))).date).toBe(iso);
  });

  it.each([
    'error_emails/bad_date_header.eml', // "Date: <HR>"
    'error_emails/bad_date_header2.eml', // "Wed, 15 Dec 2010    59:10 -0500"
    'plain_emails/raw_email_with_bad_date.eml', // "Pn, 29 paX 2007 21:13:00 +0100"
    'multi_charset/japanese.eml', // no Date header at all
  ])('%s has date null, never the time of parsing', async (file) => {
    expect((await parseMessage(readCorpus(file))).date).toBeNull();
  });

  it('does not take a bare number for a date', async () => {
    expect((await parseMessage(message('Date: 1', '', 'x'))).date).toBeNull();
  });
});

describe('text, html and preview', () => {
  it('gives an HTML-only message a text converted from its HTML, and a tag-free preview', async () => {
    const m = await parseMessage(
      message(
        'Content-Type: text/html; charset=utf-8',
        '',
        '<html><head><title>T</title><style>p{color:red}</style></head>',
        '<body><!-- hidden --><p>Hello&nbsp;&amp; <b>welcome</b></p><script>alert(1)</script>',
        '<p>' + 'word '.repeat(100) + '</p></body></html>',
      ),
    );
    expect(m.text).toMatch(/^Hello\s&\swelcome\n\nword word/);
    expect(m.text).not.toMatch(/[<>]|alert|color|hidden|\bT\b/);
    expect(m.html).toContain('<b>welcome</b>');
    expect(m.preview?.startsWith('Hello & welcome word word')).toBe(true);
    expect(m.preview).not.toMatch(/[<>]|alert|color|hidden/);
    expect(Array.from(m.preview ?? '').length).toBeLessThanOrEqual(200);
  });

  it('prefers the text part for the preview and collapses white space', async () => {
    const m = await parseMessage(
      message(
        'Content-Type: multipart/alternative; boundary=b',
        '',
        '--b',
        'Content-Type: text/plain; charset=utf-8',
        '',
        '  Line one\t\r\n\r\n  line two  ',
        '--b',
        'Content-Type: text/html; charset=utf-8',
        '',
        '<p>HTML version</p>',
        '--b--',
      ),
    );
    expect(m.text).toContain('Line one');
    expect(m.html).toBe('<p>HTML version</p>');
    expect(m.preview).toBe('Line one line two');
  });

  it('has preview null for an empty body', async () => {
    const m = await parseMessage(message('Subject: empty', '', ''));
    expect(m.text).toBeNull();
    expect(m.preview).toBeNull();
  });
});

describe('malformed input never throws', () => {
  const cases: Record<string, Buffer> = {
    'an empty message': Buffer.alloc(0),
    'headers only, no body': Buffer.from('Subject: hi\r\nFrom: a@b.example'),
    'binary garbage': Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)),
    'a multipart with no closing boundary': message(
      'Content-Type: multipart/mixed; boundary=xx',
      '',
      '--xx',
      'Content-Type: text/plain',
      '',
      'hello',
      '--xx',
      'Content-Type: application/pdf',
      'Content-Transfer-Encoding: base64',
      '',
      'JVBERi0xLjQK',
    ),
    'a multipart whose boundary never appears': message('Content-Type: multipart/mixed; boundary=nope', '', 'just text'),
    'bad base64': message('Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '', '!!!@@@SGVsbG8=====%%%'),
    'a header block over the 1 MB limit': message(`Subject: ${'a'.repeat(1_100_000)}`, '', 'body'),
    'more MIME parts than the parser allows': message(
      'Content-Type: multipart/mixed; boundary=x',
      '',
      ...Array.from({ length: 1100 }, (_, i) => `--x\r\nContent-Type: application/octet-stream\r\n\r\np${i}`),
      '--x--',
    ),
    'NUL bytes and broken encoded words': message('Subject: =?utf-8?B?###?= a\u0000b', 'From: =?x?Q?', '', '\u0000'),
    'deep nesting': message(
      ...Array.from({ length: 200 }, (_, i) => `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}`),
      'Content-Type: text/plain',
      '',
      'deep',
    ),
  };

  it.each(Object.entries(cases))('%s', async (_name, bytes) => {
    expectWellFormed(await parseMessage(bytes));
  });

  it('keeps what precedes a missing closing boundary', async () => {
    const m = await parseMessage(cases['a multipart with no closing boundary'] ?? Buffer.alloc(0));
    expect(m.text).toBe('hello');
    expect(m.attachments.map((a) => [a.id, a.contentType, a.size])).toEqual([['2', 'application/pdf', 9]]);
  });
});

describe('sources and limits', () => {
  it('rejects with the source error when the stream fails (a broken fetch must not be cached)', async () => {
    const failing = new Readable({
      read() {
        this.push('Subject: x\r\n');
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(parseMessage(failing)).rejects.toThrow('connection reset');
  });

  it('rejects with MessageTooLargeError past maxBytes, for a Buffer and for a stream', async () => {
    const big = message('Subject: big', '', 'x'.repeat(10_000));
    await expect(parseMessage(big, { maxBytes: 1000 })).rejects.toBeInstanceOf(MessageTooLargeError);
    await expect(parseMessage(Readable.from([big.subarray(0, 600), big.subarray(600)]), { maxBytes: 1000 })).rejects.toMatchObject({
      code: 'MESSAGE_TOO_LARGE',
      maxBytes: 1000,
    });
    expect((await parseMessage(big, { maxBytes: big.length })).subject).toBe('big');
  });
});
