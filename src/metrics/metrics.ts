/**
 * Every Prometheus metric the gateway exports, defined in one place and created once per app (a
 * registry per instance, so tests can build several apps in one process). Components receive the
 * `Metrics` object and record; gauges that mirror live state (pool sessions, Redis health) are read
 * at scrape time through collectors registered by app.ts.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type CacheKind = 'message' | 'listing' | 'pop3_headers';

export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'mailgw_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: 'mailgw_upstream_operation_duration_seconds',
    help: 'Time of one operation against a mail server (session lease excluded), by protocol and operation',
    labelNames: ['protocol', 'operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: 'mailgw_upstream_errors_total',
    help: 'Failed operations against mail servers, by protocol and the error code answered',
    labelNames: ['protocol', 'code'] as const,
    registers: [this.registry],
  });

  readonly cacheRequests = new Counter({
    name: 'mailgw_cache_requests_total',
    help: 'Cache lookups by kind and result (hit, miss)',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });

  readonly poolSessions = new Gauge({
    name: 'mailgw_pool_sessions',
    help: 'Mail server sessions by protocol and state (open, busy, connecting, waiting requests)',
    labelNames: ['protocol', 'state'] as const,
    registers: [this.registry],
  });

  readonly attachmentsFromParse = new Counter({
    name: 'mailgw_attachments_from_parse_total',
    help: "IMAP attachment downloads served from the gateway's own parse of the message, because the server's part numbering did not match it (broken MIME)",
    registers: [this.registry],
  });

  readonly redisDegradations = new Counter({
    name: 'mailgw_redis_degradations_total',
    help: 'Cache operations served without Redis because it was unreachable',
    registers: [this.registry],
  });

  readonly watchedAccounts = new Gauge({
    name: 'mailgw_watched_accounts',
    help: 'Accounts this process watches now (it holds their watch lease and a watcher session)',
    registers: [this.registry],
  });

  readonly eventsStored = new Counter({
    name: 'mailgw_events_total',
    help: 'Events stored in the event log by this process, by type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly eventLag = new Histogram({
    name: 'mailgw_event_lag_seconds',
    help: 'From the moment a watcher saw a change (a push or a poll) to its event being stored',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly watcherReconnects = new Counter({
    name: 'mailgw_watcher_reconnects_total',
    help: 'Watcher sessions lost or refused, by cause (the error code)',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });

  readonly sseClients = new Gauge({
    name: 'mailgw_events_sse_clients',
    help: 'Event streams (SSE) open on this process',
    registers: [this.registry],
  });

  readonly sseEventsSent = new Counter({
    name: 'mailgw_events_sse_sent_total',
    help: 'Events written to SSE streams, by event type (events.lost included)',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly sseSlowDisconnects = new Counter({
    name: 'mailgw_events_sse_slow_disconnects_total',
    help: 'SSE clients disconnected because they did not read fast enough (buffer limit or drain timeout)',
    registers: [this.registry],
  });

  readonly sseBufferedBytes = new Gauge({
    name: 'mailgw_events_sse_buffered_bytes',
    help: 'Bytes written to SSE clients and not yet taken by their sockets, summed over the open streams',
    registers: [this.registry],
  });

  readonly webhookDeliveries = new Counter({
    name: 'mailgw_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (delivered, retrying: failed and tried again, failed: given up or 410)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly webhookAttemptDuration = new Histogram({
    name: 'mailgw_webhook_attempt_duration_seconds',
    help: 'One webhook delivery attempt, from resolving the host to the answer (or the 10 s timeout)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly webhookLag = new Histogram({
    name: 'mailgw_webhook_lag_seconds',
    help: 'From an event being seen to its delivery being acknowledged by the receiver (retries included)',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
    registers: [this.registry],
  });

  readonly webhookBacklog = new Gauge({
    name: 'mailgw_webhook_backlog_events',
    help: 'Events waiting for delivery in this process\'s lanes, per webhook, as far as each lane has read ahead (at most 50 per account)',
    labelNames: ['webhook'] as const,
    registers: [this.registry],
  });

  readonly webhookOldestPending = new Gauge({
    name: 'mailgw_webhook_oldest_pending_seconds',
    help: 'Age of the oldest event not yet delivered in this process\'s lanes, per webhook (0 when caught up)',
    labelNames: ['webhook'] as const,
    registers: [this.registry],
  });

  readonly webhookAccounts = new Gauge({
    name: 'mailgw_webhook_delivering_accounts',
    help: 'Accounts whose webhook deliveries this process runs now (it holds their delivery lease)',
    registers: [this.registry],
  });

  readonly oauth2Renewals = new Counter({
    name: 'mailgw_oauth2_renewals_total',
    help: 'OAuth2 access token renewals asked of a provider, by outcome: ok, refused (the grant was refused), failed (no answer or an error)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly outboxMessages = new Counter({
    name: 'mailgw_outbox_messages_total',
    help: 'Outbox messages by outcome: queued (accepted by POST …/send), sent (the SMTP server accepted it for at least one recipient), failed',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly smtpDuration = new Histogram({
    name: 'mailgw_smtp_attempt_duration_seconds',
    help: 'One SMTP submission attempt, from taking a pooled connection (or dialling) to the answer to DATA',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  private outboxDepthSource: (() => Promise<number>) | undefined;

  readonly outboxDepth = new Gauge({
    name: 'mailgw_outbox_depth',
    help: 'Outbox messages queued, being sent or waiting for a retry (with Redis: over every gateway process)',
    registers: [this.registry],
    collect: async () => {
      if (this.outboxDepthSource === undefined) return;
      try {
        this.outboxDepth.set(await this.outboxDepthSource());
      } catch {
        // The store is unreachable: the last value stays, and /ready says so.
      }
    },
  });

  /** Where the outbox depth is read from at each scrape. */
  setOutboxDepthSource(source: () => Promise<number>): void {
    this.outboxDepthSource = source;
  }

  /** Only with Redis configured: without it there is nothing to be up or down. */
  readonly redisUp: Gauge | undefined;

  constructor(options: { redis: boolean }) {
    this.redisUp = options.redis
      ? new Gauge({
          name: 'mailgw_redis_up',
          help: '1 while the Redis cache answers, 0 while it is degraded (absent without Redis)',
          registers: [this.registry],
        })
      : undefined;
    // Unprefixed, under their standard names (process_*, nodejs_*), so stock Node.js dashboards work.
    collectDefaultMetrics({ register: this.registry });
  }

  private readonly scrapeHooks: Array<() => void> = [];

  /** Registers a function that refreshes live gauges just before each scrape. */
  onScrape(hook: () => void): void {
    this.scrapeHooks.push(hook);
  }

  /** The exposition text (runs the scrape hooks first). */
  async render(): Promise<string> {
    for (const hook of this.scrapeHooks) hook();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  cache(kind: CacheKind, hit: boolean): void {
    this.cacheRequests.inc({ kind, result: hit ? 'hit' : 'miss' });
  }
}
