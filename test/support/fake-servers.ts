/**
 * Fake TCP "mail servers" for faults a real server cannot be made to show on demand: a peer that
 * accepts and never speaks, one that greets and then goes silent, one that hangs up at once.
 * Everything else is tested against the real Dovecot.
 */
import net from 'node:net';

export type FakeBehaviour =
  /** Accepts the connection and never sends a byte (no greeting). */
  | 'silent'
  /** Sends an IMAP greeting with capabilities, then reads everything and answers nothing. */
  | 'greet-then-silent'
  /** Closes the connection as soon as it is accepted. */
  | 'close';

export interface FakeServer {
  host: '127.0.0.1';
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections currently open (the gateway should not leave any behind after a timeout). */
  readonly open: number;
  /** Every byte received, as latin1 text (to check what the gateway sent). */
  readonly received: string;
  close(): Promise<void>;
}

const GREETING = '* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR LOGIN-REFERRALS ID ENABLE IDLE] fake ready\r\n';

export async function startFakeServer(behaviour: FakeBehaviour): Promise<FakeServer> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let received = '';
  const server = net.createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
    });
    if (behaviour === 'close') socket.destroy();
    else if (behaviour === 'greet-then-silent') socket.write(GREETING);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fake server: no TCP address');
  return {
    host: '127.0.0.1',
    port: address.port,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    get received() {
      return received;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 with nothing listening (bound, read, released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('closedPort: no TCP address');
  return address.port;
}
