/**
 * Address lists from header text (a referenced message's Reply-To), groups flattened (RFC 5322
 * §3.4): nodemailer's addressparser, the parser its composer uses, so both sides read alike.
 */
import addressparser from 'nodemailer/lib/addressparser';
import type { Address } from '../mail/types.js';

export function parseAddressList(text: string): Address[] {
  return addressparser(text, { flatten: true })
    .filter((entry) => typeof entry.address === 'string' && entry.address.includes('@'))
    .map((entry) => ({ name: entry.name ?? '', address: entry.address! }));
}
