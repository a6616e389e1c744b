import { describe, expect, it } from 'vitest';
import { thrown } from '../support/assertions.js';
import {
  decodeImapMessageId,
  decodeMessageId,
  encodeImapMessageId,
  encodePop3MessageId,
} from '../../src/mail/message-id.js';

/** What API.md promises of every id: URL-safe, 1 to 128 characters. */
const API_ID = /^[A-Za-z0-9_-]{1,128}$/;

describe('message ids', () => {
  it('IMAP ids round-trip UIDVALIDITY and UID, across the whole 32-bit range (RFC 9051 §2.3.1.1)', () => {
    for (const [uidValidity, uid] of [
      [1n, 1],
      [3857529045n, 4242],
      [4294967295n, 4294967295],
    ] as const) {
      const id = encodeImapMessageId(uidValidity, uid);
      expect(id).toMatch(API_ID);
      expect(decodeMessageId(id)).toEqual({ kind: 'imap', uidValidity, uid });
      expect(decodeImapMessageId(id)).toEqual({ kind: 'imap', uidValidity, uid });
    }
  });

  it('one message has one id, and another UIDVALIDITY gives another id', () => {
    expect(encodeImapMessageId(7n, 9)).toBe(encodeImapMessageId(7n, 9));
    expect(encodeImapMessageId(8n, 9)).not.toBe(encodeImapMessageId(7n, 9));
    expect(encodeImapMessageId(7n, 10)).not.toBe(encodeImapMessageId(7n, 9));
  });

  it('POP3 ids round-trip any UIDL RFC 1939 §7 allows (1 to 70 of 0x21-0x7E)', () => {
    const printable = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
    for (const uidl of ['1', 'UID-000042', printable.slice(0, 70), printable.slice(24, 94), 'x'.repeat(70)]) {
      const id = encodePop3MessageId(uidl);
      expect(id).toMatch(API_ID);
      expect(decodeMessageId(id)).toEqual({ kind: 'pop3', uidl });
    }
  });

  it('answers ids the gateway could not have issued with MESSAGE_NOT_FOUND (404), naming the id', () => {
    const canonical = encodeImapMessageId(7n, 9);
    const raw = (bytes: number[]): string => Buffer.from(bytes).toString('base64url');
    const impossible = [
      'not valid!', // outside the id alphabet
      'a', // too short to hold a tag
      'A'.repeat(129), // longer than API.md allows
      `${canonical}=`, // padding is not part of the alphabet
      raw([0x01, 0, 0, 0, 7, 0, 0, 0]), // IMAP tag, one byte short
      raw([0x01, 0, 0, 0, 7, 0, 0, 0, 0]), // UID 0 does not exist (RFC 9051 §2.3.1.1)
      raw([0x01, 0, 0, 0, 7, 0, 0, 0, 9, 0]), // one byte too many
      raw([0x03, 1, 2, 3]), // unknown tag
      raw([0x02]), // POP3 tag, empty UIDL
      raw([0x02, 0x20, 0x41]), // a space is not a UIDL character
      raw([0x02, ...Buffer.from('x'.repeat(71))]), // a UIDL longer than 70
    ];
    for (const id of impossible) {
      const err = thrown(() => decodeMessageId(id));
      expect({ id, code: err.code, status: err.status }).toEqual({ id, code: 'MESSAGE_NOT_FOUND', status: 404 });
      expect(err.message).toBe(`No message with id ${id}`);
    }
  });

  it('rejects a non-canonical spelling of a valid id, so that one message has exactly one id', () => {
    // base64url's last character may carry unused bits; flipping them decodes to the same bytes.
    const id = encodeImapMessageId(7n, 9); // 9 bytes: 12 characters, no spare bits
    const pop3 = encodePop3MessageId('ab'); // 3 bytes: 4 characters, no spare bits either
    const twoBytes = Buffer.from([0x02, 0x41]).toString('base64url'); // 'AkE': 2 spare bits in 'E'
    const sibling = twoBytes.slice(0, -1) + String.fromCharCode(twoBytes.charCodeAt(2) + 1);
    expect(Buffer.from(sibling, 'base64url')).toEqual(Buffer.from(twoBytes, 'base64url'));
    expect(decodeMessageId(twoBytes)).toEqual({ kind: 'pop3', uidl: 'A' });
    expect(thrown(() => decodeMessageId(sibling)).code).toBe('MESSAGE_NOT_FOUND');
    expect(decodeMessageId(id).kind).toBe('imap');
    expect(decodeMessageId(pop3).kind).toBe('pop3');
  });

  it('a POP3 id is not an IMAP id where only IMAP ids make sense', () => {
    const pop3 = encodePop3MessageId('UID1');
    expect(thrown(() => decodeImapMessageId(pop3)).code).toBe('MESSAGE_NOT_FOUND');
  });
});
