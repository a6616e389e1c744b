/**
 * The OpenAPI document as the app generates it from its route schemas. `npm run openapi` writes it
 * to openapi/openapi.json; a test fails when the committed file differs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';

export const OPENAPI_FILE = path.join('openapi', 'openapi.json');

export async function generateOpenApiDocument(): Promise<string> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-openapi-'));
  try {
    const app = await buildApp(loadConfig({ DATA_DIR: dataDir }), { logger: pino({ level: 'silent' }) });
    await app.ready();
    const document = app.swagger();
    await app.close();
    return `${JSON.stringify(document, null, 2)}\n`;
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
