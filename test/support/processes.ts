/** Helpers for child processes that tests and the bench start (Dovecot, redis-server, gateways). */
import type { ChildProcess } from 'node:child_process';

/** Resolves true once `child` has exited (at once if it already has), false after `timeoutMs` if it has not. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
