/**
 * buildApp(config) → a ready-to-use Fastify instance with every shared part created once and
 * closed in onClose. It never listens: server.ts does, tests call `inject`.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { createLogger } from './logger.js';
import { AccountService } from './accounts/account-service.js';
import { FileAccountStore } from './accounts/file-store.js';
import { LastKnownAccountStore } from './accounts/last-known-store.js';
import { RedisAccountChanges } from './accounts/account-changes.js';
import { RedisAccountStore } from './accounts/redis-store.js';
import { createSealer, loadOrCreateFileSecretKey, parseSecretKey } from './accounts/sealing.js';
import type { AccountStore } from './accounts/types.js';
import type { Cache } from './cache/cache.js';
import { MemoryCache } from './cache/memory-cache.js';
import { RedisCache } from './cache/redis-cache.js';
import { connectRedis, createRedisClient, type RedisClient } from './cache/redis-connection.js';
import { ImapBackend } from './mail/imap/backend.js';
import { ListingCache } from './mail/imap/listing-cache.js';
import { Pop3Backend } from './mail/pop3/backend.js';
import { slotsMaildropLease } from './coordination/maildrop-lease.js';
import { Metrics } from './metrics/metrics.js';
import { LocalSessionSlots, RedisSessionSlots, type SessionSlots } from './coordination/session-slots.js';
import { MailService } from './mail/mail-service.js';
import { createEgressPolicy } from './net/egress.js';
import { AccessTokens } from './accounts/oauth2/access-tokens.js';
import { MemoryTokenState, RedisTokenState } from './accounts/oauth2/token-state.js';
import { registerCors } from './http/cors.js';
import { clientErrorHandler } from './http/client-error.js';
import { MAX_PARAM_LENGTH, frameworkErrorHandler, registerProblemHandlers } from './http/problem.js';
import { httpServerOptions } from './http/server-options.js';
import { OneLinePerRequest } from './http/request-log.js';
import { requestIdFrom } from './http/request-id.js';
import { registerSwagger } from './http/swagger.js';
import { registerValidation } from './http/validation.js';
import { accountRoutes } from './http/routes/accounts.js';
import { mailboxRoutes } from './http/routes/mailboxes.js';
import { messageRoutes } from './http/routes/messages.js';
import { serviceRoutes } from './http/routes/service.js';
import { tokenRoutes } from './http/routes/tokens.js';
import { eventRoutes } from './http/routes/events.js';
import { createEventLog } from './events/log/index.js';
import { WatchManager } from './events/watch-manager.js';
import { LocalWatchLeases, RedisWatchLeases, type WatchLeases } from './coordination/watch-leases.js';
import { Event } from './http/schemas/events.js';
import type { EventLog, WatchDemand } from './events/types.js';
import { Token } from './http/schemas/tokens.js';
import { webhookRoutes } from './http/routes/webhooks.js';
import { Webhook } from './http/schemas/webhooks.js';
import { FileDeliveryRecords, RedisDeliveryRecords } from './webhooks/delivery-records.js';
import { FileWebhookStore, RedisWebhookStore } from './webhooks/stores.js';
import type { DeliveryRecords, WebhookStore } from './webhooks/types.js';
import { WebhookService } from './webhooks/webhook-service.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';
import { FileDeliveryLanes } from './webhooks/file-lanes.js';
import { RedisDeliveryLanes } from './webhooks/redis-lanes.js';
import type { DeliveryLanes } from './webhooks/lanes.js';
import { directoryOf } from './webhooks/webhook-directory.js';
import { keys } from './cache/keys.js';
import { registerAccess, requireDeclaredAccess } from './tenants/access.js';
import { registerRateLimits } from './tenants/rate-limits.js';
import { TokenService } from './tenants/token-service.js';
import { FileTokenStore, RedisTokenStore } from './tenants/token-stores.js';
import type { TokenStore } from './tenants/tokens.js';
import { Address, Problem } from './http/schemas/common.js';
import { compilePageEncoder } from './http/schemas/page-encoder.js';
import { Account } from './http/schemas/accounts.js';
import { Mailbox } from './http/schemas/mailboxes.js';
import { Attachment, Changes, MessageDetail, MessageLocation, MessagePage, MessageSummary } from './http/schemas/messages.js';
import { OutboxEntry, SendReceipt } from './http/schemas/outbox.js';
import { outboxRoutes } from './http/routes/outbox.js';
import { FileOutbox } from './outbox/file-outbox.js';
import { RedisOutbox } from './outbox/redis-outbox.js';
import { OutboxService } from './outbox/outbox-service.js';
import { OutboxWorker } from './outbox/outbox-worker.js';
import { SmtpTransports } from './outbox/smtp-transports.js';
import { saveToSentMailbox } from './outbox/sent-mailbox.js';
import type { OutboxQueue, OutboxStore } from './outbox/types.js';

export interface AppServices {
  accounts: AccountService;
  mail: MailService;
  accountStore: AccountStore;
  cache: Cache;
  imap: ImapBackend;
  metrics: Metrics;
  tokens: TokenService;
  /** Webhooks and their delivery records. */
  webhooks: WebhookService;
  /** Delivers the event log to the webhooks (test deliveries too). */
  deliveries: WebhookDispatcher;
  /** Which accounts this process watches, and the watchers it runs. */
  watchers: WatchManager;
  /** Sending: the outbox's use cases (its worker runs inside). */
  outbox: OutboxService;
  /**
   * The event log and who wants accounts watched. Present, the event stream routes are served;
   * absent (until the watchers exist), they are not.
   */
  events?: EventServices;
}

/** What the event stream routes read from and retain through. */
export interface EventServices {
  log: EventLog;
  demand: WatchDemand;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: AppServices;
  }
}

export interface BuildOptions {
  /** A logger to use instead of one built from the config (tests pass a silent one). */
  logger?: Logger;
  /**
   * Serve the event streams from this log and demand. The caller owns them: the app does not
   * close them (those the app builds itself are closed with it).
   */
  events?: EventServices;
  /** Bytes per partial FETCH of a download (default 1 MiB): tests make it small, so small messages cross chunk boundaries. */
  downloadChunkBytes?: number;
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = (options.logger ?? createLogger(config.logLevel)) as FastifyBaseLogger;
  const app = Fastify({
    loggerInstance: logger,
    genReqId: (request) => requestIdFrom(request.headers['x-request-id']),
    // A hop count believes that many proxies nearest to us (proxy-addr's hop 0 is the socket's peer).
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    logController: new OneLinePerRequest(),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    ...httpServerOptions(config.http),
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler: clientErrorHandler(logger),
  }).withTypeProvider<TypeBoxTypeProvider>();

  const metrics = new Metrics({ redis: config.redisUrl !== undefined || config.redisClusterNodes.length > 0 });
  const services = await createServices(config, app.log, metrics, options);
  if (options.events !== undefined) services.services.events = options.events;
  app.decorate('services', services.services);
  app.addHook('onClose', services.close);
  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', String(request.id));
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  // Only JSON bodies (and, per route, raw messages): a text/plain body is 415, not a 400 for its shape.
  app.removeContentTypeParser('text/plain');
  registerValidation(app);
  registerProblemHandlers(app);
  await registerSwagger(app, { persistAuthorization: config.docsPersistAuthorization });
  await registerCors(app, config.corsOrigins);
  requireDeclaredAccess(app);
  const limit = await registerRateLimits(app, config.rateLimits, services.redis);
  registerAccess(app, { apiKeys: config.apiKeys, tokens: services.services.tokens, limit });
  for (const schema of [Problem, Address, Account, Mailbox, MessageSummary, MessagePage, Attachment, MessageDetail, MessageLocation, Changes, Token, SendReceipt, OutboxEntry]) {
    app.addSchema(schema);
  }
  const events = services.services.events;
  if (events !== undefined) app.addSchema(Event);
  app.addSchema(Webhook);
  await app.register(serviceRoutes);
  await app.register(
    async (v1) => {
      await v1.register(accountRoutes, { limits: config.rateLimits });
      await v1.register(tokenRoutes);
      await v1.register(webhookRoutes);
      await v1.register(mailboxRoutes);
      await v1.register(messageRoutes, { maxUploadBytes: config.maxUploadBytes });
      await v1.register(outboxRoutes, { outbox: services.services.outbox, maxUploadBytes: config.maxUploadBytes });
      if (events !== undefined) await v1.register(eventRoutes, { ...events, settings: config.eventStreams });
    },
    { prefix: '/v1' },
  );
  return app;
}

async function createServices(
  config: Config,
  log: FastifyInstance['log'],
  metrics: Metrics,
  options: Pick<BuildOptions, 'downloadChunkBytes'>,
): Promise<{ services: AppServices; redis: RedisClient | undefined; close: () => Promise<void> }> {
  let redis: RedisClient | undefined;
  if (config.redisUrl !== undefined || config.redisClusterNodes.length > 0) {
    redis = createRedisClient({ url: config.redisUrl, clusterNodes: config.redisClusterNodes });
    redis.on('error', () => undefined); // outages surface as degraded cache or 503 from the store
    if (!(await connectRedis(redis, 3000))) log.warn('redis is not reachable yet; serving degraded until it is');
  }
  const secretKey =
    config.secretKey !== undefined ? parseSecretKey(config.secretKey) : await loadOrCreateFileSecretKey(config.dataDir);
  const sealer = createSealer(secretKey);
  const accountStore: AccountStore = redis
    ? new LastKnownAccountStore(new RedisAccountStore(redis), {
        log: log.child({ component: 'accounts' }) as Logger,
        freshForMs: config.accountRecordFreshMs,
        onFallback: () => metrics.redisDegradations.inc(),
      })
    : await FileAccountStore.open(config.dataDir);
  const tokenStore: TokenStore = redis ? new RedisTokenStore(redis) : await FileTokenStore.open(config.dataDir);
  const tokens = new TokenService(tokenStore);
  const webhookStore: WebhookStore = redis ? new RedisWebhookStore(redis) : await FileWebhookStore.open(config.dataDir);
  const deliveryRecords: DeliveryRecords = redis ? new RedisDeliveryRecords(redis) : new FileDeliveryRecords(config.dataDir);
  const cache: Cache = redis
    ? new RedisCache(redis, log.child({ component: 'cache' }) as Logger, () => metrics.redisDegradations.inc())
    : new MemoryCache(config.memoryCacheBytes);
  const egress = createEgressPolicy(config.egressAllow);
  const slots: SessionSlots = redis
    ? new RedisSessionSlots(redis, log.child({ component: 'slots' }) as Logger, config.sessionSlotTtlMs)
    : new LocalSessionSlots();

  // The backend resolves accounts lazily through the service, at connect time.
  const resolver = { service: undefined as AccountService | undefined };
  const pageEncoder = compilePageEncoder();
  const imap = new ImapBackend({
    resolveAccount: (id) => {
      if (resolver.service === undefined) throw new Error('account service not ready');
      return resolver.service.resolveMailAccount(id);
    },
    egress,
    maxSessionsPerAccount: config.imap.maxSessionsPerAccount,
    sessionIdleTimeoutMs: config.imap.sessionIdleTimeoutMs,
    acquireTimeoutMs: config.imap.acquireTimeoutMs,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    downloadIdleTimeoutMs: config.downloadIdleTimeoutMs,
    watchStartConcurrency: config.watch.startConcurrency,
    ...(options.downloadChunkBytes !== undefined ? { downloadChunkBytes: options.downloadChunkBytes } : {}),
    slots,
    events: true,
    log: log.child({ component: 'imap' }) as Logger,
    metrics,
    ...(config.listingCache
      ? {
          listingCache: new ListingCache({
            cache,
            ttlSeconds: config.cacheTtl.listingSeconds,
            encodePage: pageEncoder.encode,
            layout: pageEncoder.layout,
            // Shared in Redis, hot pages also here; without Redis the cache already is this memory.
            ...(redis ? { local: new MemoryCache(config.memoryCacheBytes) } : {}),
          }),
        }
      : {}),
  });
  const pop3 = new Pop3Backend({
    resolveAccount: (id) => {
      if (resolver.service === undefined) throw new Error('account service not ready');
      return resolver.service.resolveMailAccount(id);
    },
    egress,
    cache,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    acquireTimeoutMs: config.imap.acquireTimeoutMs,
    headerCacheTtlSeconds: config.cacheTtl.messageSeconds,
    ...(redis ? { maildropLease: slotsMaildropLease(slots) } : {}),
    events: true,
    log: log.child({ component: 'pop3' }) as Logger,
  });
  const backends = { imap, pop3 };
  const eventLog = createEventLog({
    retentionMs: config.events.retentionSeconds * 1000,
    ...(redis ? { redis } : {}),
    dataDir: config.dataDir,
    log: log.child({ component: 'events' }) as Logger,
  });
  const watchLeases: WatchLeases = redis
    ? new RedisWatchLeases(redis, log.child({ component: 'watch' }) as Logger, config.sessionSlotTtlMs)
    : new LocalWatchLeases();
  const mailRef = { service: undefined as MailService | undefined };
  const watchers = new WatchManager({
    startWatch: (id, sink, watchOptions) => {
      if (mailRef.service === undefined) throw new Error('mail service not ready');
      return mailRef.service.watch(id, sink, watchOptions);
    },
    log: eventLog,
    leases: watchLeases,
    watch: config.watch,
    logger: log.child({ component: 'watch' }) as Logger,
    metrics,
  });
  const accountChanges = redis ? new RedisAccountChanges(redis, log.child({ component: 'accounts' }) as Logger) : undefined;
  const smtp = new SmtpTransports({
    egress,
    timeoutMs: config.upstreamTimeoutMs,
    maxConnectionsPerAccount: config.outbox.maxConnectionsPerAccount,
    log: log.child({ component: 'smtp' }) as Logger,
  });
  // Its own connection: a message may be megabytes, longer to move than the shared client's 1 s command bound.
  const outboxRedis = redis ? createRedisClient({ url: config.redisUrl, clusterNodes: config.redisClusterNodes, commandTimeoutMs: 30_000 }) : undefined;
  outboxRedis?.on('error', () => undefined);
  if (outboxRedis) await connectRedis(outboxRedis, 3000);
  const outboxLog = log.child({ component: 'outbox' }) as Logger;
  const outboxStore: OutboxStore & OutboxQueue = outboxRedis
    ? new RedisOutbox({ redis: outboxRedis, log: outboxLog, claimIdleMs: config.sessionSlotTtlMs })
    : await FileOutbox.open(config.dataDir, outboxLog);
  // OAuth2 grants' access tokens: shared in Redis, or kept in this process (the embedded mode).
  const accessTokens: AccessTokens = new AccessTokens({
    state: redis ? new RedisTokenState(redis) : new MemoryTokenState(),
    sealer,
    egress,
    timeoutMs: config.upstreamTimeoutMs,
    log: log.child({ component: 'oauth2' }) as Logger,
    keepRefreshToken: (grant, refreshToken, previous): Promise<void> => accounts.keepRefreshToken(grant, refreshToken, previous),
    onRefused: (accountId, detail) => void recordAccountEvent(accountId, 'account.error', { code: 'UPSTREAM_AUTH_FAILED', detail }),
    onRecovered: (accountId) => void recordAccountEvent(accountId, 'account.recovered', { code: 'OK', detail: 'The OAuth2 provider issues access tokens for this account again' }),
    onRenewal: (outcome) => metrics.oauth2Renewals.inc({ outcome }),
  });
  /** An account event outside a watcher (a refused OAuth2 grant): stored only for an account that exists. */
  const recordAccountEvent = async (accountId: string, type: 'account.error' | 'account.recovered', fields: Record<string, unknown>): Promise<void> => {
    try {
      if ((await accountStore.get(accountId)) === null) return;
      await eventLog.append(accountId, [{ type, mailbox: null, fields }]);
    } catch (err) {
      log.warn({ account: accountId, err: { message: (err as Error).message } }, 'could not store an account event');
    }
  };
  const accounts: AccountService = new AccountService({
    store: accountStore,
    sealer,
    egress,
    backends,
    cache,
    log: log.child({ component: 'accounts' }) as Logger,
    ...(accountChanges ? { changes: accountChanges } : {}),
    smtp,
    tokens: accessTokens,
    onDeleted: async (id) => {
      await outboxStore.dropAccount(id);
      // Lanes first: none reads the account's log again once it is dropped.
      await deliveriesRef.dispatcher?.forgetAccount(id);
      await watchers.forget(id);
      await eventLog.dropAccount(id);
      void deliveriesRef.dispatcher?.refresh();
    },
    onCreated: () => void deliveriesRef.dispatcher?.refresh(),
  });
  resolver.service = accounts;
  const deliveriesRef = { dispatcher: undefined as WebhookDispatcher | undefined };
  await accountChanges?.start((change) => {
    accounts.applyRemoteChange(change).catch((err: unknown) => log.warn({ err, account: change.id }, 'could not apply an account change'));
    void deliveriesRef.dispatcher?.refresh();
  });
  const webhooks = new WebhookService({
    store: webhookStore,
    deliveries: deliveryRecords,
    sealer,
    egress,
    log: log.child({ component: 'webhooks' }) as Logger,
  });
  const lanes: DeliveryLanes = redis
    ? new RedisDeliveryLanes(redis)
    : await FileDeliveryLanes.open(config.dataDir, eventLog);
  if (config.events.retentionSeconds < config.webhooks.retryHours * 3600) {
    // Allowed (the log's size is the operator's call), but a receiver down for longer than the log is
    // kept loses events: each is recorded `failed` when its lane finds it gone.
    log.warn(
      { retentionSeconds: config.events.retentionSeconds, retryHours: config.webhooks.retryHours },
      'EVENTS_RETENTION_SECONDS is shorter than WEBHOOK_RETRY_HOURS: events may leave the log while a receiver is still being retried',
    );
  }
  const directory = directoryOf(webhooks);
  const deliveries = new WebhookDispatcher({
    directory,
    accountIds: async () => (await accountStore.list()).map((record) => record.id),
    log: eventLog,
    lanes,
    leases: redis
      ? new RedisWatchLeases(redis, log.child({ component: 'webhooks' }) as Logger, config.sessionSlotTtlMs, keys.deliveryLease)
      : new LocalWatchLeases(),
    demand: watchers,
    record: directory.record,
    egress,
    retryHours: config.webhooks.retryHours,
    refreshIntervalMs: config.webhooks.refreshIntervalMs,
    pollIntervalMs: config.eventStreams.pollIntervalMs,
    logger: log.child({ component: 'webhooks' }) as Logger,
    metrics,
  });
  deliveriesRef.dispatcher = deliveries;
  webhooks.onChange((change) => {
    if (change.kind === 'deleted') void deliveries.forget(change.id);
    else void deliveries.refresh();
  });
  // Not awaited: a store that is down now is read again at the next interval.
  void deliveries.refresh();
  const mail = new MailService({ accounts, backends, cache, messageCacheTtlSeconds: config.cacheTtl.messageSeconds, metrics });
  mailRef.service = mail;
  const keepMs = config.outbox.keepHours * 3_600_000;
  const outboxWorker = new OutboxWorker({
    store: outboxStore,
    transports: smtp,
    smtpAccount: (id) => accounts.resolveSmtpAccount(id),
    saveCopy: (id, raw) => saveToSentMailbox(mail, id, raw),
    flagOriginal: async (id, mailbox, messageId, flag) => {
      await mail.updateFlags(id, mailbox, messageId, flag === '\\Answered' ? { answered: true } : { addFlags: [flag] });
    },
    emit: async (id, event) => {
      await eventLog.append(id, [event]);
    },
    retryHours: config.outbox.retryHours,
    keepMs,
    concurrency: config.outbox.concurrency,
    log: outboxLog,
    metrics,
  });
  outboxStore.start(outboxWorker.handle, () => outboxWorker.capacity());
  const outbox = new OutboxService({
    store: outboxStore,
    accounts,
    mail,
    maxMessageBytes: config.maxUploadBytes,
    keepMs,
    log: outboxLog,
    metrics,
  });
  metrics.setOutboxDepthSource(() => outboxStore.depth());
  metrics.onScrape(() => {
    const totals = { open: 0, busy: 0, connecting: 0, waiting: 0 };
    for (const stats of imap.poolStats().values()) {
      totals.open += stats.open;
      totals.busy += stats.busy;
      totals.connecting += stats.connecting;
      totals.waiting += stats.waiting;
    }
    for (const [state, value] of Object.entries(totals)) metrics.poolSessions.set({ protocol: 'imap', state }, value);
    const pop3Stats = pop3.sessionStats();
    metrics.poolSessions.set({ protocol: 'pop3', state: 'open' }, pop3Stats.live);
    metrics.poolSessions.set({ protocol: 'pop3', state: 'waiting' }, pop3Stats.waiting);
    metrics.redisUp?.set(cache.health() === 'ok' ? 1 : 0);
    metrics.webhookBacklog.reset();
    metrics.webhookOldestPending.reset();
    const now = Date.now();
    for (const [webhook, lanes] of deliveries.laneStats()) {
      metrics.webhookBacklog.set({ webhook }, lanes.backlog);
      metrics.webhookOldestPending.set({ webhook }, lanes.oldestPendingAtMs === null ? 0 : Math.max(0, now - lanes.oldestPendingAtMs) / 1000);
    }
  });

  return {
    services: { accounts, mail, accountStore, cache, imap, metrics, tokens, webhooks, deliveries, watchers, outbox, events: { log: eventLog, demand: watchers } },
    redis,
    close: async () => {
      // In this order (deliveries before their lanes, watchers before the log they write), and each
      // step on its own: one that fails is logged and the rest still close.
      const steps: Array<[string, (() => Promise<void>) | undefined]> = [
        ['account changes', accountChanges && (() => accountChanges.close())],
        // Before the pools and the log it appends to: a send in flight ends, its job stays queued.
        ['outbox', async () => {
          await outboxStore.close();
          await outboxWorker.close();
          smtp.close();
        }],
        ['webhook deliveries', () => deliveries.close()],
        ['webhook lanes', () => lanes.close()],
        ['watchers', () => watchers.close()],
        ['IMAP pools', () => imap.close()],
        ['POP3 sessions', () => pop3.close()],
        ['session slots', () => slots.close()],
        ['event log', () => eventLog.close()],
        ['cache', () => cache.close()],
        ['account store', () => accountStore.close()],
        ['token store', () => tokenStore.close()],
        ['webhook store', () => webhookStore.close()],
        ['delivery records', () => deliveryRecords.close()],
        ['outbox Redis connection', outboxRedis && (async () => void (await outboxRedis.quit().catch(() => outboxRedis.disconnect())))],
      ];
      for (const [name, step] of steps) {
        try {
          await step?.();
        } catch (err) {
          log.warn({ err: { message: (err as Error).message } }, `could not close the ${name} cleanly`);
        }
      }
      if (redis) await redis.quit().catch(() => redis?.disconnect());
    },
  };
}

function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}
