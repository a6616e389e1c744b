/** Shared test helpers for outcomes: the GatewayError a call throws or a promise rejects with, the bytes of a stream. */
import { expect } from 'vitest';
import { GatewayError } from '../../src/errors.js';

/** Awaits `promise`, expects it to reject with a GatewayError and returns that error. */
export async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}

/** Calls `fn`, expects it to throw a GatewayError and returns that error (the synchronous `rejection`). */
export function thrown(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a throw');
}

/** Reads `stream` to its end and returns all its chunks (strings converted) as one Buffer. */
export async function readAll(stream: NodeJS.ReadableStream | AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/** Expects a problem+json answer with this status and code (and every member of RFC 9457 the gateway sends); returns it. */
export function expectProblem(
  res: { statusCode: number; body: string; headers: Record<string, unknown>; json: () => unknown },
  status: number,
  code: string,
): { detail: string; code: string; status: number } {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, code });
  expect(typeof body.type).toBe('string');
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  expect(body.requestId).toBe(res.headers['x-request-id']);
  return body as { detail: string; code: string; status: number };
}
