/**
 * Where a body part is and what it is, from the message's BODYSTRUCTURE (RFC 9051 §7.5.2): the
 * section to fetch it by, its transfer encoding, its size in that encoding, and its charset.
 */
import type { MessageStructureObject } from 'imapflow';

export interface BodyPart {
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
  return {
    section,
    encoding: node.encoding,
    sizeBytes: node.size ?? 0,
    charset: typeof charset === 'string' ? charset.trim().toLowerCase() : undefined,
  };
}
