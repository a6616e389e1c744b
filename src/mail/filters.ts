/**
 * Listing filters (API.md, Messages: `from`, `to`, `subject`, `text`, `since`, `before`, `seen`,
 * `flagged`, `answered`, `larger`, `smaller`), combined with AND. Protocol-neutral: the IMAP
 * backend turns them into a SEARCH; POP3 has no search and refuses them.
 */
export interface MessageFilters {
  from?: string;
  to?: string;
  subject?: string;
  /** Headers and body (IMAP SEARCH TEXT). */
  text?: string;
  /** Received on or after this day (YYYY-MM-DD, server's INTERNALDATE). */
  since?: string;
  /** Received before this day. */
  before?: string;
  seen?: boolean;
  flagged?: boolean;
  answered?: boolean;
  /** Larger than this many bytes. */
  larger?: number;
  /** Smaller than this many bytes. */
  smaller?: number;
}

const FILTER_NAMES = [
  'from',
  'to',
  'subject',
  'text',
  'since',
  'before',
  'seen',
  'flagged',
  'answered',
  'larger',
  'smaller',
] as const satisfies ReadonlyArray<keyof MessageFilters>;

/** The filters actually set, or undefined when none is. */
export function pickFilters(query: Record<string, unknown>): MessageFilters | undefined {
  const filters: Record<string, unknown> = {};
  for (const name of FILTER_NAMES) {
    if (query[name] !== undefined) filters[name] = query[name];
  }
  return Object.keys(filters).length > 0 ? (filters as MessageFilters) : undefined;
}
