/**
 * The webhook use cases (API.md, Webhooks): create, list, read, change and delete webhooks, rotate
 * their secrets, read their delivery records; and, for the delivery dispatcher only, a webhook's
 * secret in the clear, keeping a delivery record, and disabling a webhook whose receiver answered
 * 410 Gone.
 *
 * - A URL is checked when it is saved as it is at every delivery (sender.ts): absolute `https:`, or
 *   `http:` to a host the operator admitted by EGRESS_ALLOW (events carry mail content); no userinfo
 *   (credentials in a URL end up in logs, RFC 9110 §4.2.4 deprecates them); no fragment (never sent,
 *   RFC 3986 §3.5); its host passes the egress policy (403 HOST_NOT_ALLOWED). DNS may change later:
 *   the sender checks again at each attempt.
 * - The secret (`whsec_…`) is sealed as mail passwords are, and shown only in the answers of create
 *   and rotate-secret. No log line carries it.
 */
import type { Logger } from 'pino';
import type { Sealer } from '../accounts/sealing.js';
import { GatewayError } from '../errors.js';
import type { EventType } from '../events/types.js';
import type { EgressPolicy } from '../net/egress.js';
import { newWebhookSecret } from './signing.js';
import {
  EVERY,
  WEBHOOK_URL_MAX_LENGTH,
  newWebhookId,
  webhookNotFound,
  type DeliveryRecord,
  type DeliveryRecords,
  type WebhookRecord,
  type WebhookStore,
} from './types.js';

export interface WebhookInput {
  url: string;
  /** Default: every event type. */
  events?: Array<EventType | typeof EVERY>;
  /** Default: every account. */
  accounts?: string[];
  description?: string | null;
}

export interface WebhookPatch {
  url?: string;
  events?: Array<EventType | typeof EVERY>;
  accounts?: string[];
  enabled?: boolean;
  description?: string | null;
}

/** What the API shows of a webhook: everything but the secret. */
export type WebhookView = Omit<WebhookRecord, 'sealedSecret'>;

export interface WebhookServiceOptions {
  store: WebhookStore;
  deliveries: DeliveryRecords;
  sealer: Sealer;
  egress: EgressPolicy;
  log: Logger;
  now?: () => number;
}

/** What changed, for the dispatcher in this process (other processes see the store's version move). */
export type WebhookChange = { kind: 'created' | 'changed'; id: string } | { kind: 'deleted'; id: string };

export class WebhookService {
  private readonly listeners = new Set<(change: WebhookChange) => void>();

  constructor(private readonly options: WebhookServiceOptions) {}

  /** Calls `listener` after every change made through this service; answers the function that stops it. */
  onChange(listener: (change: WebhookChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(change: WebhookChange): void {
    for (const listener of this.listeners) listener(change);
  }

  async create(input: WebhookInput): Promise<WebhookView & { secret: string }> {
    const url = await this.checkedUrl(input.url);
    const secret = newWebhookSecret();
    const now = this.nowIso();
    const record: WebhookRecord = {
      id: newWebhookId(),
      url,
      events: everyOr(input.events, 'events'),
      accounts: everyOr(input.accounts, 'accounts'),
      description: input.description ?? null,
      enabled: true,
      disabledReason: null,
      createdAt: now,
      updatedAt: now,
      sealedSecret: this.options.sealer.seal(secret),
    };
    await this.options.store.create(record);
    // The URL's host only: a path or query may carry a receiver's own token.
    this.options.log.info({ webhook: record.id, host: new URL(url).host }, 'webhook created');
    this.changed({ kind: 'created', id: record.id });
    return { ...view(record), secret };
  }

  async list(): Promise<WebhookView[]> {
    return (await this.options.store.list()).map(view);
  }

  async get(id: string): Promise<WebhookView> {
    return view(await this.record(id));
  }

  async update(id: string, patch: WebhookPatch): Promise<WebhookView> {
    // Checked before the store is touched: the egress check resolves names, which takes time.
    const url = patch.url === undefined ? undefined : await this.checkedUrl(patch.url);
    const events = patch.events === undefined ? undefined : everyOr(patch.events, 'events');
    const accounts = patch.accounts === undefined ? undefined : everyOr(patch.accounts, 'accounts');
    const updatedAt = this.nowIso();
    const next = await this.options.store.update(id, (current) => ({
      ...current,
      ...(url !== undefined ? { url } : {}),
      ...(events !== undefined ? { events } : {}),
      ...(accounts !== undefined ? { accounts } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.enabled !== undefined
        ? // Enabling clears why the gateway disabled it; an admin's disable needs no reason stored.
          { enabled: patch.enabled, disabledReason: null }
        : {}),
      updatedAt,
    }));
    if (next === null) throw webhookNotFound(id);
    this.options.log.info({ webhook: id, fields: Object.keys(patch) }, 'webhook changed');
    this.changed({ kind: 'changed', id });
    return view(next);
  }

  async delete(id: string): Promise<void> {
    if (!(await this.options.store.delete(id))) throw webhookNotFound(id);
    // The webhook is gone already; records left behind by a failure here expire on their own (Redis)
    // or are only ever read through a webhook that exists.
    await this.options.deliveries.remove(id).catch((err: unknown) => {
      this.options.log.warn({ webhook: id, err: { message: (err as Error).message } }, "could not remove the deleted webhook's delivery records");
    });
    this.options.log.info({ webhook: id }, 'webhook deleted');
    this.changed({ kind: 'deleted', id });
  }

  /** A new secret, effective at once for every delivery that starts after this; the old one stops working. */
  async rotateSecret(id: string): Promise<WebhookView & { secret: string }> {
    const secret = newWebhookSecret();
    const sealedSecret = this.options.sealer.seal(secret);
    const updatedAt = this.nowIso();
    const next = await this.options.store.update(id, (current) => ({ ...current, sealedSecret, updatedAt }));
    if (next === null) throw webhookNotFound(id);
    this.options.log.info({ webhook: id }, 'webhook secret rotated');
    this.changed({ kind: 'changed', id });
    return { ...view(next), secret };
  }

  /** The webhook's latest delivery records, newest first. */
  async deliveries(id: string, limit: number): Promise<DeliveryRecord[]> {
    await this.record(id);
    return this.options.deliveries.list(id, limit);
  }

  /**
   * Keeps one delivery attempt's record (the dispatcher's), among the webhook's latest. Not for a
   * webhook deleted meanwhile (WEBHOOK_NOT_FOUND): its records went with it and must not come back.
   */
  async recordDelivery(id: string, record: DeliveryRecord): Promise<void> {
    await this.record(id);
    await this.options.deliveries.add(id, record);
  }

  /** The webhook's secret in the clear, to sign a delivery with (the dispatcher's; never for a response). */
  async secretOf(id: string): Promise<string> {
    return this.openSecret(await this.record(id));
  }

  private openSecret(record: WebhookRecord): string {
    try {
      return this.options.sealer.open(record.sealedSecret);
    } catch (err) {
      throw new GatewayError('SERVICE_UNAVAILABLE', `the secret of webhook ${record.id} cannot be opened (was SECRET_KEY changed?); rotate it`, { cause: err });
    }
  }

  /** The gateway stops delivering to this webhook on its own (its receiver answered 410 Gone), saying why. */
  async disable(id: string, reason: string): Promise<WebhookView> {
    const updatedAt = this.nowIso();
    const next = await this.options.store.update(id, (current) => ({ ...current, enabled: false, disabledReason: reason, updatedAt }));
    if (next === null) throw webhookNotFound(id);
    this.options.log.warn({ webhook: id, reason }, 'webhook disabled');
    this.changed({ kind: 'changed', id });
    return view(next);
  }

  /**
   * Every enabled webhook with its secret in the clear, for the dispatcher (one store read). One whose
   * secret cannot be opened (sealed under another SECRET_KEY) is left out, and said in the log: it
   * could only send deliveries its receiver must refuse; rotating its secret brings it back.
   */
  async enabledWithSecrets(): Promise<Array<WebhookView & { secret: string }>> {
    const out: Array<WebhookView & { secret: string }> = [];
    for (const record of await this.options.store.list()) {
      if (!record.enabled) continue;
      try {
        out.push({ ...view(record), secret: this.options.sealer.open(record.sealedSecret) });
      } catch {
        this.options.log.error({ webhook: record.id }, 'webhook secret cannot be opened (was SECRET_KEY changed?); nothing is delivered to it until its secret is rotated');
      }
    }
    return out;
  }

  /** One webhook with its secret opened, enabled or not (a test delivery); WEBHOOK_NOT_FOUND if there is none. */
  async withSecret(id: string): Promise<WebhookView & { secret: string }> {
    const record = await this.record(id);
    return { ...view(record), secret: this.openSecret(record) };
  }

  /** Grows with every change to any webhook, made by any process sharing the store (stores.ts). */
  version(): Promise<number> {
    return this.options.store.version();
  }

  private async record(id: string): Promise<WebhookRecord> {
    const record = await this.options.store.get(id);
    if (record === null) throw webhookNotFound(id);
    return record;
  }

  /** The URL as it will be stored (WHATWG-serialised), or the reason it is refused. */
  private async checkedUrl(text: string): Promise<string> {
    const url = parseWebhookUrl(text);
    const target = await this.options.egress.resolve(url.hostname);
    if (url.protocol === 'http:' && !target.admitted) {
      throw new GatewayError(
        'HOST_NOT_ALLOWED',
        `plain http: is allowed only to hosts an operator admitted with EGRESS_ALLOW ("${url.hostname}" is not); use an https: URL`,
      );
    }
    return url.href;
  }

  private nowIso(): string {
    return new Date((this.options.now ?? Date.now)()).toISOString();
  }
}

/** The checks that need no network: absolute http(s), no userinfo, no port 0, no fragment, bounded length. */
export function parseWebhookUrl(text: string): URL {
  const invalid = (rule: string): GatewayError => new GatewayError('VALIDATION_FAILED', `body/url ${rule}`);
  if (text.length > WEBHOOK_URL_MAX_LENGTH) throw invalid(`must be at most ${WEBHOOK_URL_MAX_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid('must be an absolute https: or http: URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('must be an https: or http: URL');
  if (url.username !== '' || url.password !== '') throw invalid('must not carry a user name or password (put a credential in the path or query)');
  if (url.port === '0') throw invalid('must not name port 0 (nothing can listen there)');
  if (url.hash !== '' || text.includes('#')) throw invalid('must not have a fragment (#…): it is never sent to the receiver');
  if (url.href.length > WEBHOOK_URL_MAX_LENGTH) throw invalid(`must be at most ${WEBHOOK_URL_MAX_LENGTH} characters once normalised`);
  return url;
}

/** `['*']` alone, or a list without `*`; absent means every one. */
function everyOr<T extends string>(values: T[] | undefined, field: 'events' | 'accounts'): T[] {
  if (values === undefined) return [EVERY as T];
  if (values.includes(EVERY as T) && values.length > 1) {
    throw new GatewayError('VALIDATION_FAILED', `body/${field} must be ["*"] alone or a list of ${field === 'events' ? 'event types' : 'account ids'}`);
  }
  return [...new Set(values)];
}

function view(record: WebhookRecord): WebhookView {
  const { sealedSecret: _sealedSecret, ...rest } = record;
  return rest;
}
