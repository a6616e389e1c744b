/** Writes openapi/openapi.json from the route schemas and docs/errors.md from the error catalogue (`npm run openapi`). */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ERRORS_DOC_FILE, OPENAPI_FILE, generateErrorsDocument, generateOpenApiDocument } from '../src/http/openapi-document.js';

for (const [file, content] of [
  [OPENAPI_FILE, await generateOpenApiDocument()],
  [ERRORS_DOC_FILE, generateErrorsDocument()],
] as const) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  process.stdout.write(`wrote ${file}\n`);
}
