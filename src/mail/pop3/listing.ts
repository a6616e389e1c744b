/**
 * One page of a POP3 listing over a session's snapshot, newest first: highest message number first,
 * which is arrival order (API.md). The cursor anchors on the UIDL of the previous page's last message
 * (see Pop3Cursor in ../cursor.ts for how a deleted anchor is handled).
 */
import { encodePop3Cursor, type Pop3Cursor } from '../cursor.js';
import type { Snapshot, SnapshotEntry } from './snapshot.js';

/** How many UIDLs below the anchor a cursor carries, in case the anchor itself is deleted. */
const FOLLOWING_IN_CURSOR = 3;

export interface PageSlice {
  /** Newest first. */
  entries: SnapshotEntry[];
  nextCursor: string | null;
}

export function pageOf(snapshot: Snapshot, cursor: Pop3Cursor | null, limit: number): PageSlice {
  const all = snapshot.entries;
  // Index (in `all`, oldest first) of the newest message the page may hold.
  let upper = all.length - 1;
  if (cursor !== null) upper = startBelow(snapshot, cursor);
  const lower = Math.max(0, upper - limit + 1);
  const entries = upper < 0 ? [] : all.slice(lower, upper + 1).reverse();
  const oldest = entries[entries.length - 1];
  let nextCursor: string | null = null;
  if (oldest !== undefined && lower > 0) {
    nextCursor = encodePop3Cursor({
      anchorUidl: oldest.uidl,
      anchorNumber: oldest.number,
      following: all
        .slice(Math.max(0, lower - FOLLOWING_IN_CURSOR), lower)
        .reverse()
        .map((e) => e.uidl),
    });
  }
  return { entries, nextCursor };
}

function startBelow(snapshot: Snapshot, cursor: Pop3Cursor): number {
  const indexOf = (uidl: string): number => {
    const entry = snapshot.byUidl.get(uidl);
    return entry === undefined ? -1 : snapshot.entries.indexOf(entry);
  };
  const anchor = indexOf(cursor.anchorUidl);
  if (anchor !== -1) return anchor - 1;
  for (const uidl of cursor.following) {
    const index = indexOf(uidl);
    if (index !== -1) return index;
  }
  // Everything the cursor names is gone: continue below the anchor's old number. Deletes only move
  // messages to lower numbers, so nothing older is skipped (a few may repeat).
  return Math.min(cursor.anchorNumber - 1, snapshot.entries.length) - 1;
}
