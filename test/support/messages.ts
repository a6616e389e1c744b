/** Small builders of RFC 5322 messages for tests (CRLF line ends, as servers store them). */
import { randomBytes } from 'node:crypto';

export function textMessage(options: {
  subject: string;
  from?: string;
  to?: string;
  body?: string;
  date?: Date;
  messageId?: string;
}): Buffer {
  const lines = [
    `From: ${options.from ?? 'Sender <sender@example.com>'}`,
    `To: ${options.to ?? 'Rcpt <rcpt@example.com>'}`,
    `Subject: ${options.subject}`,
    `Date: ${(options.date ?? new Date('2024-05-01T10:00:00Z')).toUTCString()}`,
    `Message-ID: ${options.messageId ?? `<${randomBytes(6).toString('hex')}@example.com>`}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    options.body ?? `Body of ${options.subject}`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** The header lines every test message starts with, up to MIME-Version (add Content-Type after). */
export function headerLines(subject: string): string[] {
  return [
    'From: Sender <sender@example.com>',
    'To: Rcpt <rcpt@example.com>',
    `Subject: ${subject}`,
    'Date: Wed, 01 May 2024 10:00:00 +0000',
    `Message-ID: <${randomBytes(6).toString('hex')}@example.com>`,
    'MIME-Version: 1.0',
  ];
}

/** A multipart/mixed message with one base64 attachment of the given bytes. */
export function messageWithAttachment(options: {
  subject: string;
  filename: string;
  content: Buffer;
  contentType?: string;
  html?: string;
}): Buffer {
  const boundary = `b-${randomBytes(6).toString('hex')}`;
  const base64 = options.content.toString('base64').replace(/.{76}/g, '$&\r\n');
  const encodedName = /^[\x20-\x7e]*$/.test(options.filename)
    ? `"${options.filename}"`
    : `*=UTF-8''${encodeURIComponent(options.filename)}`;
  const param = encodedName.startsWith('*') ? `filename${encodedName}` : `filename=${encodedName}`;
  const lines = [
    ...headerLines(options.subject),
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    options.html ? 'Content-Type: text/html; charset=utf-8' : 'Content-Type: text/plain; charset=utf-8',
    '',
    options.html ?? 'See the attachment.',
    `--${boundary}`,
    `Content-Type: ${options.contentType ?? 'application/octet-stream'}`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; ${param}`,
    '',
    base64,
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** Every bare LF (not preceded by CR) as CRLF. */
export function crlf(data: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x0a && (i === 0 || data[i - 1] !== 0x0d)) out.push(0x0d);
    out.push(data[i]!);
  }
  return Buffer.from(out);
}
