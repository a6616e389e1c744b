import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { GrantRefused } from '../../src/accounts/oauth2/token-endpoint.js';
import { GatewayError } from '../../src/errors.js';
import { AccountHealth } from '../../src/mail/account-health.js';
import type { NewEvent } from '../../src/events/types.js';
import type { WatchSink } from '../../src/mail/watch.js';

function sink(): WatchSink & { stored: NewEvent[] } {
  const stored: NewEvent[] = [];
  return {
    stored,
    record: async (events) => void stored.push(...events),
    loadStates: async () => new Map(),
    loadMessages: async () => new Map(),
  };
}

describe('AccountHealth', () => {
  it('stores account.error once per cause and account.recovered after it; a refused OAuth2 grant only backs off (the token manager tells it)', async () => {
    const events = sink();
    const health = new AccountHealth('acc', events, pino({ level: 'silent' }), 1000, 60_000);
    await health.failed(new GrantRefused('invalid_grant', 'The OAuth2 provider refused the refresh token'));
    expect(events.stored).toEqual([]);
    expect(health.nextDelayMs()).toBeGreaterThanOrEqual(800);
    await health.succeeded();
    expect(events.stored).toEqual([]);

    await health.failed(new GatewayError('UPSTREAM_AUTH_FAILED', 'The mail server refused the stored credentials'));
    await health.failed(new GatewayError('UPSTREAM_AUTH_FAILED', 'The mail server refused the stored credentials'));
    await health.succeeded();
    expect(events.stored.map((e) => [e.type, e.fields?.code])).toEqual([
      ['account.error', 'UPSTREAM_AUTH_FAILED'],
      ['account.recovered', 'OK'],
    ]);
  });
});
