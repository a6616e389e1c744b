/**
 * The webhook service's rules that need no HTTP (webhooks/webhook-service.ts, webhooks/types.ts):
 * which URLs are taken, admitted host names over plain http:, the
 * secret sealed under the configured key; and the OpenAPI of the routes when they are served.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createSealer } from '../../src/accounts/sealing.js';
import { keys } from '../../src/cache/keys.js';
import { loadConfig } from '../../src/config.js';
import { createEgressPolicy } from '../../src/net/egress.js';
import { FileDeliveryRecords } from '../../src/webhooks/delivery-records.js';
import { FileWebhookStore, WEBHOOKS_FILE } from '../../src/webhooks/stores.js';
import { WebhookService, parseWebhookUrl } from '../../src/webhooks/webhook-service.js';
import { rejection, thrown } from '../support/assertions.js';

describe('parseWebhookUrl', () => {
  it('takes absolute https: and http: URLs, in any case, and keeps path and query', () => {
    expect(parseWebhookUrl('HTTPS://Hooks.Example.com/a/b?x=1&y=2').href).toBe('https://hooks.example.com/a/b?x=1&y=2');
    expect(parseWebhookUrl('http://[2606:4700::1111]:8443/h').hostname).toBe('[2606:4700::1111]');
  });

  it('refuses other schemes, userinfo, fragments and overlong URLs, naming body/url', () => {
    for (const url of ['ftp://example.com/', 'file:///etc/passwd', 'data:text/plain,x', 'example.com/hook', 'https://u:p@example.com/', 'https://u@example.com/', 'https://example.com:0/', 'https://example.com/#x', 'https://example.com/#', `https://example.com/${'x'.repeat(2048)}`]) {
      const error = thrown(() => parseWebhookUrl(url));
      expect(error.code, url).toBe('VALIDATION_FAILED');
      expect(error.message, url).toMatch(/^body\/url /);
    }
  });
});

describe('WebhookService', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-webhook-service-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  async function service(allow: string[], lookup: (host: string) => Promise<Array<{ address: string; family: number }>>) {
    const key = randomBytes(32);
    const store = await FileWebhookStore.open(dataDir);
    const webhooks = new WebhookService({
      store,
      deliveries: new FileDeliveryRecords(dataDir),
      sealer: createSealer(key),
      egress: createEgressPolicy(allow, { lookup }),
      log: pino({ level: 'silent' }),
    });
    return { webhooks, key };
  }
  // Name resolution as the system resolver would answer on an internal network.
  const resolver = async (host: string) => {
    const table: Record<string, string> = { 'hooks.internal': '10.1.2.3', 'crm.internal': '10.9.9.9', 'hooks.example.com': '1.1.1.1' };
    const address = table[host];
    if (address === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return [{ address, family: 4 }];
  };

  it('lets plain http: reach only hosts the operator admitted by name or range, and refuses names that resolve to private addresses', async () => {
    const { webhooks } = await service(['hooks.internal'], resolver);
    expect((await webhooks.create({ url: 'http://hooks.internal/in' })).url).toBe('http://hooks.internal/in');
    const internal = await rejection(webhooks.create({ url: 'https://crm.internal/in' }));
    expect(internal.code).toBe('HOST_NOT_ALLOWED');
    expect(internal.message).not.toContain('10.9.9.9');
    const plain = await rejection(webhooks.create({ url: 'http://hooks.example.com/in' }));
    expect(plain.code).toBe('HOST_NOT_ALLOWED');
    expect(plain.message).toContain('https:');
    expect((await webhooks.create({ url: 'https://hooks.example.com/in' })).enabled).toBe(true);
    expect((await rejection(webhooks.create({ url: 'https://nowhere.invalid/' }))).code).toBe('UPSTREAM_ERROR');
    expect((await webhooks.list()).map((w) => w.url)).toEqual(['http://hooks.internal/in', 'https://hooks.example.com/in']);
  });

  it('seals the secret under the configured key and opens it for the dispatcher only', async () => {
    const { webhooks, key } = await service([], resolver);
    const created = await webhooks.create({ url: 'https://hooks.example.com/in', events: ['message.new', 'message.new'] });
    expect(created.events).toEqual(['message.new']);
    const stored = JSON.parse(await readFile(path.join(dataDir, WEBHOOKS_FILE), 'utf8')).webhooks[0];
    expect(JSON.stringify(stored)).not.toContain(created.secret.slice('whsec_'.length));
    expect(createSealer(key).open(stored.sealedSecret)).toBe(created.secret);
    expect(await webhooks.secretOf(created.id)).toBe(created.secret);
    expect(JSON.stringify(await webhooks.get(created.id))).not.toContain('ecret');
    expect((await rejection(webhooks.secretOf('wh_nobody'))).code).toBe('WEBHOOK_NOT_FOUND');
    // The dispatcher's read: enabled ones only, each with its secret.
    const paused = await webhooks.create({ url: 'https://hooks.example.com/paused' });
    await webhooks.update(paused.id, { enabled: false });
    expect(await webhooks.enabledWithSecrets()).toEqual([expect.objectContaining({ id: created.id, secret: created.secret, enabled: true })]);
    expect((await rejection(webhooks.disable('wh_nobody', 'gone'))).code).toBe('WEBHOOK_NOT_FOUND');
  });

  it('leaves out of the dispatcher\'s read a webhook whose secret was sealed under another key, until it is rotated', async () => {
    const before = await service([], resolver);
    const { id } = await before.webhooks.create({ url: 'https://hooks.example.com/in' });
    const after = await service([], resolver); // the same DATA_DIR, a new SECRET_KEY
    expect(await after.webhooks.enabledWithSecrets()).toEqual([]);
    expect((await rejection(after.webhooks.secretOf(id))).code).toBe('SERVICE_UNAVAILABLE');
    const { secret } = await after.webhooks.rotateSecret(id);
    expect(await after.webhooks.enabledWithSecrets()).toEqual([expect.objectContaining({ id, secret })]);
  });

  it("keeps a disable that lands while an admin's change is written, and the other way round", async () => {
    const { webhooks } = await service([], resolver);
    const { id } = await webhooks.create({ url: 'https://hooks.example.com/in' });
    await Promise.all([webhooks.update(id, { description: 'renamed' }), webhooks.disable(id, 'the receiver answered 410 Gone')]);
    expect(await webhooks.get(id)).toMatchObject({ description: 'renamed', enabled: false, disabledReason: 'the receiver answered 410 Gone' });
  });
});

describe('webhook keys', () => {
  it('keep the webhooks hash and its version counter in one Cluster slot, and each webhook its own delivery list', () => {
    const tag = (key: string): string => key.slice(key.indexOf('{') + 1, key.indexOf('}'));
    expect(tag(keys.webhooks())).toBe(tag(keys.webhooksVersion()));
    expect(keys.webhooks()).not.toBe(keys.webhooksVersion());
    expect(tag(keys.webhookDeliveries('wh_a'))).toBe('wh_a');
    expect(keys.webhookDeliveries('wh_a')).not.toBe(keys.webhookDeliveries('wh_b'));
  });
});

describe('the webhook routes in the OpenAPI document', () => {
  it('describes each route with its admin access, a summary and every response', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-webhook-openapi-'));
    try {
      const app = await buildApp(loadConfig({ DATA_DIR: dataDir }), { logger: pino({ level: 'silent' }) });
      await app.ready();
      const doc = app.swagger() as { paths: Record<string, Record<string, { summary?: string; security?: unknown; responses?: Record<string, { description?: string }> }>> };
      await app.close();
      const operations = Object.entries(doc.paths)
        .filter(([route]) => route.startsWith('/v1/webhooks'))
        .flatMap(([route, ops]) => Object.entries(ops).map(([method, op]) => ({ name: `${method} ${route}`, op })));
      expect(operations.map((o) => o.name).sort()).toEqual(
        [
          'delete /v1/webhooks/{id}',
          'get /v1/webhooks',
          'get /v1/webhooks/{id}',
          'get /v1/webhooks/{id}/deliveries',
          'patch /v1/webhooks/{id}',
          'post /v1/webhooks',
          'post /v1/webhooks/{id}/rotate-secret',
          'post /v1/webhooks/{id}/test',
        ].sort(),
      );
      for (const { name, op } of operations) {
        expect(op.summary, name).toBeTruthy();
        expect(op.security, name).toEqual([{ bearerAuth: ['admin'] }]);
        for (const [status, response] of Object.entries(op.responses ?? {})) expect(response.description, `${name} ${status}`).toBeTruthy();
      }
      expect(Object.keys(doc.paths['/v1/webhooks/{id}']?.get?.responses ?? {})).toContain('404');
      expect(Object.keys(doc.paths['/v1/webhooks']?.post?.responses ?? {})).toEqual(expect.arrayContaining(['201', '400', '403']));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
