/**
 * globalSetup of the vitest `integration` project: one Dovecot and one Redis for the whole run,
 * handed to the workers with provide/inject (see servers.ts), stopped when the run ends. The Dovecot
 * also serves LMTP and an auth socket, so a test file can start its own MTA into it (mta.ts).
 */
import type { TestProject } from 'vitest/node';
import { coordinatesOf, startDovecot } from './dovecot.js';
import { startRedis } from './redis.js';
import type { ProvidedDovecot } from './servers.js';

const USERS = ['alice', 'bob', 'carol', 'spare1', 'spare2', 'spare3', 'spare4'].map((name) => ({
  username: name,
  password: `${name}-pw`,
}));

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [dovecotStart, redisStart] = await Promise.allSettled([startDovecot({ users: USERS, mta: true }), startRedis()]);
  if (dovecotStart.status === 'rejected' || redisStart.status === 'rejected') {
    await Promise.allSettled([
      dovecotStart.status === 'fulfilled' && dovecotStart.value.stop(),
      redisStart.status === 'fulfilled' && redisStart.value.stop(),
    ]);
    throw dovecotStart.status === 'rejected' ? dovecotStart.reason : (redisStart as PromiseRejectedResult).reason;
  }
  const dovecot = dovecotStart.value;
  const redis = redisStart.value;
  const provided: ProvidedDovecot = { ...coordinatesOf(dovecot), users: USERS };
  project.provide('dovecot', provided);
  project.provide('redisUrl', redis.url);
  return async () => {
    await Promise.allSettled([dovecot.stop(), redis.stop()]);
  };
}
