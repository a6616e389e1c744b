/**
 * Message summaries for POP3 listings: the header fields come from `TOP n 0` (RFC 1939 §7: the header,
 * the blank line, no body lines), parsed with the shared MIME module, and are cached by UIDL: a
 * message's header never changes, so a second listing needs no TOP at all.
 *
 * POP3 knows no flags, no arrival date and no structure without the body, so `flags` is empty, `seen`
 * and `flagged` are false, and `receivedAt`, `hasAttachments` and `preview` are null (the message view
 * fills in the last two from the parsed body).
 */
import { encodePop3MessageId } from '../message-id.js';
import { parseMessage } from '../mime/parse-message.js';
import type { MessageSummary } from '../types.js';
import type { SnapshotEntry } from './snapshot.js';

/** What is cached per UIDL (JSON): the summary fields the headers alone give. */
export type Pop3Headers = Pick<MessageSummary, 'messageId' | 'subject' | 'from' | 'to' | 'cc' | 'date'>;

/** Header fields from the bytes `TOP n 0` answered. */
export async function headersFromTop(top: Buffer): Promise<Pop3Headers> {
  const parsed = await parseMessage(top);
  return {
    messageId: parsed.messageId,
    subject: parsed.subject,
    from: parsed.from,
    to: parsed.to,
    cc: parsed.cc,
    date: parsed.date,
  };
}

/** A summary from the snapshot entry and its headers (null when the server would not give them). */
export function toSummary(entry: SnapshotEntry, headers: Pop3Headers | null): MessageSummary {
  return {
    id: encodePop3MessageId(entry.uidl),
    messageId: headers?.messageId ?? null,
    subject: headers?.subject ?? null,
    from: headers?.from ?? [],
    to: headers?.to ?? [],
    cc: headers?.cc ?? [],
    date: headers?.date ?? null,
    receivedAt: null,
    size: entry.size,
    flags: [],
    seen: false,
    flagged: false,
    hasAttachments: null,
    preview: null,
  };
}
