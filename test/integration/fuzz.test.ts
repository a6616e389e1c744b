/**
 * The short form of `npm run fuzz` (test/fuzz/): every operation of the OpenAPI document with
 * malformed and random input, against a real gateway, IMAP and POP3 account on the run's Dovecot.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzFixtures } from '../fuzz/harness.js';
import { runFuzz, type Fixtures } from '../fuzz/fuzzer.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { testServers } from '../support/servers.js';

const { dovecot } = testServers();
const root = path.resolve(import.meta.dirname, '../..');
const seed = Number(process.env.FUZZ_SEED ?? 20261202);

describe('fuzzing every route (short form)', () => {
  let gw: TestGateway;
  let fixtures: Fixtures;
  beforeAll(async () => {
    gw = await startGateway();
    fixtures = await fuzzFixtures(gw.app, dovecot, await dovecot.createUser('fuzz'));
  });
  afterAll(async () => gw?.close());

  it('answers every malformed request with a problem document, no 5xx but genuine upstream ones, and no hang', async () => {
    const report = await runFuzz({ app: gw.app, fixtures, seed, casesPerOperation: 60, timeBudgetMs: 90_000 }, root);
    // Every operation was reached, and a good share of the cases was refused as a client error.
    expect(report.requests).toBeGreaterThan(report.operations * 20);
    expect(report.findings.slice(0, 10).map((f) => `${f.problem}: ${f.request.method} ${f.request.url.slice(0, 120)}`), `seed ${seed}`).toEqual([]);
    expect(report.rssGrowthMb).toBeLessThan(256);
  }, 150_000);
});
