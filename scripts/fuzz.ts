/**
 * `npm run fuzz [-- --cases=300 --seconds=120 --seed=N]`: the HTTP fuzzer of test/fuzz/ over every
 * operation of the OpenAPI document, against a gateway with real IMAP and POP3 accounts on a Dovecot
 * this script starts (as the integration tests do). Bounded in requests and time; prints what it ran
 * and every finding, and exits 1 if there is one. The integration suite runs a short form of it.
 */
import path from 'node:path';
import { fuzzFixtures } from '../test/fuzz/harness.js';
import { runFuzz } from '../test/fuzz/fuzzer.js';
import { dovecotOps, startDovecot } from '../test/support/dovecot.js';
import { startGateway } from '../test/support/gateway.js';

const arg = (name: string, fallback: number): number => {
  const raw = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a whole number`);
  return value;
};

const seed = arg('seed', Math.floor(Math.random() * 2 ** 31));
const cases = arg('cases', 300);
const seconds = arg('seconds', 120);
const root = path.resolve(import.meta.dirname, '..');

const dovecot = await startDovecot({ users: [{ username: 'fuzz', password: 'fuzz-pw' }] });
const gw = await startGateway();
let failed = false;
try {
  const fixtures = await fuzzFixtures(gw.app, { ...dovecot, ...dovecotOps(dovecot) }, { username: 'fuzz', password: 'fuzz-pw' });
  const report = await runFuzz({ app: gw.app, fixtures, seed, casesPerOperation: cases, timeBudgetMs: seconds * 1000 }, root);
  const statuses = Object.entries(report.byStatus).map(([status, n]) => `${status}: ${n}`).join(', ');
  process.stdout.write(
    `fuzz: seed ${report.seed}, ${report.requests} requests over ${report.operations} operations in ${(report.elapsedMs / 1000).toFixed(1)} s; ` +
      `answers ${statuses}; RSS growth ${report.rssGrowthMb} MB; ${report.findings.length} finding(s)\n`,
  );
  for (const finding of report.findings) {
    process.stdout.write(`  ${finding.problem}: ${finding.request.method} ${finding.request.url}${finding.request.body ? ` body ${JSON.stringify(finding.request.body)}` : ''}\n`);
  }
  failed = report.findings.length > 0;
} finally {
  await gw.close();
  await dovecot.stop();
}
process.exit(failed ? 1 : 0);
