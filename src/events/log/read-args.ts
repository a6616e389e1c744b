/** The arguments of `EventLog.readAfter`, checked the same way by both backends. */
import { GatewayError } from '../../errors.js';
import { isValidEventId } from './event-id.js';

/**
 * A resume point the log could not have issued is the caller's mistake (API.md: 400
 * `VALIDATION_FAILED`; routes check `isValidId` first, this is the backstop); a limit that is not a
 * positive integer is a bug.
 */
export function checkRead(afterId: string, limit: number): void {
  if (!isValidEventId(afterId)) throw new GatewayError('VALIDATION_FAILED', `${JSON.stringify(afterId)} is not an event id`);
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`limit must be a positive integer (got ${limit})`);
}
