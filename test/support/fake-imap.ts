/**
 * A scripted IMAP server for the one fault the real Dovecot cannot show: a mailbox whose
 * PERMANENTFLAGS lack `\*`, so it stores no keywords (Dovecot always offers `\*`). It knows one
 * mailbox, INBOX, holding one message (UID 1), and answers just what a login, a SELECT, UID FETCH,
 * UID STORE and LOGOUT need. Anything else gets `BAD`, so an unexpected command shows up in a test.
 * It can also answer LOGIN as a careless server does, echoing the credentials, and a folder list
 * that lags behind the mailboxes (Dovecot's list index does so for a while after a delete, but not
 * on cue).
 */
import net from 'node:net';

export interface FakeImapOptions {
  /** The PERMANENTFLAGS SELECT announces, e.g. `\Seen \Flagged`. */
  permanentFlags: string;
  uidValidity: number;
  /** The answer to LOGIN (default: OK), e.g. one that echoes the arguments as some servers do. */
  loginAnswer?: (tag: string, args: string) => string[];
  /**
   * Offers LIST-STATUS: `listed` answers `LIST ... RETURN (STATUS ...)` (untagged lines as sent);
   * `status` is what STATUS says of each mailbox that exists (`(MESSAGES 0 UIDNEXT 1 ...)`), any
   * other mailbox gets NO.
   */
  folders?: { listed: string[]; status: Record<string, string> };
}

export interface FakeImap {
  host: '127.0.0.1';
  port: number;
  /** Every command received, without its tag (`UID STORE 1 +FLAGS (\Seen)`). */
  readonly commands: string[];
  /** The message's flags as the fake stores them. */
  readonly flags: ReadonlySet<string>;
  close(): Promise<void>;
}

const CAPABILITIES = 'IMAP4rev1 UIDPLUS MOVE';

export async function startFakeImap(options: FakeImapOptions): Promise<FakeImap> {
  const commands: string[] = [];
  const flags = new Set<string>();
  const sockets = new Set<net.Socket>();
  const fetchLine = (): string => `* 1 FETCH (UID 1 FLAGS (${[...flags].join(' ')}) RFC822.SIZE 42)`;

  const capabilities = options.folders ? `${CAPABILITIES} LIST-EXTENDED LIST-STATUS` : CAPABILITIES;
  const unquote = (name: string): string => name.replace(/^"(.*)"$/, '$1');
  const answer = (tag: string, command: string, args: string): string[] => {
    switch (command) {
      case 'CAPABILITY':
        return [`* CAPABILITY ${capabilities}`, `${tag} OK done`];
      case 'LOGIN':
        return options.loginAnswer?.(tag, args) ?? [`${tag} OK [CAPABILITY ${capabilities}] Logged in`];
      case 'LIST': {
        const folders = options.folders;
        if (folders === undefined) return ['* LIST (\\HasNoChildren) "/" INBOX', `${tag} OK done`];
        if (/ RETURN /i.test(args)) return [...folders.listed, `${tag} OK done`];
        // imapflow's check of a refused STATUS: `LIST "" name`.
        const name = unquote(args.split(' ').slice(1).join(' '));
        return [...(folders.status[name] !== undefined ? [`* LIST () "/" ${name}`] : []), `${tag} OK done`];
      }
      case 'STATUS': {
        const name = unquote(args.slice(0, args.indexOf(' (')));
        const status = options.folders?.status[name];
        return status === undefined ? [`${tag} NO Mailbox doesn't exist: ${name}`] : [`* STATUS ${name} ${status}`, `${tag} OK done`];
      }
      case 'SELECT':
      case 'EXAMINE':
        return [
          '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)',
          `* OK [PERMANENTFLAGS (${options.permanentFlags})] Limited`,
          '* 1 EXISTS',
          `* OK [UIDVALIDITY ${options.uidValidity}] UIDs valid`,
          '* OK [UIDNEXT 2] Predicted next UID',
          `${tag} OK [READ-WRITE] Select completed`,
        ];
      case 'NOOP':
        return [`${tag} OK done`];
      case 'LOGOUT':
        return ['* BYE bye', `${tag} OK done`];
      case 'UID': {
        const [sub = '', set = '', item = '', ...rest] = args.split(' ');
        const forUidOne = set.split(',').includes('1');
        if (sub.toUpperCase() === 'FETCH') return [...(forUidOne ? [fetchLine()] : []), `${tag} OK done`];
        if (sub.toUpperCase() === 'STORE' && forUidOne) {
          const named = rest.join(' ').replace(/[()]/g, '').split(' ').filter(Boolean);
          for (const flag of named) {
            if (item.startsWith('+')) flags.add(flag);
            else if (item.startsWith('-')) flags.delete(flag);
          }
          return [...(item.toUpperCase().includes('.SILENT') ? [] : [fetchLine()]), `${tag} OK done`];
        }
        return [`${tag} BAD not scripted`];
      }
      default:
        return [`${tag} BAD not scripted`];
    }
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(`* OK [CAPABILITY ${capabilities}] fake ready\r\n`);
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n'); end !== -1; end = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const match = /^(\S+) (\S+) ?(.*)$/.exec(line);
        if (match === null) continue;
        const [, tag = '', name = '', args = ''] = match;
        commands.push(args ? `${name.toUpperCase()} ${args}` : name.toUpperCase());
        socket.write(answer(tag, name.toUpperCase(), args).join('\r\n') + '\r\n');
        if (name.toUpperCase() === 'LOGOUT') socket.end();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fake imap: no TCP address');
  return {
    host: '127.0.0.1',
    port: address.port,
    commands,
    flags,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
