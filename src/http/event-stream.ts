/**
 * Serving one subscription as `text/event-stream` on a hijacked reply: the response headers the
 * app would have sent, then each item as an SSE frame, written only when the socket has taken the
 * previous ones (src/http/sse.ts), until the client leaves, falls too far behind, or the gateway
 * stops.
 *
 * Hijacked because the stream must control every write (backpressure, pings, ending on shutdown);
 * everything that can fail (validation, access, the account, the log's start positions) happens
 * before, so a refusal is still a problem+json answer. Fastify's onSend hooks do not run for a
 * hijacked reply: the headers set so far (CORS, rate limits) are taken from the reply, and the
 * request id is added here.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';
import type { EventStreamSettings } from '../config.js';
import { EVENTS_LOST, type MailEvent } from '../events/types.js';
import type { StreamItem, Subscription } from '../events/subscription.js';
import type { Metrics } from '../metrics/metrics.js';
import { SseStream, eventFrame } from './sse.js';

export interface ServeOptions {
  settings: EventStreamSettings;
  metrics: Metrics;
  /** The SSE `id:` of an event: its own id on an account's stream, the stream's cursor on /v1/events. */
  sseId: (event: MailEvent) => string;
  /** Told when the stream opens and when it has closed, so shutdown can end every open stream. */
  track: (stream: SseStream) => () => void;
  /** Asked every second: false ends the stream (the caller's token was deleted or expired). */
  stillAuthorized: () => Promise<boolean>;
}

/** How often a stream checks that its caller may still have it (a deleted token is refused within a second, API.md). */
const ACCESS_RECHECK_MS = 1_000;

export function serveEventStream(request: FastifyRequest, reply: FastifyReply, subscription: Subscription, options: ServeOptions): void {
  const { metrics, settings } = options;
  const startedMs = performance.now();
  let sent = 0;
  reply.hijack();
  // Gone while the stream was being opened: its 'close' came before anyone listened for it.
  if (reply.raw.destroyed || request.raw.socket.destroyed) {
    subscription.close();
    return;
  }
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value;
  reply.raw.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    // Every event is new: nothing may store or replay it; nginx must pass each one on at once.
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    'x-request-id': String(request.id),
  });
  reply.raw.flushHeaders();

  metrics.sseClients.inc();
  let untrack = (): void => undefined;
  const stream = new SseStream(reply.raw, {
    pingIntervalMs: settings.pingIntervalMs,
    bufferLimitBytes: settings.clientBufferBytes,
    drainTimeoutMs: settings.clientDrainTimeoutMs,
    onClose: (reason) => {
      subscription.close();
      untrack();
      metrics.sseClients.dec();
      if (reason === 'slow') metrics.sseSlowDisconnects.inc();
      request.log.info(
        { reqId: request.id, reason, events: sent, durationMs: Math.round(performance.now() - startedMs), accounts: subscription.accounts.length },
        'event stream closed',
      );
    },
  });
  untrack = options.track(stream);
  const recheck = setInterval(() => {
    options.stillAuthorized().then(
      (allowed) => {
        if (!allowed) void stream.end('revoked');
      },
      () => undefined,
    );
  }, ACCESS_RECHECK_MS);
  recheck.unref();
  void stream.closed.then(() => clearInterval(recheck));

  const pump = async (): Promise<void> => {
    for (;;) {
      const item = await subscription.next();
      if (item === null || !stream.open) return;
      const written = await stream.send(frameOf(item, options.sseId));
      metrics.sseEventsSent.inc({ type: item.kind === 'lost' ? EVENTS_LOST : item.event.type });
      sent++;
      if (!written) return;
    }
  };
  pump().then(
    () => void stream.end(subscription.deletedAccount !== undefined ? 'deleted' : 'done'),
    (err: unknown) => {
      request.log.error({ err }, 'event stream failed');
      stream.disconnect('error');
    },
  );
}

function frameOf(item: StreamItem, sseId: (event: MailEvent) => string): string {
  if (item.kind === 'lost') {
    // No id: the client's resume point stays where it was, before the gap.
    return eventFrame({ event: EVENTS_LOST, data: JSON.stringify({ type: EVENTS_LOST, account: item.account }) });
  }
  return eventFrame({ id: sseId(item.event), event: item.event.type, data: JSON.stringify(item.event) });
}
