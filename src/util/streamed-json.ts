/**
 * A JSON body parsed as it arrives (stream-json's tokenizer), for bodies too large to hold as text:
 * a 10 MB attachment in base64 is a 13 MB string, and JSON.parse on a collected body holds it two
 * or three times over before anything is decoded. Strings at the paths `isBase64` names are decoded
 * piece by piece as they arrive and never exist as text: the holder object gets `''` at that key
 * (so the route's schema sees a string) and the decoded pieces under `DECODED_BASE64` (see
 * `decodedBase64`). Everything else comes out as JSON.parse would make it.
 *
 * Refused like Fastify's own parser: a body over `limitBytes` (413), invalid JSON (400), a
 * `__proto__` key or a `constructor.prototype` (400: prototype poisoning).
 */
import type { Readable } from 'node:stream';
import parser from 'stream-json/parser.js';
import { GatewayError } from '../errors.js';

/** Where the decoded pieces of a base64 string are kept on its holder object, by key. */
export const DECODED_BASE64 = Symbol('decoded base64');

export type JsonPath = ReadonlyArray<string | number>;

export interface StreamedJsonOptions {
  limitBytes: number;
  /** Whether the string at `path` is base64 to decode as it arrives. */
  isBase64: (path: JsonPath) => boolean;
}

/** The decoded pieces of the base64 string that was at `holder[key]`, if it was decoded while parsing. */
export function decodedBase64(holder: object, key: string): Buffer[] | undefined {
  return (holder as { [DECODED_BASE64]?: Record<string, Buffer[]> })[DECODED_BASE64]?.[key];
}

/** JSON Pointer-like field name for errors, as the route's validation names them (`body/attachments/0/content`). */
const fieldName = (path: JsonPath): string => ['body', ...path].join('/');

interface Frame {
  container: Record<string, unknown> | unknown[];
  /** The key the next value goes to (objects). */
  key?: string;
}

const TOKENIZER_OPTIONS = { packKeys: true, streamKeys: false, packStrings: false, streamStrings: true, packNumbers: true, streamNumbers: false };

export async function parseStreamedJson(source: Readable, options: StreamedJsonOptions): Promise<unknown> {
  const tokenizer = parser.asStream(TOKENIZER_OPTIONS);
  let received = 0;
  let tooLarge = false;
  source.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > options.limitBytes && !tooLarge) {
      tooLarge = true;
      source.unpipe(tokenizer);
      tokenizer.destroy(new GatewayError('PAYLOAD_TOO_LARGE', `The request body is larger than this endpoint accepts (${options.limitBytes} bytes)`));
    }
  });
  source.on('error', (err) => tokenizer.destroy(err));
  source.pipe(tokenizer);

  const stack: Frame[] = [];
  const path: Array<string | number> = [];
  let root: unknown;
  let rootSet = false;
  let text: string[] | null = null;
  let base64: Base64Pieces | null = null;

  const place = (value: unknown): void => {
    const top = stack[stack.length - 1];
    if (top === undefined) {
      root = value;
      rootSet = true;
    } else if (Array.isArray(top.container)) {
      top.container.push(value);
    } else {
      top.container[top.key!] = value;
    }
  };
  /** The path of the value about to be placed. */
  const valuePath = (): JsonPath => {
    const top = stack[stack.length - 1];
    if (top === undefined) return path;
    return [...path, Array.isArray(top.container) ? top.container.length : top.key!];
  };
  const open = (container: Record<string, unknown> | unknown[]): void => {
    const at = valuePath();
    place(container);
    if (stack.length > 0) path.push(at[at.length - 1]!);
    stack.push({ container });
  };
  const close = (): void => {
    stack.pop();
    if (stack.length > 0) path.pop();
  };

  try {
    for await (const token of tokenizer as AsyncIterable<{ name: string; value?: unknown }>) {
      switch (token.name) {
        case 'startObject':
          open({});
          break;
        case 'startArray':
          open([]);
          break;
        case 'endObject':
        case 'endArray':
          close();
          break;
        case 'keyValue': {
          const key = token.value as string;
          const top = stack[stack.length - 1]!;
          if (key === '__proto__' || (key === 'prototype' && path[path.length - 1] === 'constructor')) {
            throw new GatewayError('VALIDATION_FAILED', `${fieldName([...path, key])}: this key is not allowed (prototype poisoning)`);
          }
          top.key = key;
          break;
        }
        case 'startString': {
          const at = valuePath();
          if (options.isBase64(at)) base64 = new Base64Pieces(fieldName(at));
          else text = [];
          break;
        }
        case 'stringChunk':
          if (base64 !== null) base64.add(token.value as string);
          else text!.push(token.value as string);
          break;
        case 'endString': {
          if (base64 !== null) {
            const pieces = base64.end();
            const top = stack[stack.length - 1] as Frame & { container: Record<string | symbol, unknown> };
            const decoded = ((top.container[DECODED_BASE64] as Record<string, Buffer[]> | undefined) ??= {});
            decoded[top.key!] = pieces;
            place('');
            base64 = null;
          } else {
            place(text!.join(''));
            text = null;
          }
          break;
        }
        case 'numberValue':
          place(Number(token.value));
          break;
        case 'trueValue':
        case 'falseValue':
        case 'nullValue':
          place(token.value);
          break;
        default:
          break;
      }
    }
  } catch (err) {
    source.unpipe(tokenizer);
    source.resume(); // the rest of the body is read and dropped, so the 4xx reaches the client
    if (err instanceof GatewayError) throw err;
    if (received === 0) throw emptyBody();
    throw new GatewayError('VALIDATION_FAILED', `body is not valid JSON: ${(err as Error).message}`);
  }
  if (!rootSet) throw emptyBody();
  return root;
}

const emptyBody = (): GatewayError =>
  new GatewayError('VALIDATION_FAILED', 'The body is empty although Content-Type says application/json: send a JSON object, or no Content-Type');

// RFC 4648 §4 and §5 alphabets (Node decodes both alike), and white space (MIME-style line breaks).
const BASE64_PIECE = /^[A-Za-z0-9+/_\-\s]*$/;
const WHITE_SPACE = /\s+/g;
/** Characters decoded at a time: a multiple of 4, so pieces never split a quantum. */
const DECODE_AT = 64 * 1024;

/**
 * Decodes base64 arriving in pieces, accepting what the composer's `isBase64` accepts: the
 * alphabet with optional white space, optional padding at the very end, no length of 1 mod 4.
 */
class Base64Pieces {
  private readonly pieces: Buffer[] = [];
  private pending = '';
  private padding = 0;

  constructor(private readonly field: string) {}

  add(chunk: string): void {
    let piece = chunk;
    if (this.padding > 0 || piece.includes('=')) piece = this.takePadding(piece);
    if (!BASE64_PIECE.test(piece)) throw this.invalid();
    this.pending += piece.replace(WHITE_SPACE, '');
    if (this.pending.length >= DECODE_AT) {
      const whole = this.pending.length - (this.pending.length % 4);
      this.pieces.push(Buffer.from(this.pending.slice(0, whole), 'base64'));
      this.pending = this.pending.slice(whole);
    }
  }

  end(): Buffer[] {
    const length = this.pending.length + this.padding;
    if (this.padding > 0 ? length % 4 !== 0 : this.pending.length % 4 === 1) throw this.invalid();
    if (this.pending.length > 0) this.pieces.push(Buffer.from(this.pending, 'base64'));
    this.pending = '';
    return this.pieces;
  }

  /** Padding only at the end: up to two `=`, then nothing but white space. */
  private takePadding(piece: string): string {
    const at = piece.indexOf('=');
    const before = this.padding > 0 ? '' : at < 0 ? piece : piece.slice(0, at);
    const after = this.padding > 0 ? piece : at < 0 ? '' : piece.slice(at);
    for (const char of after) {
      if (char === '=') {
        this.padding += 1;
        if (this.padding > 2) throw this.invalid();
      } else if (!/\s/.test(char)) {
        throw this.invalid();
      }
    }
    return before;
  }

  private invalid(): GatewayError {
    return new GatewayError('VALIDATION_FAILED', `${this.field} is not base64`);
  }
}
