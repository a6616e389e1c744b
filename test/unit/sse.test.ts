/**
 * SSE framing and the per-client bounds of src/http/sse.ts, against a response whose buffer the test
 * controls (the real socket path is in test/integration/event-streams.test.ts).
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { PING_FRAME, SseStream, eventFrame, type SseCloseReason } from '../../src/http/sse.js';

/** Enough of a ServerResponse: a buffer that fills past a 100-byte mark until the test drains it. */
class FakeResponse extends EventEmitter {
  readonly written: string[] = [];
  writableLength = 0;
  writableNeedDrain = false;
  writableFinished = false;
  destroyed = false;

  write(chunk: string): boolean {
    this.written.push(chunk);
    this.writableLength += Buffer.byteLength(chunk);
    this.writableNeedDrain = this.writableLength >= 100;
    return !this.writableNeedDrain;
  }

  drain(): void {
    this.writableLength = 0;
    this.writableNeedDrain = false;
    this.emit('drain');
  }

  end(callback?: () => void): void {
    this.writableFinished = true;
    this.emit('finish');
    this.emit('close');
    callback?.();
  }

  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function streamOn(res: FakeResponse, options: Partial<{ pingIntervalMs: number; bufferLimitBytes: number; drainTimeoutMs: number }> = {}) {
  const reasons: SseCloseReason[] = [];
  const stream = new SseStream(res as unknown as ServerResponse, {
    pingIntervalMs: 60_000,
    bufferLimitBytes: 10_000,
    drainTimeoutMs: 60_000,
    ...options,
    onClose: (reason) => reasons.push(reason),
  });
  return { stream, reasons };
}

describe('eventFrame', () => {
  it('writes id, event and data lines and a blank line (WHATWG HTML §9.2.6)', () => {
    expect(eventFrame({ id: '1-0', event: 'message.new', data: '{"a":1}' })).toBe('id: 1-0\nevent: message.new\ndata: {"a":1}\n\n');
    expect(eventFrame({ event: 'events.lost', data: '{}' })).toBe('event: events.lost\ndata: {}\n\n');
    expect(PING_FRAME).toBe(': ping\n\n');
  });

  it('refuses a value that would split a field or that a client ignores', () => {
    expect(() => eventFrame({ event: 'a', data: 'x\ny' })).toThrow();
    expect(() => eventFrame({ event: 'a\r', data: 'x' })).toThrow();
    expect(() => eventFrame({ id: '1\u00000', event: 'a', data: 'x' })).toThrow();
  });
});

describe('SseStream', () => {
  it('sends a ping after the interval without a frame, and none while the client has not drained', async () => {
    const res = new FakeResponse();
    const { stream } = streamOn(res, { pingIntervalMs: 30 });
    await sleep(80);
    expect(res.written.filter((w) => w === PING_FRAME).length).toBeGreaterThanOrEqual(1);
    void stream.send(`data: ${'x'.repeat(200)}\n\n`);
    const before = res.written.length;
    await sleep(100);
    expect(res.written.length).toBe(before);
    stream.disconnect('done');
  });

  it('resolves a send only once the client has drained', async () => {
    const res = new FakeResponse();
    const { stream } = streamOn(res);
    expect(await stream.send('data: a\n\n')).toBe(true);
    let settled: boolean | undefined;
    void stream.send(`data: ${'x'.repeat(200)}\n\n`).then((ok) => (settled = ok));
    await sleep(20);
    expect(settled).toBeUndefined();
    res.drain();
    await sleep(0);
    expect(settled).toBe(true);
    stream.disconnect('done');
  });

  it('disconnects a client that does not drain within the bound', async () => {
    const res = new FakeResponse();
    const { stream, reasons } = streamOn(res, { drainTimeoutMs: 50 });
    expect(await stream.send(`data: ${'x'.repeat(200)}\n\n`)).toBe(false);
    expect(res.destroyed).toBe(true);
    expect(reasons).toEqual(['slow']);
    expect(await stream.closed).toBe('slow');
    expect(await stream.send('data: more\n\n')).toBe(false);
  });

  it('disconnects a client with more than the limit buffered', async () => {
    const res = new FakeResponse();
    const { stream, reasons } = streamOn(res, { bufferLimitBytes: 1_000 });
    expect(await stream.send(`data: ${'x'.repeat(2_000)}\n\n`)).toBe(false);
    expect(res.destroyed).toBe(true);
    expect(reasons).toEqual(['slow']);
  });

  it('ends gracefully, tells why once, and counts a client that left as such', async () => {
    const res = new FakeResponse();
    const { stream, reasons } = streamOn(res);
    expect(await stream.end('shutdown')).toBe('shutdown');
    expect(res.destroyed).toBe(false);
    expect(reasons).toEqual(['shutdown']);

    const gone = new FakeResponse();
    const other = streamOn(gone);
    gone.emit('close');
    expect(await other.stream.closed).toBe('client');
    expect(other.reasons).toEqual(['client']);
  });
});
