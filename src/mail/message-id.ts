/**
 * Opaque, URL-safe message ids (API.md: `[A-Za-z0-9_-]{1,128}`).
 *
 * IMAP ids bind the mailbox's UIDVALIDITY and the message UID (RFC 9051 §2.3.1.1): a UID is only
 * meaningful together with the UIDVALIDITY it was issued under, so an id minted before a UIDVALIDITY
 * change decodes to a UIDVALIDITY the mailbox no longer has and is answered `MESSAGE_NOT_FOUND`,
 * never another message. POP3 ids carry the UIDL (RFC 1939 §7), the only identity that survives
 * across POP3 sessions.
 *
 * Layout: one version byte, then the payload, base64url without padding.
 */
import type { GatewayError } from '../errors.js';
import { messageNotFound } from './mail-errors.js';

const IMAP_TAG = 0x01;
const POP3_TAG = 0x02;

export interface ImapMessageRef {
  kind: 'imap';
  uidValidity: bigint;
  uid: number;
}

export interface Pop3MessageRef {
  kind: 'pop3';
  uidl: string;
}

export type MessageRef = ImapMessageRef | Pop3MessageRef;

const MAX_U32 = 0xffffffff;

export function encodeImapMessageId(uidValidity: bigint, uid: number): string {
  const buf = Buffer.alloc(9);
  buf[0] = IMAP_TAG;
  buf.writeUInt32BE(Number(uidValidity), 1);
  buf.writeUInt32BE(uid, 5);
  return buf.toString('base64url');
}

export function encodePop3MessageId(uidl: string): string {
  return Buffer.concat([Buffer.of(POP3_TAG), Buffer.from(uidl, 'latin1')]).toString('base64url');
}

/** Decodes an id, or throws `MESSAGE_NOT_FOUND` for anything this gateway could not have issued. */
export function decodeMessageId(id: string): MessageRef {
  const notFound = (): GatewayError => messageNotFound(`No message with id ${id}`);
  if (!/^[A-Za-z0-9_-]{2,128}$/.test(id)) throw notFound();
  const buf = Buffer.from(id, 'base64url');
  // Round-trip check: reject non-canonical spellings so one message has exactly one id.
  if (buf.toString('base64url') !== id) throw notFound();
  if (buf[0] === IMAP_TAG && buf.length === 9) {
    const uidValidity = BigInt(buf.readUInt32BE(1));
    const uid = buf.readUInt32BE(5);
    if (uid === 0 || uid > MAX_U32) throw notFound();
    return { kind: 'imap', uidValidity, uid };
  }
  if (buf[0] === POP3_TAG && buf.length >= 2 && buf.length <= 71) {
    // RFC 1939 §7: a UIDL is 1 to 70 characters in the range 0x21 to 0x7E.
    const uidl = buf.subarray(1).toString('latin1');
    if (!/^[\x21-\x7e]+$/.test(uidl)) throw notFound();
    return { kind: 'pop3', uidl };
  }
  throw notFound();
}

export function decodeImapMessageId(id: string): ImapMessageRef {
  const ref = decodeMessageId(id);
  if (ref.kind !== 'imap') throw messageNotFound(`No message with id ${id}`);
  return ref;
}
