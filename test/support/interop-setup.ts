/**
 * globalSetup of the vitest `interop` project: a Dovecot, a Cyrus and a Courier of the run's own, handed
 * to the workers as coordinates (mail-servers.ts) and stopped when the run ends.
 *
 * Cyrus and Courier run from unpacked Debian packages and Courier in a mount namespace: both need root.
 * Without root the suite runs against Dovecot alone and says so.
 */
import type { TestProject } from 'vitest/node';
import { startCourier, type CourierServer } from './courier.js';
import { startCyrus, type CyrusServer } from './cyrus.js';
import { coordinatesOf, startDovecot, type DovecotServer } from './dovecot.js';
import type { MailServer } from './mail-servers.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) process.stderr.write('interop suite: not root, so Cyrus and Courier are not started; running against Dovecot only\n');
  const starts = await Promise.allSettled<DovecotServer | CyrusServer | CourierServer>([
    startDovecot(),
    ...(isRoot ? [startCyrus(), startCourier()] : []),
  ]);
  const started = starts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.allSettled(started.map((s) => s.stop()));
    throw failed.reason;
  }
  const servers: MailServer[] = started.map((server) => {
    if ('kind' in server && server.kind === 'cyrus') {
      const { stop: _stop, ...coordinates } = server;
      return coordinates;
    }
    if ('kind' in server && server.kind === 'courier') {
      const { stop: _stop, ...coordinates } = server;
      return coordinates;
    }
    return { kind: 'dovecot', ...coordinatesOf(server as DovecotServer) };
  });
  project.provide('mailServers', servers);
  return async () => {
    await Promise.allSettled(started.map((s) => s.stop()));
  };
}
