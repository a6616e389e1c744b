import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { extractAttachment } from '../../src/mail/mime/extract-attachment.js';
import { parseMessage } from '../../src/mail/mime/parse-message.js';
import { readAll } from '../support/assertions.js';
import { corpusFiles, readCorpus } from '../support/corpus.js';

function crlf(...lines: string[]): string {
  return lines.join('\r\n');
}

function base64Lines(bytes: Buffer): string {
  return bytes.toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, '');
}

/**
 * A quoted-printable encoder written for the test (RFC 2045 §6.7), independent of the decoder under
 * test: CRLF in the input become hard line breaks, everything else that is not safe is =XX, lines
 * are cut at 76 characters with soft breaks.
 */
function quotedPrintable(bytes: Buffer): string {
  const lines: string[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    const atEnd = i === bytes.length;
    if (atEnd || (bytes[i] === 0x0d && bytes[i + 1] === 0x0a)) {
      lines.push(encodeQpLine(bytes.subarray(start, i)));
      start = i + 2;
      i++;
    }
  }
  return lines.join('\r\n');
}

function encodeQpLine(line: Buffer): string {
  const tokens: string[] = [];
  line.forEach((byte, index) => {
    const last = index === line.length - 1;
    const safe = (byte >= 33 && byte <= 126 && byte !== 0x3d) || ((byte === 0x20 || byte === 0x09) && !last);
    tokens.push(safe ? String.fromCharCode(byte) : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`);
  });
  const out: string[] = [];
  let current = '';
  for (const token of tokens) {
    if (current.length + token.length > 75) {
      out.push(`${current}=`);
      current = '';
    }
    current += token;
  }
  out.push(current);
  return out.join('\r\n');
}

function multipart(attachmentHeaders: string[], encodedBody: string): Buffer {
  return Buffer.from(
    crlf(
      'From: a@example.com',
      'Subject: test',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="==b=="',
      '',
      '--==b==',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'The body, not an attachment.',
      '--==b==',
      ...attachmentHeaders,
      '',
      encodedBody,
      '--==b==--',
      '',
    ),
    'latin1',
  );
}

describe('extractAttachment returns exactly the decoded bytes', () => {
  const binary = randomBytes(300_000);
  const withBinary = multipart(
    ['Content-Type: application/octet-stream; name="data.bin"', 'Content-Disposition: attachment; filename="data.bin"', 'Content-Transfer-Encoding: base64'],
    base64Lines(binary),
  );

  it('undoes base64 for a random binary attachment (Buffer source)', async () => {
    const parsed = await parseMessage(withBinary);
    expect(parsed.attachments.map((a) => [a.id, a.size])).toEqual([['2', binary.length]]);
    const result = await extractAttachment(withBinary, '2');
    expect(result).not.toBeNull();
    expect(result?.contentType).toBe('application/octet-stream');
    expect(result?.filename).toBe('data.bin');
    expect((await readAll(result!.content)).equals(binary)).toBe(true);
  });

  it('gives the same bytes from a stream cut into uneven chunks', async () => {
    const chunks: Buffer[] = [];
    for (let i = 0, n = 1; i < withBinary.length; i += n, n = (n * 7) % 4093 || 1) chunks.push(withBinary.subarray(i, i + n));
    const result = await extractAttachment(Readable.from(chunks), '2');
    expect((await readAll(result!.content)).equals(binary)).toBe(true);
  });

  it('undoes quoted-printable for a text attachment and keeps its charset bytes unconverted', async () => {
    const text = Buffer.concat([
      Buffer.from('caf', 'latin1'),
      Buffer.from([0xe9]), // é in ISO-8859-1: must stay one byte, not become UTF-8
      Buffer.from(' = 100%\ttab\r\ntrailing space \r\n', 'latin1'),
      Buffer.from(`${'long line '.repeat(20)}end\r\n`, 'latin1'),
      Buffer.from('last line without break', 'latin1'),
    ]);
    const source = multipart(
      ['Content-Type: text/plain; charset=ISO-8859-1; name=notes.txt', 'Content-Disposition: attachment; filename=notes.txt', 'Content-Transfer-Encoding: quoted-printable'],
      quotedPrintable(text),
    );
    const parsed = await parseMessage(source);
    expect(parsed.attachments.map((a) => [a.id, a.filename, a.size])).toEqual([['2', 'notes.txt', text.length]]);
    const result = await extractAttachment(source, '2');
    expect(result?.contentType).toBe('text/plain; charset=ISO-8859-1');
    const bytes = await readAll(result!.content);
    expect(bytes.toString('hex')).toBe(text.toString('hex'));
  });

  it('matches an independent base64 decoding of a corpus PDF (attachment_emails/attachment_pdf.eml)', async () => {
    const raw = readCorpus('attachment_emails/attachment_pdf.eml').toString('latin1');
    const body = /filename="broken\.pdf"\r?\n\r?\n([\s\S]*?)\r?\n------=_Part_2192_32400445\.1115745999735--/.exec(raw)?.[1];
    expect(body).toBeDefined();
    const expected = Buffer.from(body ?? '', 'base64');
    const result = await extractAttachment(readCorpus('attachment_emails/attachment_pdf.eml'), '2');
    expect(result?.contentType).toBe('application/pdf');
    expect(result?.filename).toBe('broken.pdf');
    const bytes = await readAll(result!.content);
    expect(bytes.subarray(0, 5).toString()).toBe('%PDF-');
    expect(bytes.equals(expected)).toBe(true);
  });

  it('serves a UTF-8 text attachment byte for byte, with its charset (multi_charset/japanese_attachment.eml)', async () => {
    const result = await extractAttachment(readCorpus('multi_charset/japanese_attachment.eml'), '2');
    expect(result?.contentType).toBe('text/plain; charset=UTF-8');
    expect(result?.filename).toBe('てすと.txt');
    const bytes = await readAll(result!.content);
    expect(bytes.equals(Buffer.from('dGhpcyBpcyBhIHRlc3QK44GT44KM44KP44Gm44GZ44Go', 'base64'))).toBe(true);
    expect(bytes.toString('utf8')).toBe('this is a test\nこれわてすと');
  });

  it('serves a forwarded message/rfc822 attachment as the embedded message itself', async () => {
    const result = await extractAttachment(readCorpus('attachment_emails/attachment_message_rfc822.eml'), '2');
    expect(result?.contentType).toBe('message/rfc822');
    expect(result?.filename).toBe('ForwardedMessage.eml');
    const eml = (await readAll(result!.content)).toString('latin1');
    expect(eml.startsWith('From xxxx@xxxx.com Tue May 10 11:28:07 2005')).toBe(true);
    expect(eml).toContain('Subject: Another PDF');
    expect(eml).toContain('filename="broken.pdf"');
  });

  it('serves part 1 of a single-part message whose body is the attachment', async () => {
    const raw = readCorpus('attachment_emails/attachment_only_email.eml').toString('latin1');
    const expected = Buffer.from(raw.slice(raw.indexOf('\r\n\r\n') + 4), 'base64');
    const result = await extractAttachment(readCorpus('attachment_emails/attachment_only_email.eml'), '1');
    expect(result?.filename).toBe('blah.gz');
    expect(result?.contentType).toBe('application/x-gzip');
    const bytes = await readAll(result!.content);
    expect(bytes.length).toBe(288);
    expect(bytes.equals(expected)).toBe(true);
  });
});

describe('extractAttachment returns null when there is no such attachment', () => {
  const source = readCorpus('mime_emails/raw_email7.eml'); // attachments 1.2, 1.3 and 2

  it.each([
    ['an id past the last part', '3'],
    ['a nested id that does not exist', '1.9'],
    ['the text body (a part, but not an attachment)', '1.1'],
    ['a multipart container', '1'],
    ['an id this module never issues', '../2'],
    ['an empty id', ''],
  ])('%s (%s)', async (_what, id) => {
    expect(await extractAttachment(source, id)).toBeNull();
  });

  it('drains a stream source it has no use for, leaving it ended rather than stuck', async () => {
    const stream = Readable.from([source]);
    expect(await extractAttachment(stream, 'not-an-id')).toBeNull();
    if (!stream.readableEnded) await once(stream, 'end');
    expect(stream.readableEnded).toBe(true);
  });
});

describe('ids agree with parseMessage over the whole corpus', () => {
  it.each(corpusFiles())('%s', async (file) => {
    const bytes = readCorpus(file);
    const parsed = await parseMessage(bytes);
    for (const attachment of parsed.attachments) {
      const result = await extractAttachment(bytes, attachment.id);
      expect(result, `attachment ${attachment.id}`).not.toBeNull();
      expect(result?.contentType.split(';')[0]).toBe(attachment.contentType);
      expect(result?.filename).toBe(attachment.filename);
      expect((await readAll(result!.content)).length).toBe(attachment.size);
    }
  });
});

describe('streaming', () => {
  const attachmentBytes = 25 * 1024 * 1024;

  /** A 25 MB attachment generated on the fly: a message that never exists whole in memory. */
  function bigMessage(counter: { pulled: number }): { stream: Readable; digest: string } {
    const hash = createHash('sha256');
    const blocks: Buffer[] = [];
    for (let i = 0; i < 16; i++) blocks.push(randomBytes(57 * 1024)); // 57 bytes -> one 76-char base64 line
    const blockBytes = 57 * 1024;
    const count = Math.ceil(attachmentBytes / blockBytes);
    for (let i = 0; i < count; i++) hash.update(blocks[i % blocks.length] ?? Buffer.alloc(0));
    async function* generate(): AsyncGenerator<Buffer> {
      const head = Buffer.from(
        crlf('Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: text/plain', '', 'hi', '--b', 'Content-Type: application/zip; name=big.zip', 'Content-Transfer-Encoding: base64', '', ''),
      );
      counter.pulled += head.length;
      yield head;
      for (let i = 0; i < count; i++) {
        const chunk = Buffer.from(`${base64Lines(blocks[i % blocks.length] ?? Buffer.alloc(0))}\r\n`);
        counter.pulled += chunk.length;
        yield chunk;
      }
      const tail = Buffer.from('--b--\r\n');
      counter.pulled += tail.length;
      yield tail;
    }
    return { stream: Readable.from(generate(), { objectMode: false }), digest: hash.digest('hex') };
  }

  it('holds back a 25 MB attachment until it is read (backpressure), then delivers it whole', async () => {
    const counter = { pulled: 0 };
    const { stream, digest } = bigMessage(counter);
    const result = await extractAttachment(stream, '2');
    expect(result).not.toBeNull();
    await sleep(200);
    // Nobody has read the attachment yet: only buffers' worth of the ~34 MB source has been pulled.
    expect(counter.pulled).toBeLessThan(4 * 1024 * 1024);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of result!.content) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    expect(size).toBe(Math.ceil(attachmentBytes / (57 * 1024)) * 57 * 1024);
    expect(hash.digest('hex')).toBe(digest);
  }, 60_000);

  it('stops parsing and drains the source when the reader goes away midway', async () => {
    const counter = { pulled: 0 };
    const { stream } = bigMessage(counter);
    const result = await extractAttachment(stream, '2');
    const content = result!.content;
    await new Promise<void>((resolve) => {
      content.once('data', () => {
        content.destroy();
        resolve();
      });
    });
    if (!stream.readableEnded) await once(stream, 'end');
    expect(stream.readableEnded).toBe(true);
    expect(stream.destroyed || stream.readableEnded).toBe(true);
  }, 60_000);

  it('rejects when the source fails before the attachment is reached', async () => {
    const failing = new Readable({
      read() {
        this.push('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n');
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(extractAttachment(failing, '2')).rejects.toThrow('connection reset');
  });

  it('errors the content stream when the source fails while the attachment streams', async () => {
    const head = crlf('Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '', '');
    let pushedHead = false;
    const failing = new Readable({
      read() {
        if (!pushedHead) {
          pushedHead = true;
          this.push(head);
          this.push(`${base64Lines(randomBytes(300_000))}\r\n`);
        }
        // then nothing more until the test breaks the connection
      },
    });
    const result = await extractAttachment(failing, '1');
    expect(result).not.toBeNull();
    const content = result!.content;
    await once(content, 'readable');
    failing.destroy(new Error('connection reset'));
    await expect(readAll(content)).rejects.toThrow('connection reset');
  });
});
