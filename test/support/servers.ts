/**
 * The real servers of the integration run, as seen from a test file. global-setup.ts starts one Dovecot
 * and one Redis for the whole run and provides their coordinates; `testServers()` injects them.
 *
 * Test files run in parallel against the same servers: each file makes its own users
 * (`dovecot.createUser()`) and its own Redis key prefix, and never changes the shared users' mail.
 */
import { inject } from 'vitest';
import { dovecotOps, type DovecotCoordinates, type DovecotOps, type DovecotUser } from './dovecot.js';

export type { DovecotCoordinates, DovecotOps, DovecotUser, SeedOptions } from './dovecot.js';
export { addUser, createUser, doveadm, maildirPath, seedMaildir } from './dovecot.js';

/** What global-setup.ts provides to the workers: plain data only (it crosses a process boundary). */
export interface ProvidedDovecot extends DovecotCoordinates {
  /** Users present from the start: alice, bob, carol (password `<name>-pw`) and spare1..spare4. */
  users: DovecotUser[];
}

declare module 'vitest' {
  export interface ProvidedContext {
    dovecot: ProvidedDovecot;
    redisUrl: string;
  }
}

export interface TestServers {
  /** Coordinates plus addUser/createUser/maildir/seedMaildir/doveadm bound to them. */
  dovecot: ProvidedDovecot & DovecotOps;
  redisUrl: string;
}

/** The run's Dovecot and Redis; only inside the `integration` project (whose globalSetup provides them). */
export function testServers(): TestServers {
  const dovecot = inject('dovecot');
  const redisUrl = inject('redisUrl');
  if (!dovecot || !redisUrl) throw new Error('testServers(): no servers provided; run this file in the vitest "integration" project');
  return { dovecot: { ...dovecot, ...dovecotOps(dovecot) }, redisUrl };
}
