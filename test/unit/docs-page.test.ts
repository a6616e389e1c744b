/**
 * The Swagger UI page at /docs: a policy under which only the gateway's own scripts run and no other
 * site can frame it, and an API key typed into it kept in the browser only when configured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.js';

/** The directives of a Content-Security-Policy header, by name. */
function directives(header: unknown): Map<string, string[]> {
  return new Map(
    String(header)
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name = '', ...values]) => [name, values]),
  );
}

describe('/docs', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => gw.close());

  it('is served under a CSP that runs only same-origin scripts and forbids framing, for the page and its assets', async () => {
    for (const url of ['/docs', '/docs/', '/docs/static/swagger-initializer.js', '/docs/json']) {
      const res = await gw.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      const csp = directives(res.headers['content-security-policy']);
      expect(csp.get('script-src'), url).toEqual(["'self'"]);
      expect(csp.get('object-src'), url).toEqual(["'none'"]);
      expect(csp.get('frame-ancestors'), url).toEqual(["'none'"]);
      expect(csp.get('base-uri'), url).toEqual(["'self'"]);
      expect(csp.get('default-src'), url).toEqual(["'self'"]);
      expect(res.headers['x-frame-options'], url).toBe('DENY');
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
    }
  });

  it('leaves the API responses alone', async () => {
    const res = await gw.app.inject({ url: '/v1/accounts' });
    expect(res.headers['content-security-policy']).toBeUndefined();
    expect(res.headers['x-frame-options']).toBeUndefined();
  });

  it('does not keep an entered API key in the browser unless DOCS_PERSIST_AUTHORIZATION is set, and calls no outside validator', async () => {
    const page = (await gw.app.inject({ url: '/docs/static/swagger-initializer.js' })).body;
    expect(page).toContain('"persistAuthorization":false');
    expect(page).toContain('"validatorUrl":null');
    const persisting = await startGateway({ DOCS_PERSIST_AUTHORIZATION: 'true' });
    try {
      expect((await persisting.app.inject({ url: '/docs/static/swagger-initializer.js' })).body).toContain('"persistAuthorization":true');
    } finally {
      await persisting.close();
    }
  });
});
