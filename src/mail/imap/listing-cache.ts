/**
 * Listing pages cached with the mailbox state they were built from (ARCHITECTURE.md, Cache).
 *
 * A page is served again only while a cheap check shows the same state: a NOOP on a session that
 * has the mailbox selected (imapflow then knows EXISTS, UIDNEXT and, with CONDSTORE, HIGHESTMODSEQ
 * from the server's untagged answers), or a STATUS (RFC 9051 §6.3.11, with HIGHESTMODSEQ from RFC
 * 7162 §3.1.2.3) when no such session is free — which also spares a SELECT of a large mailbox.
 * The cache is therefore correct across gateway replicas without any pub/sub.
 *
 * Without CONDSTORE a flag change does not change the state, so pages are not cached at all (the
 * documented fallback): every listing is fetched.
 */
import { createHash } from 'node:crypto';
import type { ImapFlow, MailboxObject } from 'imapflow';
import { getJson, setJson, type Cache } from '../../cache/cache.js';
import { keys } from '../../cache/keys.js';
import { encodeImapState } from '../cursor.js';
import type { ListQuery, MessagePage } from '../types.js';

interface CachedPage {
  state: string;
  page: MessagePage;
}

export class ListingCache {
  constructor(
    private readonly cache: Cache,
    private readonly ttlSeconds: number,
  ) {}

  key(accountId: string, mailbox: string, query: ListQuery): string {
    const shape = JSON.stringify([query.limit, query.cursor ?? null, query.filters ?? null]);
    return keys.imapListing(accountId, mailbox, createHash('sha256').update(shape).digest('base64url').slice(0, 22));
  }

  async get(key: string): Promise<CachedPage | null> {
    return getJson<CachedPage>(this.cache, key);
  }

  async set(key: string, page: MessagePage): Promise<void> {
    await setJson(this.cache, key, { state: page.state, page } satisfies CachedPage, this.ttlSeconds);
  }
}

/** Whether the state of this mailbox can be validated cheaply (CONDSTORE is on). */
export function cacheable(mailbox: MailboxObject): boolean {
  return mailbox.highestModseq !== undefined && !mailbox.noModseq;
}

/** The state of a mailbox that is not selected, from STATUS; null when the server cannot tell it all. */
export async function statusState(client: ImapFlow, path: string): Promise<string | null> {
  if (!client.capabilities.has('CONDSTORE') && !client.capabilities.has('QRESYNC')) return null;
  const status = await client.status(path, { uidValidity: true, uidNext: true, messages: true, highestModseq: true });
  if (!status || status.uidValidity === undefined || status.uidNext === undefined || status.messages === undefined) return null;
  if (status.highestModseq === undefined) return null;
  return encodeImapState({
    uidValidity: String(status.uidValidity),
    uidNext: status.uidNext,
    exists: status.messages,
    highestModseq: String(status.highestModseq),
  });
}
