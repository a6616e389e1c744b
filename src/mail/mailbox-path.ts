/**
 * The one spelling of a mailbox path the gateway works with, whatever the protocol.
 *
 * INBOX is case-insensitive (RFC 9051 §5.1; POP3's only mailbox is named after it), so `inbox`,
 * `Inbox` and `INBOX` name one mailbox and must share its sessions, cache keys and ids. Every other
 * name is case-sensitive on the server and is taken exactly as given.
 *
 * MailService applies this once to every mailbox path a request carries; routes and backends
 * receive paths already normalised and do not call it again.
 */
export function normalizeMailboxPath(path: string): string {
  return path.toUpperCase() === 'INBOX' ? 'INBOX' : path;
}
