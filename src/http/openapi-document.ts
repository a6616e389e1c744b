/**
 * The OpenAPI document as the app generates it from its route schemas, and the error catalogue as a
 * page. `npm run openapi` writes both (openapi/openapi.json, docs/errors.md); a test fails when a
 * committed file differs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import { ERRORS, ERROR_CODES, type ErrorSpec } from '../errors.js';

export const OPENAPI_FILE = path.join('openapi', 'openapi.json');

export async function generateOpenApiDocument(): Promise<string> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-openapi-'));
  try {
    // The event stream routes are served only with an event log; the document describes them always.
    const app = await buildApp(loadConfig({ DATA_DIR: dataDir }), { logger: pino({ level: 'silent' }) });
    await app.ready();
    const document = app.swagger();
    await app.close();
    return `${JSON.stringify(document, null, 2)}\n`;
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

export const ERRORS_DOC_FILE = path.join('docs', 'errors.md');

/** docs/errors.md: the error catalogue of src/errors.ts as a table (`npm run openapi` writes it). */
export function generateErrorsDocument(): string {
  const escape = (text: string): string => text.replace(/\|/g, '\\|');
  const rows = ERROR_CODES.map((code) => {
    const spec: ErrorSpec = ERRORS[code];
    const status = code === 'CLIENT_ERROR' ? '4xx' : String(spec.status);
    return `| \`${code}\` | ${status} | ${escape(spec.meaning)} | ${escape(spec.action)} |`;
  });
  return [
    '# Errors',
    '',
    'Every error is an RFC 9457 problem document (`application/problem+json`):',
    '',
    '```json',
    '{ "type": "urn:mailgw:problem:message-not-found", "title": "Not Found", "status": 404,',
    '  "detail": "No such message in this mailbox", "code": "MESSAGE_NOT_FOUND", "requestId": "…" }',
    '```',
    '',
    '`code` is stable: branch on it, not on `detail` or `title`. `detail` says what went wrong and how to fix it,',
    'in words meant for a person. `requestId` is also the `X-Request-Id` response header and names the request in',
    'the gateway\'s log. A 5xx detail that the gateway did not write itself is masked; secrets never appear.',
    '`Retry-After` comes with `POOL_EXHAUSTED`, and with `SERVICE_UNAVAILABLE` while Redis is unreachable.',
    'Each operation in the OpenAPI document (`/docs`) lists the codes it can answer, with an example of each.',
    '',
    '| code | status | meaning | what to do |',
    '|---|---|---|---|',
    ...rows,
    '',
    'This page is generated from `src/errors.ts` by `npm run openapi`; a test fails when it is out of date.',
    '',
  ].join('\n');
}
