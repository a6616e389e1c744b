import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPENAPI_FILE, generateOpenApiDocument } from '../../src/http/openapi-document.js';

const root = path.resolve(import.meta.dirname, '../..');

describe('OpenAPI document', () => {
  it('is committed exactly as the app generates it (run `npm run openapi` after changing a route)', async () => {
    const generated = await generateOpenApiDocument();
    const committed = await readFile(path.join(root, OPENAPI_FILE), 'utf8');
    expect(committed).toBe(generated);
  });

  it('gives every operation a summary, tags, and a schema for each response', async () => {
    const doc = JSON.parse(await generateOpenApiDocument()) as {
      paths: Record<string, Record<string, { summary?: string; tags?: string[]; responses?: Record<string, { content?: unknown; description?: string }> }>>;
      components: { securitySchemes: Record<string, { scheme?: string }> };
    };
    expect(doc.components.securitySchemes.bearerAuth?.scheme).toBe('bearer');
    const operations = Object.entries(doc.paths).flatMap(([route, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ name: `${method.toUpperCase()} ${route}`, op })),
    );
    expect(operations.length).toBeGreaterThanOrEqual(11);
    for (const { name, op } of operations) {
      expect(op.summary, name).toBeTruthy();
      expect(op.tags?.length, name).toBeGreaterThan(0);
      const responses = Object.entries(op.responses ?? {});
      expect(responses.length, name).toBeGreaterThan(0);
      for (const [status, response] of responses) {
        expect(response.description, `${name} ${status}`).toBeTruthy();
        if (!['204', '304'].includes(status)) expect(response.content, `${name} ${status}`).toBeTruthy();
      }
    }
  });
});
