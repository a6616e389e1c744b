/**
 * `UID STORE <uid> (UNCHANGEDSINCE <modseq>) …` (RFC 7162 §3.1.3): the server stores only if the
 * message's mod-sequence is still at most `modseq`, and otherwise stores nothing and answers
 * `OK [MODIFIED <uids>]`. The check and the write are one command, so no other client's change can
 * fall between them.
 *
 * imapflow 2.10 accepts `unchangedSince` on messageFlagsAdd/Set/Remove, but its store resolves
 * `true` whether the server stored or answered MODIFIED (commands/store.js reads no response code),
 * and it leaves the modifier out unless CONDSTORE was ENABLEd. A caller could not tell "stored" from
 * "refused". So the command goes through imapflow's own command queue (`exec`, which its commands
 * use; marked internal, hence the narrow type below) and the tagged response code is read here.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../errors.js';

/** The slice of imapflow's internal `exec` this module relies on (imapflow 2.x). */
interface CommandQueue {
  exec(command: string, attributes: unknown[]): Promise<{ response: TaggedResponse; next: () => void }>;
}

interface TaggedResponse {
  attributes?: Array<{ section?: Array<{ value?: unknown }> }>;
}

/**
 * Not `.SILENT`: the untagged FETCH of the new flags carries the new MODSEQ, from which imapflow
 * keeps the session's HIGHESTMODSEQ current (the state a later listing on this session reports).
 */
export type StoreOperation = 'FLAGS' | '+FLAGS';

/** Stores `flags` on `uid` unless it changed after `unchangedSince`; false when the server refused (MODIFIED). */
export async function storeUnchangedSince(
  client: ImapFlow,
  uid: number,
  operation: StoreOperation,
  flags: readonly string[],
  unchangedSince: bigint,
): Promise<boolean> {
  const bad = flags.find((flag) => !/^\\?[\x21-\x7e]+$/.test(flag));
  if (bad !== undefined) throw new GatewayError('VALIDATION_FAILED', `${bad} is not an IMAP flag (RFC 9051 §9: an atom of ASCII characters)`);
  const queue = client as unknown as CommandQueue;
  const { response, next } = await queue.exec('UID STORE', [
    { type: 'SEQUENCE', value: String(uid) },
    [
      { type: 'ATOM', value: 'UNCHANGEDSINCE' },
      { type: 'ATOM', value: unchangedSince.toString() },
    ],
    { type: 'ATOM', value: operation },
    flags.map((flag) => ({ type: 'ATOM', value: flag })),
  ]);
  next();
  return responseCode(response) !== 'MODIFIED';
}

/** The response code of a tagged answer (`OK [MODIFIED 7] …` → "MODIFIED"), upper-cased. */
function responseCode(response: TaggedResponse): string | undefined {
  const code = response.attributes?.[0]?.section?.[0]?.value;
  return typeof code === 'string' ? code.toUpperCase() : undefined;
}
