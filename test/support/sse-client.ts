/**
 * A small SSE client for tests, over node:http so a test can stop reading (pause the socket) the way
 * a slow client does. It parses the stream as the WHATWG HTML standard says (§9.2.6 "Interpreting
 * an event stream"): lines end at CRLF, LF or CR; a line starting with a colon is a comment; `id`
 * sets the last event ID, which every later event carries until another `id`; a blank line
 * dispatches the event if it has data; an unterminated event at the end of the stream is dropped.
 */
import http, { type IncomingHttpHeaders } from 'node:http';

export interface SseEvent {
  /** The last event ID when this event was dispatched (what EventSource would send on reconnect). */
  lastEventId: string;
  /** Whether this event's own block carried an `id:` field. */
  hadId: boolean;
  event: string;
  data: string;
  /** performance.now() when the event was dispatched (the bench measures latency with it). */
  receivedAtMs: number;
}

export type StreamAnswer =
  | { status: 200; headers: IncomingHttpHeaders; stream: SseClient }
  | { status: number; headers: IncomingHttpHeaders; body: string };

/** GETs `url`; a 200 answers a live client, anything else its status and body. */
export function openStream(url: string, headers: Record<string, string> = {}): Promise<StreamAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      if (response.statusCode !== 200) {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        return;
      }
      resolve({ status: 200, headers: response.headers, stream: new SseClient(request, response) });
    });
    request.on('error', reject);
  });
}

/** Opens a stream that must answer 200. */
export async function connect(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const answer = await openStream(url, headers);
  if (!('stream' in answer)) throw new Error(`expected a stream, got ${answer.status}: ${answer.body}`);
  return answer.stream;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  /** Bytes received so far. */
  bytes = 0;
  /** Resolves when the stream ends (cleanly or not) with how: `end` (the server ended it) or `aborted`. */
  readonly ended: Promise<'end' | 'aborted'>;
  private readonly decoder = new TextDecoder('utf-8');
  private pendingText = '';
  private lastEventId = '';
  private block: { event: string; data: string[]; hadId: boolean } = { event: '', data: [], hadId: false };
  private waiters: Array<() => void> = [];

  constructor(
    private readonly request: http.ClientRequest,
    private readonly response: http.IncomingMessage,
  ) {
    this.ended = new Promise((resolve) => {
      let settled = false;
      const settle = (how: 'end' | 'aborted'): void => {
        if (settled) return;
        settled = true;
        this.notify();
        resolve(how);
      };
      response.on('end', () => settle('end'));
      response.on('aborted', () => settle('aborted'));
      response.on('error', () => settle('aborted'));
      response.on('close', () => settle(response.complete ? 'end' : 'aborted'));
    });
    response.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.feed(this.decoder.decode(chunk, { stream: true }));
    });
  }

  get headers(): IncomingHttpHeaders {
    return this.response.headers;
  }

  /** Stops reading: the socket's buffers fill and the server sees backpressure. */
  pause(): void {
    this.response.pause();
  }

  resume(): void {
    this.response.resume();
  }

  /** Waits until `count` events in all have arrived (or the stream ended); answers them. */
  async waitForEvents(count: number, timeoutMs = 5_000): Promise<SseEvent[]> {
    await this.waitUntil(() => this.events.length >= count, timeoutMs, () => `${this.events.length} of ${count} events`);
    return this.events.slice(0, count);
  }

  /** Waits until `predicate` holds, re-checked at each frame and at the end. */
  async waitUntil(predicate: () => boolean, timeoutMs = 5_000, what: () => string = () => 'the condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.ended.then(() => (ended = true));
    while (!predicate()) {
      if (ended) throw new Error(`stream ended with ${what()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms with ${what()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.request.destroy();
  }

  private feed(text: string): void {
    this.pendingText += text;
    // A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.pendingText);
      if (match === null || (match[0] === '\r' && match.index === this.pendingText.length - 1)) break;
      const line = this.pendingText.slice(0, match.index);
      this.pendingText = this.pendingText.slice(match.index + match[0].length);
      this.line(line);
    }
    this.notify();
  }

  private line(line: string): void {
    if (line === '') {
      const { event, data, hadId } = this.block;
      this.block = { event: '', data: [], hadId: false };
      if (data.length === 0) return;
      this.events.push({ lastEventId: this.lastEventId, hadId, event: event || 'message', data: data.join('\n'), receivedAtMs: performance.now() });
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.block.event = value;
    else if (field === 'data') this.block.data.push(value);
    else if (field === 'id' && !value.includes('\0')) {
      this.lastEventId = value;
      this.block.hadId = true;
    }
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}
