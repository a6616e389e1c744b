/**
 * Command-line flags of `npm run bench -- [flags]` and the durations they imply.
 *
 *   --quick        every row briefly (CI checks that it runs to the end); the large mailbox shrinks
 *   --profile      start the gateway processes with `node --cpu-prof`; profiles land in bench/results/
 *   --only=b,c     run only these rows, with the rows measured together with them (the table still
 *                  lists all, the others as "not run")
 *   --ab-rounds=N  rounds of row (cr)'s A/B (default 10, 3 s a side each)
 *   --gateway-env=NAME=VALUE   extra environment for the gateway processes (repeatable), to try a
 *                  setting: --gateway-env=IMAP_MAX_SESSIONS_PER_ACCOUNT=8
 */
import type { Schedule } from './load.js';

export const ROW_IDS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'cr', 'j', 'k', 'l', 'm', 'n', 'o', 'p'] as const;
export type RowId = (typeof ROW_IDS)[number];

export interface BenchOptions {
  quick: boolean;
  profile: boolean;
  rows: Set<RowId>;
  gatewayEnv: Record<string, string>;
  /** How each figure and its baseline are measured: interleaved rounds (see load.ts). */
  schedule: Schedule;
  /**
   * Row (cr)'s A/B: more and shorter rounds than `schedule`, each round's pair of bursts a ratio of its
   * own, so that a cost of a few per cent shows through a machine whose load moves by tens of per cent.
   */
  abSchedule: Schedule;
  /** Messages of the "100,000-message" mailbox (smaller in quick mode, and the table says so). */
  largeMailboxMessages: number;
  /** Messages of row (o)'s Courier mailbox (18,000; fewer in quick mode, and the table says so). */
  courierMailboxMessages: number;
  smallMailboxMessages: number;
  /** Bytes of the large message of rows (g) and (h). */
  bigMessageBytes: number;
  /** Fewest downloads per side in row (g) (more while the measuring time lasts); the median counts. */
  downloadRuns: number;
  /** Fresh POP3 accounts in row (i), each listed twice. */
  pop3Samples: number;
  /** Row (n): 20 KB sends per side (gateway, nodemailer), interleaved, after `sendWarmup` unmeasured ones each. */
  sendSamples: number;
  sendWarmup: number;
}

export function parseOptions(argv: string[]): BenchOptions {
  const rowIds = ROW_IDS.join('|');
  const flag = new RegExp(`^--(quick|profile|only=(${rowIds})(,(${rowIds}))*|ab-rounds=[1-9][0-9]*|gateway-env=[A-Za-z_][A-Za-z0-9_]*=.*)$`);
  const unknown = argv.filter((arg) => !flag.test(arg));
  if (unknown.length > 0) {
    throw new Error(
      `unknown argument(s): ${unknown.join(' ')}\nusage: npm run bench -- [--quick] [--profile] [--only=a,b,...] [--ab-rounds=N] [--gateway-env=NAME=VALUE ...]`,
    );
  }
  const gatewayEnv = Object.fromEntries(
    argv
      .filter((arg) => arg.startsWith('--gateway-env='))
      .map((arg) => {
        const setting = arg.slice('--gateway-env='.length);
        return [setting.slice(0, setting.indexOf('=')), setting.slice(setting.indexOf('=') + 1)];
      }),
  );
  const quick = argv.includes('--quick');
  const abRounds = Number(argv.find((arg) => arg.startsWith('--ab-rounds='))?.slice('--ab-rounds='.length) ?? 10);
  const only = argv.find((arg) => arg.startsWith('--only='));
  const rows = new Set<RowId>(only ? (only.slice('--only='.length).split(',') as RowId[]) : ROW_IDS);
  return {
    quick,
    profile: argv.includes('--profile'),
    rows,
    gatewayEnv,
    // Measured seconds per figure, in rounds alternating with its baseline; warm-up per figure.
    schedule: quick ? { seconds: 2, rounds: 1, warmupSeconds: 1 } : { seconds: 15, rounds: 3, warmupSeconds: 3 },
    // 10 rounds (--ab-rounds) of 3 s per side, A B, B A, A B, ...
    abSchedule: quick ? { seconds: 2, rounds: 2, warmupSeconds: 1 } : { seconds: 3 * abRounds, rounds: abRounds, warmupSeconds: 3 },
    largeMailboxMessages: quick ? 20_000 : 100_000,
    courierMailboxMessages: quick ? 3_000 : 18_000,
    smallMailboxMessages: 2_000,
    bigMessageBytes: 25 * 1024 * 1024,
    downloadRuns: quick ? 1 : 5,
    pop3Samples: quick ? 2 : 5,
    sendSamples: quick ? 20 : 200,
    sendWarmup: quick ? 5 : 20,
  };
}
