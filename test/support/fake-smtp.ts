/**
 * Fake SMTP servers for what the test MTA cannot show: a server that takes the message (354 to DATA)
 * and then goes silent, never answering the final dot; and a server that refuses an XOAUTH2 login
 * outright with 535, as Microsoft 365 does (the test Postfix, through Dovecot, always answers a
 * refused XOAUTH2 with a 334 error challenge first). Everything else about sending is tested against
 * the real Postfix (mta.ts).
 */
import net from 'node:net';

export interface SilentSmtpServer {
  host: '127.0.0.1';
  port: number;
  /** How many sessions got as far as DATA. */
  readonly dataStarted: number;
  /**
   * From now on, new connections are relayed unchanged to this server (the real MTA): the same
   * host and port then reach a server that answers, without changing the account.
   */
  relayTo(target: { host: string; port: number }): void;
  close(): Promise<void>;
}

/** Silent after DATA until `relayTo` is called. */
export async function startSilentAfterDataSmtp(): Promise<SilentSmtpServer> {
  const sockets = new Set<net.Socket>();
  let dataStarted = 0;
  let relay: { host: string; port: number } | null = null;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (relay !== null) {
      const upstream = net.connect(relay.port, relay.host);
      sockets.add(upstream);
      upstream.on('close', () => {
        sockets.delete(upstream);
        socket.destroy();
      });
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      socket.pipe(upstream);
      upstream.pipe(socket);
      return;
    }
    let inData = false;
    let buffered = '';
    socket.write('220 fake.test ESMTP silent-after-data\r\n');
    socket.on('data', (chunk) => {
      if (inData) return; // read and never answer: the silence under test
      buffered += chunk.toString('latin1');
      let end: number;
      while (!inData && (end = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') socket.write('250-fake.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') socket.write('250 fake.test\r\n');
        else if (verb === 'AUTH') socket.write('235 2.7.0 Authentication successful\r\n');
        else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') socket.write('250 2.0.0 Ok\r\n');
        else if (verb === 'DATA') {
          dataStarted += 1;
          inData = true;
          socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
        else socket.write('502 5.5.2 Error: command not recognized\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    get dataStarted() {
      return dataStarted;
    },
    relayTo: (target) => {
      relay = target;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface XOAuth2SmtpServer {
  host: '127.0.0.1';
  port: number;
  /** Every AUTH XOAUTH2 in order: the bearer token given and whether it was taken. */
  readonly logins: Array<{ token: string; accepted: boolean }>;
  /** Messages taken (250 after DATA). */
  readonly accepted: number;
  close(): Promise<void>;
}

/**
 * Takes a login when `accepts(token)` says so, else answers `535 5.7.3 Authentication unsuccessful`
 * at once (no 334 challenge); takes every message of a logged-in session.
 */
export async function startXOAuth2Smtp(accepts: (token: string) => boolean): Promise<XOAuth2SmtpServer> {
  const sockets = new Set<net.Socket>();
  const logins: Array<{ token: string; accepted: boolean }> = [];
  let accepted = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let inData = false;
    let buffered = '';
    let authenticated = false;
    socket.write('220 fake.test ESMTP xoauth2\r\n');
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buffered.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buffered = buffered.slice(end + 5);
          inData = false;
          accepted += 1;
          socket.write('250 2.0.0 Ok: queued\r\n');
          continue;
        }
        const end = buffered.indexOf('\r\n');
        if (end < 0) return;
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const [verb = '', mechanism = '', response = ''] = line.split(' ');
        switch (verb.toUpperCase()) {
          case 'EHLO':
            socket.write('250-fake.test\r\n250-AUTH XOAUTH2\r\n250 8BITMIME\r\n');
            break;
          case 'AUTH': {
            // RFC-less but documented XOAUTH2: base64 of "user=<u>^Aauth=Bearer <token>^A^A".
            const decoded = Buffer.from(response, 'base64').toString('utf8');
            const token = decoded.split('\x01').find((part) => part.startsWith('auth=Bearer '))?.slice('auth=Bearer '.length) ?? '';
            const ok = mechanism.toUpperCase() === 'XOAUTH2' && accepts(token);
            logins.push({ token, accepted: ok });
            authenticated = ok;
            socket.write(ok ? '235 2.7.0 Authentication successful\r\n' : '535 5.7.3 Authentication unsuccessful\r\n');
            break;
          }
          case 'MAIL':
          case 'RCPT':
            socket.write(authenticated ? '250 2.1.0 Ok\r\n' : '530 5.7.0 Authentication required\r\n');
            break;
          case 'DATA':
            inData = true;
            socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
            break;
          case 'RSET':
          case 'NOOP':
            socket.write('250 2.0.0 Ok\r\n');
            break;
          case 'QUIT':
            socket.end('221 2.0.0 Bye\r\n');
            return;
          default:
            socket.write('502 5.5.2 Error: command not recognized\r\n');
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    logins,
    get accepted() {
      return accepted;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
