import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS, ERROR_CODES } from '../../src/errors.js';
import { ERRORS_DOC_FILE, OPENAPI_FILE, generateErrorsDocument, generateOpenApiDocument } from '../../src/http/openapi-document.js';

const root = path.resolve(import.meta.dirname, '../..');

interface Example {
  value: { status: number; code: string; title: string; detail: string; type: string };
}
interface Response {
  description?: string;
  content?: Record<string, { schema?: unknown; examples?: Record<string, Example> }>;
}
interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  parameters?: { name: string; in: string; required?: boolean; schema?: { default?: unknown } }[];
  responses?: Record<string, Response>;
}
interface Document {
  servers?: { url: string }[];
  info: { license?: { name?: string; identifier?: string } };
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { scheme?: string }>; schemas: Record<string, { properties?: Record<string, { enum?: string[] }> }> };
}

const document = async (): Promise<Document> => JSON.parse(await generateOpenApiDocument()) as Document;
const operationsOf = (doc: Document) =>
  Object.entries(doc.paths).flatMap(([route, ops]) => Object.entries(ops).map(([method, op]) => ({ name: `${method.toUpperCase()} ${route}`, op })));

describe('OpenAPI document', () => {
  it('is committed exactly as the app generates it (run `npm run openapi` after changing a route)', async () => {
    const generated = await generateOpenApiDocument();
    const committed = await readFile(path.join(root, OPENAPI_FILE), 'utf8');
    expect(committed).toBe(generated);
  });

  it('gives every operation a summary, tags, and a described schema for each response', async () => {
    const doc = await document();
    expect(doc.components.securitySchemes.bearerAuth?.scheme).toBe('bearer');
    const operations = operationsOf(doc);
    expect(operations.length).toBeGreaterThanOrEqual(22);
    for (const { name, op } of operations) {
      expect(op.summary, name).toBeTruthy();
      expect(op.tags?.length, name).toBeGreaterThan(0);
      const responses = Object.entries(op.responses ?? {});
      expect(responses.length, name).toBeGreaterThan(0);
      for (const [status, response] of responses) {
        expect(response.description, `${name} ${status}`).toBeTruthy();
        expect(response.description, `${name} ${status}`).not.toBe('Default Response');
        if (!['204', '304'].includes(status)) expect(response.content, `${name} ${status}`).toBeTruthy();
      }
    }
  });

  it('gives every operation a unique, stable operationId', async () => {
    const ids = operationsOf(await document()).map(({ name, op }) => {
      expect(op.operationId, name).toMatch(/^[a-z][A-Za-z]+$/);
      return op.operationId;
    });
    expect(new Set(ids).size).toBe(ids.length);
    // Generated clients name their methods after these: renaming one breaks them.
    expect(ids).toEqual(
      expect.arrayContaining(['listAccounts', 'createAccount', 'listMailboxes', 'listMessages', 'getMessage', 'getRawMessage', 'getAttachment']),
    );
  });

  it('requires no query parameter that has a default', async () => {
    const offenders = operationsOf(await document()).flatMap(({ name, op }) =>
      (op.parameters ?? []).filter((p) => p.in !== 'path' && p.required && p.schema?.default !== undefined).map((p) => `${name} ?${p.name}`),
    );
    expect(offenders).toEqual([]);
  });

  it('names the access each operation needs: one scope, admin, or none for the probes', async () => {
    for (const { name, op } of operationsOf(await document())) {
      const security = (op as { security?: Record<string, string[]>[] }).security;
      if (name === 'GET /health' || name === 'GET /ready') {
        expect(security, name).toEqual([]);
        continue;
      }
      expect(security?.length, name).toBe(1);
      const scopes = security?.[0]?.bearerAuth ?? [];
      expect(['read', 'write', 'send', 'events', 'admin'], name).toContain(scopes[0]);
      expect((op as { description?: string }).description, name).toContain('**Access:**');
      // The event streams take their own scope (API.md): every other GET under an account is `read`.
      if (name.endsWith('/events')) expect(scopes, name).toEqual(['events']);
      else if (name.startsWith('GET /v1/accounts/{account}')) expect(scopes, name).toEqual(['read']);
      if (/^(POST|PATCH|DELETE) \/v1\/accounts\/\{account\}\/mailboxes/.test(name)) expect(scopes, name).toEqual(['write']);
      if (name.includes('/v1/tokens') || name === 'POST /v1/accounts' || name === 'GET /metrics') expect(scopes, name).toEqual(['admin']);
    }
  });

  it('names a server and the licence identifier', async () => {
    const doc = await document();
    expect(doc.servers?.length).toBeGreaterThan(0);
    expect(doc.info.license).toEqual({ name: 'MIT', identifier: 'MIT' });
  });

  it('enumerates every error code in the problem schema, and each error response shows examples of its own status only', async () => {
    const doc = await document();
    expect(doc.components.schemas.Problem?.properties?.code?.enum).toEqual(ERROR_CODES);
    for (const { name, op } of operationsOf(doc)) {
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        if (Number(status) < 400) continue;
        const examples = Object.entries(response.content?.['application/problem+json']?.examples ?? {});
        if (name === 'GET /ready' && status === '503') continue; // a readiness document, not a problem
        expect(examples.length, `${name} ${status}`).toBeGreaterThan(0);
        for (const [code, example] of examples) {
          expect(example.value.code, `${name} ${status}`).toBe(code);
          expect(example.value.status, `${name} ${status} ${code}`).toBe(Number(status));
          expect(ERRORS[code as keyof typeof ERRORS].status, `${name} ${status} ${code}`).toBe(Number(status));
          expect(example.value.detail.length, `${name} ${status} ${code}`).toBeGreaterThan(0);
        }
      }
    }
  });

  it('lets every /v1 operation answer UNAUTHORIZED and every account-scoped one ACCOUNT_NOT_FOUND', async () => {
    for (const { name, op } of operationsOf(await document())) {
      if (!name.includes(' /v1/')) continue;
      expect(Object.keys(op.responses?.['401']?.content?.['application/problem+json']?.examples ?? {}), name).toContain('UNAUTHORIZED');
      if (name.includes('/{account}')) {
        expect(Object.keys(op.responses?.['404']?.content?.['application/problem+json']?.examples ?? {}), name).toContain('ACCOUNT_NOT_FOUND');
      }
    }
  });
});

describe('docs/errors.md', () => {
  it('is committed exactly as generated from the error catalogue (run `npm run openapi`)', async () => {
    expect(await readFile(path.join(root, ERRORS_DOC_FILE), 'utf8')).toBe(generateErrorsDocument());
  });

  it('lists every code with its status, meaning and what to do', () => {
    const page = generateErrorsDocument();
    for (const code of ERROR_CODES) {
      const row = page.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, code).toBeDefined();
      const cells = (row ?? '').split(' | ');
      expect(cells.length, code).toBe(4);
      expect(cells.every((cell) => cell.trim().length > 1), code).toBe(true);
    }
  });
});
