/**
 * APPEND of one message (RFC 9051 §6.3.12), answering its UID from APPENDUID (RFC 4315 §3), or,
 * on a server without UIDPLUS, by its Message-ID. The bytes are sent as given.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';
import { findByMessageId, mailboxExists, type Transferred } from './transfer.js';

export async function appendMessage(client: ImapFlow, path: string, content: Buffer, flags: string[]): Promise<Transferred> {
  let result;
  try {
    result = await client.append(path, content, flags);
  } catch (err) {
    const e = err as { serverResponseCode?: string };
    if (e.serverResponseCode === 'TRYCREATE' || !(await mailboxExists(client, path))) {
      throw new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${path}`, { cause: err });
    }
    if (e.serverResponseCode === 'APPENDLIMIT' || e.serverResponseCode === 'TOOBIG') {
      throw new GatewayError('PAYLOAD_TOO_LARGE', 'The mail server does not accept a message this large', { cause: err });
    }
    throw err;
  }
  if (!result) {
    if (!(await mailboxExists(client, path))) throw new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${path}`);
    throw new GatewayError('UPSTREAM_ERROR', 'The mail server refused the message');
  }
  if (result.uid !== undefined && result.uidValidity !== undefined) return { uid: result.uid, uidValidity: result.uidValidity };
  return findByMessageId(client, path, messageIdOf(content));
}

function messageIdOf(content: Buffer): string | null {
  const headerEnd = content.indexOf('\r\n\r\n');
  const head = content.subarray(0, headerEnd >= 0 ? headerEnd : Math.min(content.length, 64 * 1024)).toString('latin1');
  return /^message-id:\s*(<[^>\r\n]+>)/im.exec(head)?.[1] ?? null;
}
