/**
 * Parsers for POP3 response lines. Pure functions over bytes, no I/O.
 *
 * Status indicators (RFC 1939 §3): `+OK` and `-ERR`; during AUTH (RFC 5034 §4) a continuation `+ `
 * with a base64 challenge. An `-ERR` may start with an extended response code in brackets (RFC 2449
 * §8: `[IN-USE]`, `[LOGIN-DELAY]`, RFC 3206: `[AUTH]`, `[SYS/TEMP]`, `[SYS/PERM]`).
 * Server text is read as latin1 so no byte is lost or replaced; it is only ever shown, never trusted.
 */

export type ReplyKind = 'ok' | 'err' | 'continue';

export interface Pop3Reply {
  kind: ReplyKind;
  /** Extended response code without brackets, upper-cased (`IN-USE`, `SYS/TEMP`), or null. */
  code: string | null;
  /** The text after the status indicator (and after the response code), trimmed. */
  text: string;
}

/** Parses one status line; null when it is not a POP3 status line at all. */
export function parseReply(line: Buffer): Pop3Reply | null {
  const text = line.toString('latin1');
  let kind: ReplyKind;
  let rest: string;
  if (/^\+OK(?:\s|$)/i.test(text)) {
    kind = 'ok';
    rest = text.slice(3);
  } else if (/^-ERR(?:\s|$)/i.test(text)) {
    kind = 'err';
    rest = text.slice(4);
  } else if (/^\+(?:\s|$)/.test(text)) {
    kind = 'continue';
    rest = text.slice(1);
  } else {
    return null;
  }
  rest = rest.trim();
  if (kind === 'continue') return { kind, code: null, text: rest };
  const coded = /^\[([^\]\s]+)\]\s*(.*)$/.exec(rest);
  if (coded) return { kind, code: (coded[1] ?? '').toUpperCase(), text: (coded[2] ?? '').trim() };
  return { kind, code: null, text: rest };
}

/** Server text made safe to put into an error detail or log line: printable ASCII, bounded. */
export function printable(text: string, maxLength = 200): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > maxLength ? `${clean.slice(0, maxLength)}...` : clean;
}

/** CAPA (RFC 2449 §5): one capability per line, a tag and its arguments. Tags are upper-cased. */
export function parseCapabilities(body: Buffer): Map<string, string[]> {
  const caps = new Map<string, string[]>();
  for (const line of lines(body)) {
    const [tag, ...args] = line.split(/\s+/).filter(Boolean);
    if (tag !== undefined) caps.set(tag.toUpperCase(), args);
  }
  return caps;
}

export interface ScanListing {
  /** Message number within this session (RFC 1939 §5: 1-based). */
  number: number;
  /** The size LIST reports, or the unique-id UIDL reports. */
  value: string;
}

/** LIST / UIDL multi-line bodies: `msg-number SP value` per line (RFC 1939 §5, §7). */
export function parseScanListing(body: Buffer, what: 'LIST' | 'UIDL'): ScanListing[] {
  const out: ScanListing[] = [];
  for (const line of lines(body)) {
    const m = /^(\d+)\s+(\S+)/.exec(line);
    if (!m) throw new SyntaxError(`malformed ${what} line`);
    out.push({ number: Number(m[1]), value: m[2] ?? '' });
  }
  return out;
}

/** `+OK nn mm` of STAT (RFC 1939 §5): message count and maildrop size in octets. */
export function parseStat(reply: Pop3Reply): { count: number; size: number } {
  const m = /^(\d+)\s+(\d+)/.exec(reply.text);
  if (!m) throw new SyntaxError('malformed STAT answer');
  return { count: Number(m[1]), size: Number(m[2]) };
}

function lines(body: Buffer): string[] {
  return body
    .toString('latin1')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
