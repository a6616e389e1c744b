/**
 * What one POP3 session sees of the maildrop: every message's number, UIDL and size, from one UIDL and
 * one LIST (RFC 1939 §5, §7). Message numbers are valid in this session only; the UIDL is the identity
 * that lasts across sessions. A session's view never changes (RFC 1939 §8), so it is read once.
 */
import { GatewayError } from '../../errors.js';
import { encodePop3State } from '../cursor.js';
import type { Pop3Client } from './client.js';
import { Pop3ReplyError } from './errors.js';

export interface SnapshotEntry {
  /** Message number in this session (1-based, arrival order). */
  number: number;
  uidl: string;
  /** Exact size in octets, as LIST reports it (RFC 1939 §5: the size RETR sends, before stuffing). */
  size: number;
}

export interface Snapshot {
  /** Ascending by message number (oldest first). */
  entries: SnapshotEntry[];
  byUidl: Map<string, SnapshotEntry>;
  /** The maildrop's state token (a digest of the UIDL list): equal means unchanged. */
  state: string;
}

export async function readSnapshot(client: Pop3Client): Promise<Snapshot> {
  let uidls;
  try {
    uidls = await client.uidl();
  } catch (err) {
    if (err instanceof Pop3ReplyError) {
      throw new GatewayError(
        'UPSTREAM_ERROR',
        'The POP3 server does not support UIDL (RFC 1939 §7), which the gateway needs for stable message ids',
        { cause: err },
      );
    }
    throw err;
  }
  const sizes = new Map((await client.list()).map((e) => [e.number, e.size]));
  const entries: SnapshotEntry[] = [];
  for (const { number, uidl } of uidls) {
    const size = sizes.get(number);
    // A message in one listing and not the other was not there for this session: leave it out.
    if (size !== undefined) entries.push({ number, uidl, size });
  }
  entries.sort((a, b) => a.number - b.number);
  const byUidl = new Map<string, SnapshotEntry>();
  for (const entry of entries) if (!byUidl.has(entry.uidl)) byUidl.set(entry.uidl, entry);
  return { entries, byUidl, state: encodePop3State(entries.map((e) => e.uidl)) };
}
