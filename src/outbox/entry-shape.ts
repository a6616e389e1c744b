/**
 * Checks an outbox entry read back from storage, so that a damaged record is skipped and logged
 * rather than reaching the worker or a response. The description never holds field values.
 */
import { OUTBOX_STATUSES } from './types.js';

const RECIPIENT_STATUSES: readonly string[] = ['pending', 'sent', 'deferred', 'failed'];
const SENT_COPY_STATUSES: readonly string[] = ['pending', 'saved', 'failed', 'skipped'];

export function outboxEntryProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const r = value as Record<string, unknown>;
  for (const field of ['queueId', 'account', 'messageId', 'envelopeFrom', 'createdAt', 'updatedAt'] as const) {
    if (typeof r[field] !== 'string' || r[field] === '') return `field "${field}" is missing or not a string`;
  }
  if (typeof r.status !== 'string' || !(OUTBOX_STATUSES as readonly string[]).includes(r.status)) return 'field "status" is invalid';
  if (typeof r.attempts !== 'number' || !Number.isInteger(r.attempts) || r.attempts < 0) return 'field "attempts" is invalid';
  if (typeof r.size !== 'number' || r.size < 0) return 'field "size" is invalid';
  if (typeof r.sentCopy !== 'string' || !SENT_COPY_STATUSES.includes(r.sentCopy)) return 'field "sentCopy" is invalid';
  // A Lua script's cjson writes an empty array as {}; the entry always has recipients, so {} is damage.
  if (!Array.isArray(r.recipients) || r.recipients.length === 0) return 'field "recipients" is not a non-empty array';
  for (const recipient of r.recipients as unknown[]) {
    if (typeof recipient !== 'object' || recipient === null) return 'a recipient is not an object';
    const { address, status } = recipient as Record<string, unknown>;
    if (typeof address !== 'string' || typeof status !== 'string' || !RECIPIENT_STATUSES.includes(status)) return 'a recipient is invalid';
  }
  for (const field of ['nextAttemptAt', 'error', 'sentCopyError', 'sentAt'] as const) {
    if (r[field] !== null && typeof r[field] !== 'string') return `field "${field}" is neither a string nor null`;
  }
  if (r.permanent !== null && typeof r.permanent !== 'boolean') return 'field "permanent" is neither a boolean nor null';
  if (r.markOriginal !== null && (typeof r.markOriginal !== 'object' || Array.isArray(r.markOriginal))) return 'field "markOriginal" is invalid';
  return null;
}
