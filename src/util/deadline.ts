/**
 * Bounds an upstream step in time. On expiry `onTimeout` runs (it destroys the connection, so the
 * step cannot complete later and write into a session someone else now holds) and the promise
 * rejects with `UPSTREAM_TIMEOUT`.
 */
import { GatewayError } from '../errors.js';

export async function withDeadline<T>(
  work: Promise<T>,
  timeoutMs: number,
  onTimeout: () => void,
  what = 'The mail server did not answer in time',
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new GatewayError('UPSTREAM_TIMEOUT', what));
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
    // The losing promise may still reject once the connection is destroyed; nobody awaits it.
    work.catch(() => undefined);
  }
}
