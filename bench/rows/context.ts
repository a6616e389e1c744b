/** What every row gets: the options, the mail servers, and the account ids registered on the gateways. */
import type { BenchOptions } from '../options.js';
import type { MailServers } from '../servers.js';

export interface RowContext {
  options: BenchOptions;
  servers: MailServers;
  /** IMAP accounts on the gateways (shared through Redis): the 2,000- and the 100,000-message mailbox. */
  accounts: { small: string; large: string };
}
