import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { rejection } from '../support/assertions.js';
import { decodedBase64, parseStreamedJson, type JsonPath } from '../../src/util/streamed-json.js';

const isContent = (path: JsonPath): boolean => path.length === 3 && path[0] === 'attachments' && path[2] === 'content';

/** The body cut into pieces of `size` bytes, as a socket would deliver it (multi-byte characters split too). */
function pieces(text: string, size: number): Readable {
  const bytes = Buffer.from(text);
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return Readable.from(out);
}

const parse = (text: string, size = 7, limitBytes = 1e9): Promise<unknown> => parseStreamedJson(pieces(text, size), { limitBytes, isBase64: isContent });

describe('parseStreamedJson', () => {
  it('builds what JSON.parse builds, whatever the pieces', async () => {
    const value = {
      to: [{ name: 'Zoë «Ünïcode» 日本 🎉', address: 'z@example.com' }],
      subject: 'quote " backslash \\ slash / tab \t newline \n \u0001',
      n: [0, -1.5, 2e3, 12345678901234],
      flags: [true, false, null],
      nested: { empty: {}, list: [], deep: [[{ a: [1] }]] },
      long: 'x'.repeat(5_000),
    };
    const text = JSON.stringify(value);
    for (const size of [1, 3, 64, 100_000]) expect(await parse(text, size)).toEqual(JSON.parse(text));
  });

  it('decodes attachments[i].content as it arrives: the field is an empty string, the bytes are beside it', async () => {
    const first = randomBytes(200_001);
    const second = randomBytes(3);
    // MIME line breaks and an escaped slash are base64 as the composer takes it.
    const wrapped = first.toString('base64').replace(/.{76}/g, '$&\\r\\n').replace(/\//g, '\\/');
    const text = `{"attachments":[{"filename":"a.bin","content":"${wrapped}"},{"content":"${second.toString('base64')}"}],"text":"content"}`;
    const body = (await parse(text, 4_099)) as { attachments: Array<{ filename?: string; content: string }>; text: string };
    expect(body.text).toBe('content');
    expect(body.attachments.map((a) => a.content)).toEqual(['', '']);
    expect(body.attachments[0]!.filename).toBe('a.bin');
    expect(Buffer.concat(decodedBase64(body.attachments[0]!, 'content')!).equals(first)).toBe(true);
    expect(Buffer.concat(decodedBase64(body.attachments[1]!, 'content')!).equals(second)).toBe(true);
    // Nothing of it shows through JSON (what a schema or a log sees).
    expect(JSON.stringify(body.attachments[1])).toBe('{"content":""}');
  });

  it('refuses what is not base64 where base64 is due, naming the field', async () => {
    for (const content of ['QUJD@', 'QUJDRA=x', 'QUJDRA===', 'QUJDR', 'QUI=QUI=']) {
      const err = await rejection(parse(`{"attachments":[{"content":"${content}"}]}`, 2));
      expect(err).toMatchObject({ code: 'VALIDATION_FAILED', message: 'body/attachments/0/content is not base64' });
    }
    // Padding and white space after it, as isBase64 takes them.
    const ok = (await parse('{"attachments":[{"content":"QUI= \\r\\n"}]}', 2)) as { attachments: object[] };
    expect(Buffer.concat(decodedBase64(ok.attachments[0]!, 'content')!).toString()).toBe('AB');
  });

  it('refuses invalid JSON, an empty body, prototype poisoning and a body over the limit', async () => {
    expect(await rejection(parse('{"to": [}'))).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^body is not valid JSON/) });
    expect(await rejection(parse(''))).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/empty/) });
    expect(await rejection(parse('{"a":{"__proto__":{"x":1}}}'))).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/body\/a\/__proto__/) });
    expect(await rejection(parse('{"constructor":{"prototype":{"x":1}}}'))).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(await rejection(parse(JSON.stringify({ text: 'x'.repeat(10_000) }), 512, 5_000))).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });
});
