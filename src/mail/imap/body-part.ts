/**
 * Where a body part is and what it is, from the message's BODYSTRUCTURE (RFC 9051 §7.5.2): the
 * section to fetch it by, its transfer encoding, its size in that encoding, and its charset.
 */
import type { MessageStructureObject } from 'imapflow';

export interface BodyPart {
  /** The part's type/subtype as the server's BODYSTRUCTURE gives it, lower case. */
  type: string;
  /** Its file name (Content-Disposition `filename`, else Content-Type `name`), as imapflow decodes it; null when none. */
  filename: string | null;
  /** The section of `BODY.PEEK[<section>]<offset.length>` that is the part's body (lower case, as imapflow keys it). */
  section: string;
  /** Content-Transfer-Encoding as BODYSTRUCTURE names it (absent: 7bit). */
  encoding: string | undefined;
  /** The body's size in octets, in its transfer encoding. */
  sizeBytes: number;
  /** The Content-Type charset parameter, lower-cased (still unchecked: it is the sender's). */
  charset: string | undefined;
}

/**
 * The part numbered `partId` (the MIME parser's numbering, which is IMAP's: "1", "2.1", ...), or null.
 *
 * A message that is not multipart has only part 1, its body (RFC 9051 §6.4.5); it is fetched as
 * TEXT, which is that body whatever its type, as imapflow's download() does. imapflow numbers an
 * encapsulated message (message/rfc822) and its body alike, the wrapper first: the first match is
 * the wrapper, whose section is the whole encapsulated message, as the MIME parser sees it.
 */
export function findBodyPart(structure: MessageStructureObject | undefined, partId: string): BodyPart | null {
  if (structure === undefined) return null;
  if (partId === '1' && !structure.type.startsWith('multipart/')) return describe(structure, 'text');
  const node = find(structure, partId);
  return node === null ? null : describe(node, partId.toLowerCase());
}

function find(node: MessageStructureObject, partId: string): MessageStructureObject | null {
  if (node.part === partId) return node;
  for (const child of node.childNodes ?? []) {
    const found = find(child, partId);
    if (found !== null) return found;
  }
  return null;
}

function describe(node: MessageStructureObject, section: string): BodyPart {
  const charset = node.parameters?.charset;
  const filename = node.dispositionParameters?.filename ?? node.parameters?.name;
  return {
    type: node.type.trim().toLowerCase(),
    filename: typeof filename === 'string' && filename.trim() !== '' ? filename.trim() : null,
    section,
    encoding: node.encoding,
    sizeBytes: node.size ?? 0,
    charset: typeof charset === 'string' ? charset.trim().toLowerCase() : undefined,
  };
}

/** What the message view says of an attachment (src/mail/mime/parse-message.ts). */
export interface ParsedPart {
  contentType: string;
  filename: string | null;
  /** Decoded size, from the gateway's own parse. */
  size: number;
}

/**
 * Whether the server's part at the attachment's number is the part the gateway's parse found there
 * (decision 0018). The two numberings agree on well-formed MIME and may not on broken MIME (a doubled
 * boundary, a part without headers), where serving the server's part would answer another part's
 * bytes under this attachment's name. So the server's part is used only when its type, file name and
 * size in its transfer encoding fit the parse's; `trimTo` when it is the parse's bytes followed by the
 * line break RFC 2046 §5.1.1 gives to the boundary (Dovecot keeps it in some encapsulated messages);
 * `parse` when the bytes must come from the gateway's own parse of the message.
 */
export function servesAsParsed(part: BodyPart, parsed: ParsedPart): 'part' | { trimTo: number } | 'parse' {
  // The parse refines application/octet-stream from the file name (mime/attachment-info.ts).
  if (part.type !== parsed.contentType && part.type !== 'application/octet-stream') return 'parse';
  if (parsed.filename !== null && part.filename !== parsed.filename) return 'parse';
  const encoded = part.sizeBytes;
  const decoded = parsed.size;
  const encoding = (part.encoding ?? '7bit').toLowerCase();
  if (encoding === '7bit' || encoding === '8bit' || encoding === 'binary') {
    if (encoded === decoded) return 'part';
    return encoded === decoded + 1 || encoded === decoded + 2 ? { trimTo: decoded } : 'parse';
  }
  if (encoding === 'base64') {
    // 4 characters per 3 bytes, plus line breaks (CRLF after lines of at least 40 characters) and slack
    // for a stray line break or padding at the end.
    const least = Math.ceil(decoded / 3) * 4;
    return encoded >= least - 4 && encoded <= least + 2 * Math.ceil(least / 40) + 8 ? 'part' : 'parse';
  }
  if (encoding === 'quoted-printable') {
    // Each byte takes one to three characters, plus soft line breaks (=CRLF) every 76 at most.
    return encoded >= decoded - 4 && encoded <= 3 * decoded + 3 * Math.ceil(encoded / 74) + 8 ? 'part' : 'parse';
  }
  // An encoding the gateway does not undo goes out as the server has it (and says so).
  return 'part';
}
