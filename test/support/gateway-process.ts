/**
 * A gateway as a child process (`node --import tsx src/server.ts`), for what an in-process app
 * cannot show: a process that is SIGKILLed (no shutdown hook runs, its sockets are cut by the
 * kernel, its Redis leases are left to expire) and one started again on the same DATA_DIR.
 *
 * The child listens on 127.0.0.1 without API keys (so it answers every route as an admin, loopback
 * only); what it logs is kept (the last lines), so a failing test can show it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from './ports.js';
import { waitForExit } from './processes.js';

const root = path.resolve(import.meta.dirname, '../..');
const READY_TIMEOUT_MS = 30_000;
const KEPT_LOG_CHARS = 20_000;

export interface GatewayProcess {
  /** `http://127.0.0.1:<port>` */
  base: string;
  child: ChildProcess;
  /** The last lines the child wrote (stdout and stderr). */
  output(): string;
  /** SIGKILL, and wait until it has exited. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful shutdown), SIGKILL if it is still there after 10 s. Idempotent. */
  stop(): Promise<void>;
}

// Safety net: a test worker that exits early takes its gateways along.
const live = new Set<ChildProcess>();
let hooked = false;

/** Starts a gateway process with `env` (DATA_DIR and SECRET_KEY are the caller's to give) and waits for /health. */
export async function startGatewayProcess(env: Record<string, string>): Promise<GatewayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: {
      ...process.env,
      EGRESS_ALLOW: '127.0.0.1/32',
      UPSTREAM_TIMEOUT_MS: '10000',
      RATE_LIMIT_PER_MINUTE: '0',
      RATE_LIMIT_ACCOUNT_CREATION_PER_MINUTE: '0',
      LOG_LEVEL: 'warn',
      ...env,
      API_KEYS: '',
      PORT: String(port),
      HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let log = '';
  const keep = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-KEPT_LOG_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`gateway process exited before it was ready:\n${log}`);
    const status = await fetch(`${base}/health`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway process not ready within ${READY_TIMEOUT_MS} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let stopping: Promise<void> | undefined;
  return {
    base,
    child,
    output: () => log,
    kill: async () => {
      child.kill('SIGKILL');
      await waitForExit(child, 10_000);
    },
    stop: () =>
      (stopping ??= (async () => {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, 10_000))) {
          child.kill('SIGKILL');
          await waitForExit(child, 5_000);
        }
      })()),
  };
}

/** Sums a Prometheus metric's samples (every label set) in a text exposition. */
export function metricSum(exposition: string, name: string): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match && match[1] === name) sum += Number(match[3]);
  }
  return sum;
}
