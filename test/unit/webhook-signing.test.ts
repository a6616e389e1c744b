/**
 * The gateway's webhook signatures are what a receiver's Standard Webhooks library accepts: signed by
 * src/webhooks/signing.ts, verified by the `standardwebhooks` package as a receiver would use it.
 */
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret, signWebhook } from '../../src/webhooks/signing.js';

const body = JSON.stringify({ id: '1700000000000-0', type: 'message.new', account: 'alice', mailbox: 'INBOX', subject: 'Grüße' });

describe('webhook signing', () => {
  it('signs so that the standardwebhooks library verifies the delivery', () => {
    const secret = newWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const headers = signWebhook(secret, '1700000000000-0', Date.now() / 1000, body);
    expect(headers['webhook-id']).toBe('1700000000000-0');
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
  });

  it('gives the same signature as the library for the same id, timestamp and body', () => {
    const secret = newWebhookSecret();
    const at = new Date('2026-12-02T12:00:00Z');
    expect(signWebhook(secret, 'evt', at.getTime() / 1000, Buffer.from(body))['webhook-signature']).toBe(new Webhook(secret).sign('evt', at, body));
  });

  it('is refused by a receiver under another secret, for another body, or for an old timestamp', () => {
    const secret = newWebhookSecret();
    const now = Date.now() / 1000;
    const headers = signWebhook(secret, 'evt', now, body);
    expect(() => new Webhook(newWebhookSecret()).verify(body, { ...headers })).toThrow();
    expect(() => new Webhook(secret).verify(`${body} `, { ...headers })).toThrow();
    const old = signWebhook(secret, 'evt', now - 3600, body);
    expect(() => new Webhook(secret).verify(body, { ...old })).toThrow(/timestamp/i);
  });

  it('refuses a secret that is not a whsec_ secret', () => {
    expect(() => signWebhook('not-a-secret', 'evt', 0, body)).toThrow(/whsec_/);
  });
});
