/**
 * The event streams (API.md, Events): `GET /v1/accounts/{account}/events` and `GET /v1/events`,
 * `text/event-stream` from the event log. Registered by buildApp only when it is given an event log
 * and a watch demand (`services.events`); the watchers that fill the log are not part of this.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { EventStreamSettings } from '../../config.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import { decodeCursor, encodeCursor } from '../../events/cursor.js';
import { Subscription, type SubscriptionOptions } from '../../events/subscription.js';
import { EVENT_TYPES, type EventLog, type EventType, type WatchDemand } from '../../events/types.js';
import { stillAuthorized } from '../../tenants/access.js';
import { canSeeAccount } from '../../tenants/principal.js';
import { serveEventStream } from '../event-stream.js';
import type { SseStream } from '../sse.js';
import { ACCOUNT_ID_PATTERN, AccountParams, problems } from '../schemas/common.js';
import { AccountEventsQuery, EventsQuery, ResumeHeaders } from '../schemas/events.js';

export interface EventRouteOptions {
  log: EventLog;
  demand: WatchDemand;
  settings: EventStreamSettings;
}

const STREAM_DOC = [
  'Each event is one SSE frame (WHATWG HTML, server-sent events): `id:`, `event:` (the type) and `data:` (the event as one line of JSON, see the `Event` schema), then a blank line.',
  'A `: ping` comment line is sent after `EVENTS_PING_INTERVAL_MS` (30 s) without an event, so proxies keep the connection.',
  'Resume with `Last-Event-ID` (EventSource sends it on reconnect) or `lastEventId`; the header wins when both are sent. Events come in order per account, none repeated and none skipped after the resume point; with none, the stream starts now.',
  'A resume point older than the events kept (`EVENTS_RETENTION_SECONDS`) starts with one `events.lost` event per affected account, then the oldest kept events; a resume point the gateway cannot have issued is 400 `VALIDATION_FAILED`.',
  'A stream opened with an access token ends within about a second of the token being deleted or expiring.',
  'A stream ends when an account it follows is deleted: reconnecting to that account is 404 (a `/v1/events` stream without `accounts` then follows the accounts left).',
  'A client that does not read what is sent (its socket stays full for `EVENTS_CLIENT_DRAIN_TIMEOUT_MS`, 30 s, or more than `EVENTS_CLIENT_BUFFER_BYTES`, 1 MiB, waits for it) is disconnected and resumes from its last id. When the gateway stops, streams end cleanly: reconnect (to another replica).',
].join(' ');

function streamResponse(idDoc: string) {
  return Type.Unsafe({
    description: `An endless \`text/event-stream\`. ${idDoc}`,
    content: {
      'text/event-stream': {
        schema: { type: 'string', description: 'SSE frames; each `data:` is an `Event` (JSON)', 'x-sse-data': { $ref: 'Event#' } },
        example: 'id: 1718000000000-0\nevent: message.new\ndata: {"id":"1718000000000-0","type":"message.new","account":"alice","mailbox":"INBOX","at":"2024-06-10T06:13:20.000Z","message":{…}}\n\n: ping\n\n',
      },
    },
  });
}

const PROBLEMS = problems('VALIDATION_FAILED', 'ACCOUNT_NOT_FOUND', 'SERVICE_UNAVAILABLE');

export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteOptions> = async (app, options) => {
  const { accounts, metrics, tokens } = app.services;
  const { log, demand, settings } = options;
  const open = new Set<SseStream>();
  const track = (stream: SseStream): (() => void) => {
    open.add(stream);
    return () => open.delete(stream);
  };
  // Before the server closes (it would wait for these connections for ever): end every stream.
  app.addHook('preClose', async () => {
    await Promise.all([...open].map((stream) => stream.end('shutdown')));
  });
  metrics.onScrape(() => {
    let bytes = 0;
    for (const stream of open) bytes += stream.bufferedBytes;
    metrics.sseBufferedBytes.set(bytes);
  });

  const subscribe = async (request: FastifyRequest, from: Map<string, string | undefined>, types: Set<EventType> | undefined) => {
    const subscriptionOptions: SubscriptionOptions = {
      log,
      demand,
      accounts: from,
      pollIntervalMs: settings.pollIntervalMs,
      onReadError: onceThenQuiet(request),
      ...(types ? { types } : {}),
    };
    try {
      return await Subscription.open(subscriptionOptions);
    } catch (err) {
      if (isGatewayError(err)) throw err;
      throw new GatewayError('SERVICE_UNAVAILABLE', 'The event log cannot be read; retry shortly', { cause: err, retryAfterSeconds: 5 });
    }
  };

  app.get(
    '/accounts/:account/events',
    {
      config: { access: 'events' },
      exposeHeadRoute: false,
      schema: {
        tags: ['events'],
        operationId: 'streamAccountEvents',
        summary: "Stream an account's events (SSE)",
        description: `What changes in every mailbox of the account, as it happens. ${STREAM_DOC}`,
        params: AccountParams,
        querystring: AccountEventsQuery,
        headers: ResumeHeaders,
        produces: ['text/event-stream'],
        response: { 200: streamResponse("Each SSE `id:` is the event's own id."), ...PROBLEMS },
      },
    },
    async (request, reply) => {
      const { account } = request.params;
      const types = parseTypes(request.query.types);
      const resume = resumePoint(request.headers['last-event-id'], request.query.lastEventId);
      if (resume !== undefined && !log.isValidId(resume.value)) {
        throw new GatewayError(
          'VALIDATION_FAILED',
          `${resume.source} is not an event id this gateway issued: resume with the SSE id: of the last event received on this stream, exactly as sent, or connect without one to start from now`,
        );
      }
      await accounts.get(account);
      const subscription = await subscribe(request, new Map([[account, resume?.value]]), types);
      serveEventStream(request, reply, subscription, {
        settings,
        metrics,
        track,
        sseId: (event) => event.id,
        stillAuthorized: () => stillAuthorized(request, tokens),
      });
      return reply;
    },
  );

  app.get(
    '/events',
    {
      config: { access: 'events' },
      exposeHeadRoute: false,
      schema: {
        tags: ['events'],
        operationId: 'streamEvents',
        summary: 'Stream the events of several accounts (SSE)',
        description: `The events of the accounts named in \`accounts\`, or of every account the caller may read, interleaved; in order per account. ${STREAM_DOC}`,
        querystring: EventsQuery,
        headers: ResumeHeaders,
        produces: ['text/event-stream'],
        response: {
          200: streamResponse(
            "Each SSE `id:` is a cursor for the whole stream (opaque; it grows with the number of accounts), while the JSON `id` stays the event's own. An account added to the stream later (absent from the cursor) starts now.",
          ),
          ...PROBLEMS,
        },
      },
    },
    async (request, reply) => {
      const types = parseTypes(request.query.types);
      const resume = resumePoint(request.headers['last-event-id'], request.query.lastEventId);
      let positions = new Map<string, string>();
      if (resume !== undefined) {
        const decoded = decodeCursor(resume.value, (id) => log.isValidId(id));
        if ('problem' in decoded) {
          throw new GatewayError(
            'VALIDATION_FAILED',
            `${resume.source} is not a cursor this gateway issued (${decoded.problem}): resume with the SSE id: of the last event received on /v1/events, exactly as sent, or connect without one to start from now`,
          );
        }
        positions = decoded.positions;
      }
      const followed = await followedAccounts(request, request.query.accounts);
      const from = new Map(followed.map((account) => [account, positions.get(account)]));
      const subscription = await subscribe(request, from, types);
      serveEventStream(request, reply, subscription, {
        settings,
        metrics,
        track,
        sseId: () => encodeCursor(subscription.positions()),
        stillAuthorized: () => stillAuthorized(request, tokens),
      });
      return reply;
    },
  );

  /** The accounts a /v1/events stream follows: those named (each must exist and be the caller's), or all of the caller's. */
  async function followedAccounts(request: FastifyRequest, named: string | undefined): Promise<string[]> {
    if (named === undefined) {
      return (await accounts.list()).map((a) => a.id).filter((id) => canSeeAccount(request.principal, id));
    }
    const ids = [...new Set(named.split(','))];
    for (const id of ids) {
      if (!new RegExp(ACCOUNT_ID_PATTERN).test(id)) {
        throw new GatewayError('VALIDATION_FAILED', `querystring/accounts holds "${id.slice(0, 70)}", which is not an account id: send account ids separated by commas`);
      }
      // Not the caller's: the same answer as an account that does not exist.
      if (!canSeeAccount(request.principal, id)) throw new GatewayError('ACCOUNT_NOT_FOUND', `No account ${id}`);
    }
    for (const id of ids) await accounts.get(id);
    return ids;
  }
};

/** `types=a,b` → the set, or 400 naming the first unknown type; undefined (every type) when absent. */
function parseTypes(raw: string | undefined): Set<EventType> | undefined {
  if (raw === undefined) return undefined;
  const known: readonly string[] = EVENT_TYPES;
  const types = new Set<EventType>();
  for (const type of raw.split(',')) {
    if (!known.includes(type)) {
      throw new GatewayError(
        'VALIDATION_FAILED',
        `querystring/types holds "${type.slice(0, 40)}", which is no event type: send a comma-separated list of ${EVENT_TYPES.join(', ')}`,
      );
    }
    types.add(type as EventType);
  }
  return types;
}

/**
 * Where the client resumes. The header wins over the query: a browser's EventSource sends
 * `Last-Event-ID` on every reconnect with its newest id (WHATWG HTML §9.2.4), while the URL it
 * reconnects to still holds the `lastEventId` it was first opened with. An empty value is none.
 */
function resumePoint(header: string | undefined, query: string | undefined): { value: string; source: string } | undefined {
  if (header !== undefined && header !== '') return { value: header, source: 'Last-Event-ID' };
  if (query !== undefined && query !== '') return { value: query, source: 'querystring/lastEventId' };
  return undefined;
}

/** A failing log is logged once per stream at warn (then at debug): it is retried at every poll. */
function onceThenQuiet(request: FastifyRequest): (err: unknown, account: string) => void {
  let warned = false;
  return (err, account) => {
    if (warned) return request.log.debug({ err, account }, 'event log read failed again');
    warned = true;
    request.log.warn({ err, account }, 'event log read failed; the stream retries at each poll');
  };
}
