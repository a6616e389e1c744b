/** Writes openapi/openapi.json from the route schemas (`npm run openapi`). */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OPENAPI_FILE, generateOpenApiDocument } from '../src/http/openapi-document.js';

const document = await generateOpenApiDocument();
await mkdir(path.dirname(OPENAPI_FILE), { recursive: true });
await writeFile(OPENAPI_FILE, document);
process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
