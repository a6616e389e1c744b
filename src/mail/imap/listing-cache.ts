/**
 * Listing pages cached with the mailbox state they were built from (ARCHITECTURE.md, Cache).
 *
 * A page is served again only while a cheap check shows the same state: a NOOP on a session that
 * has the mailbox selected (imapflow then knows EXISTS, UIDNEXT and, with CONDSTORE, HIGHESTMODSEQ
 * from the server's untagged answers), or a STATUS (RFC 9051 §6.3.11, with HIGHESTMODSEQ from RFC
 * 7162 §3.1.2.3) when no such session is free — which also spares a SELECT of a large mailbox.
 * The cache is therefore correct across gateway replicas without any pub/sub.
 *
 * Without CONDSTORE a flag change does not change the mailbox's state: an unfiltered page is then
 * checked by its own UIDs and flags instead (`pageStateNow` in listing.ts, decision 0020), and a
 * filtered page is not cached.
 */
import { createHash } from 'node:crypto';
import type { ImapFlow, MailboxObject } from 'imapflow';
import type { Cache } from '../../cache/cache.js';
import { keys } from '../../cache/keys.js';
import type { MemoryCache } from '../../cache/memory-cache.js';
import { encodeImapState } from '../cursor.js';
import type { EncodedPage, ListQuery, MessagePage } from '../types.js';

export interface ListingCacheOptions {
  /** Where pages are shared: Redis across replicas, or the process's memory cache. */
  cache: Cache;
  ttlSeconds: number;
  /** The page's JSON exactly as the listing route sends it (its response schema). */
  encodePage: (page: MessagePage) => string;
  /**
   * Names the JSON layout `encodePage` writes (a digest of its schema). It is part of every key, so
   * a gateway version with another layout never sends, nor deletes, pages stored by another.
   */
  layout: string;
  /**
   * With a shared (Redis) cache: a copy of hot pages in this process's memory, in front of it. A
   * page is checked against the server's state on every use wherever it was read from, so the local
   * copy is exactly as correct as Redis's; it spares a Redis round trip per hit.
   */
  local?: MemoryCache;
}

/** How long the process-local copy of a page is kept at most (a page it last served, typically). */
const LOCAL_TTL_SECONDS = 60;

/**
 * An entry is the state, a newline, then the page's JSON: the state is read without parsing the
 * page, and the page is sent as stored.
 */
const SEPARATOR = 0x0a;

/** How many query shapes keep their digest (cursors make the rest one-offs). */
const SHAPE_DIGESTS_KEPT = 256;

export class ListingCache {
  private readonly shapeDigests = new Map<string, string>();
  /** Bumped when an account's pages are forgotten: a read or build under way then keeps no copy. */
  private readonly generations = new Map<string, number>();

  constructor(private readonly options: ListingCacheOptions) {}

  key(accountId: string, mailbox: string, query: ListQuery): string {
    const shape = JSON.stringify([query.limit, query.cursor ?? null, query.filters ?? null]);
    let digest = this.shapeDigests.get(shape);
    if (digest === undefined) {
      digest = createHash('sha256').update(shape).digest('base64url').slice(0, 22);
      // Most listings are a first page of a common size: a few shapes, hashed once each.
      if (this.shapeDigests.size >= SHAPE_DIGESTS_KEPT) this.shapeDigests.clear();
      this.shapeDigests.set(shape, digest);
    }
    return keys.imapListing(accountId, mailbox, `${this.options.layout}.${digest}`);
  }

  /** Taken before a page is read or built, handed back to get/set: see `forgetAccount`. */
  generation(accountId: string): number {
    return this.generations.get(accountId) ?? 0;
  }

  async get(accountId: string, key: string): Promise<EncodedPage | null> {
    const { local, cache } = this.options;
    const generation = this.generation(accountId);
    const near = local === undefined ? null : decodeEntry(await local.get(key));
    if (near !== null) return near;
    const entry = await cache.get(key);
    const page = decodeEntry(entry);
    if (page === null) {
      // A value we cannot read is dropped so it is rebuilt.
      if (entry !== null) await cache.delete([key]);
      return null;
    }
    if (local !== undefined && entry !== null && this.generation(accountId) === generation) {
      await local.set(key, entry, Math.min(LOCAL_TTL_SECONDS, this.options.ttlSeconds));
    }
    return page;
  }

  /**
   * Stores the page and answers it in the form it is stored (and sent) in. A page built while the
   * account's pages were being forgotten (`generation` is older) is answered but not stored.
   */
  async set(accountId: string, key: string, page: MessagePage, generation: number): Promise<EncodedPage> {
    const json = Buffer.from(this.options.encodePage(page), 'utf8');
    const entry = Buffer.concat([Buffer.from(page.state, 'latin1'), Buffer.of(SEPARATOR), json]);
    if (this.generation(accountId) === generation) {
      await this.options.cache.set(key, entry, this.options.ttlSeconds);
      await this.options.local?.set(key, entry, Math.min(LOCAL_TTL_SECONDS, this.options.ttlSeconds));
    }
    return { state: page.state, json: entry.subarray(entry.length - json.length) };
  }

  /** Forgets this process's copies of an account's pages (its record changed or it is gone). */
  async forgetAccount(accountId: string): Promise<void> {
    this.generations.set(accountId, this.generation(accountId) + 1);
    await this.options.local?.deletePrefix(keys.accountCachePrefix(accountId));
  }
}

function decodeEntry(entry: Buffer | null): EncodedPage | null {
  if (entry === null) return null;
  const at = entry.indexOf(SEPARATOR);
  // A state is short; a JSON page starts with '{'. Anything else is not an entry of this layout.
  if (at <= 0 || at > 256 || entry[at + 1] !== 0x7b) return null;
  return { state: entry.toString('latin1', 0, at), json: entry.subarray(at + 1) };
}

/** Whether this mailbox's own state tells every change, flags included (CONDSTORE is on for it). */
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
