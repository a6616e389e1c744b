/**
 * The committed OpenAPI document as tools see it: Redocly's linter (recommended rules; accepted
 * exceptions with their reasons in .redocly.lint-ignore.yaml) and a client generated with
 * openapi-typescript, type-checked with openapi-fetch the way a caller would use it.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import openapiTS, { astToString } from 'openapi-typescript';
import { describe, expect, it } from 'vitest';
import { OPENAPI_FILE } from '../../src/http/openapi-document.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const bin = (name: string): string => path.join(root, 'node_modules', '.bin', name);
// No telemetry or update check: the linter must not try to reach anything.
const quietEnv = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };

describe('OpenAPI document for tools', () => {
  it('passes `redocly lint` with no error and no warning beyond the justified ones', async () => {
    const { stdout } = await run(bin('redocly'), ['lint', OPENAPI_FILE, '--format=json'], { cwd: root, env: quietEnv }).catch(
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
    );
    const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string }[] };
    expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 60_000);

  it('generates a typed client whose plain listing call needs no extra arguments', async () => {
    // Inside the project (.tmp/ is ignored by git) so that the client resolves the installed packages.
    await mkdir(path.join(root, '.tmp'), { recursive: true });
    const dir = await mkdtemp(path.join(root, '.tmp', 'client-'));
    try {
      const ast = await openapiTS(new URL(`file://${path.join(root, OPENAPI_FILE)}`));
      await writeFile(path.join(dir, 'api.d.ts'), astToString(ast));
      await writeFile(
        path.join(dir, 'client.ts'),
        [
          "import createClient from 'openapi-fetch';",
          "import type { paths } from './api.js';",
          "const client = createClient<paths>({ baseUrl: 'http://127.0.0.1:3000' });",
          'export async function newest() {',
          "  const { data } = await client.GET('/v1/accounts/{account}/mailboxes/{mailbox}/messages', {",
          "    params: { path: { account: 'alice', mailbox: 'INBOX' } },",
          '  });',
          '  const subjects: (string | null)[] | undefined = data?.messages.map((m) => m.subject);',
          "  const { error } = await client.GET('/v1/accounts/{account}/mailboxes/{mailbox}/messages/{id}', {",
          "    params: { path: { account: 'alice', mailbox: 'INBOX', id: 'AV9B3wAAAAAB' } },",
          '  });',
          "  const code: 'MESSAGE_NOT_FOUND' | string | undefined = error?.code;",
          "  await client.GET('/v1/accounts/{account}/mailboxes', { params: { path: { account: 'alice' } } });",
          '  return { subjects, code };',
          '}',
          '',
        ].join('\n'),
      );
      // A second file that must NOT compile proves the check has teeth: a required path parameter left out.
      await writeFile(
        path.join(dir, 'wrong.ts'),
        [
          "import createClient from 'openapi-fetch';",
          "import type { paths } from './api.js';",
          "const client = createClient<paths>({ baseUrl: 'http://127.0.0.1:3000' });",
          "export const call = client.GET('/v1/accounts/{account}/mailboxes/{mailbox}/messages', { params: { path: { account: 'alice' } } });",
          '',
        ].join('\n'),
      );
      const tsc = (file: string) =>
        run(
          bin('tsc'),
          ['--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', file],
          { cwd: root },
        ).then(
          () => '',
          (err: { stdout?: string }) => err.stdout ?? 'failed',
        );
      expect(await tsc(path.join(dir, 'client.ts'))).toBe('');
      expect(await tsc(path.join(dir, 'wrong.ts'))).toMatch(/mailbox/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
