/**
 * Compares the gateway's parse (mailparser under src/mail/mime, what the message view shows) with
 * postal-mime's on every message of the test corpora (test/fixtures/mail-gem, test/fixtures/enmime),
 * field by field, and prints where they differ: the evidence behind decision 0019.
 *
 *   npx tsx scripts/compare-parsers.ts            # summary table and the differing messages
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import PostalMime from 'postal-mime';
import { parseMessage } from '../src/mail/mime/parse-message.js';

const root = path.resolve(import.meta.dirname, '../test/fixtures');

function files(dir: string, ext: string): string[] {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith(ext) ? [path.join(d, e.name)] : []));
  return walk(path.join(root, dir)).sort();
}

const squash = (text: string | null | undefined): string => (text ?? '').replace(/\s+/g, ' ').trim();

interface Shape {
  subject: string;
  from: string;
  to: string;
  text: string;
  html: boolean;
  attachments: string;
}

async function ours(bytes: Buffer): Promise<Shape> {
  const m = await parseMessage(bytes);
  return {
    subject: m.subject ?? '',
    from: m.from.map((a) => `${a.name} <${a.address}>`).join(', '),
    to: m.to.map((a) => a.address).join(', '),
    text: squash(m.text),
    html: m.html !== null,
    attachments: m.attachments.map((a) => `${a.filename ?? '-'}:${a.contentType}:${a.size}`).join(' | '),
  };
}

async function postal(bytes: Buffer): Promise<Shape> {
  const m = await PostalMime.parse(bytes);
  const address = (a: { name?: string; address?: string; group?: Array<{ name?: string; address?: string }> }): Array<{ name: string; address: string }> =>
    a.group ? a.group.map((g) => ({ name: g.name ?? '', address: g.address ?? '' })) : [{ name: a.name ?? '', address: a.address ?? '' }];
  return {
    subject: m.subject ?? '',
    from: m.from ? address(m.from).map((a) => `${a.name} <${a.address}>`).join(', ') : '',
    to: (m.to ?? []).flatMap(address).map((a) => a.address).join(', '),
    text: squash(m.text),
    html: typeof m.html === 'string' && m.html !== '',
    attachments: m.attachments
      .map((a) => `${a.filename ?? '-'}:${a.mimeType}:${typeof a.content === 'string' ? Buffer.byteLength(a.content) : a.content.byteLength}`)
      .join(' | '),
  };
}

const messages = [...files('mail-gem', '.eml'), ...files('enmime', '.raw')];
const fields: Array<keyof Shape> = ['subject', 'from', 'to', 'text', 'html', 'attachments'];
const differ = new Map<keyof Shape, string[]>(fields.map((f) => [f, []]));
for (const file of messages) {
  const bytes = readFileSync(file);
  const [a, b] = await Promise.all([ours(bytes), postal(bytes).catch((err: Error) => ({ subject: `(postal-mime threw: ${err.message})`, from: '', to: '', text: '', html: false, attachments: '' }))]);
  for (const field of fields) if (a[field] !== b[field]) differ.get(field)!.push(`${path.relative(root, file)}\n    ours:   ${JSON.stringify(a[field]).slice(0, 200)}\n    postal: ${JSON.stringify(b[field]).slice(0, 200)}`);
}
process.stdout.write(`| field | agree (of ${messages.length}) |\n|---|---|\n`);
for (const field of fields) process.stdout.write(`| ${field} | ${messages.length - differ.get(field)!.length} |\n`);
for (const field of fields) {
  if (differ.get(field)!.length === 0) continue;
  process.stdout.write(`\n## ${field}\n${differ.get(field)!.join('\n')}\n`);
}
