/**
 * Real HTTP receivers on loopback for webhook tests: each records what it was sent and answers as the
 * test says (a status, a pause, nothing at all).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  url: string;
}

export interface Receiver {
  port: number;
  url: string;
  received: Received[];
  /** Resolves once `count` requests have been received. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

const open = new Set<http.Server>();

/** Closes every receiver still open (call from afterEach). */
export async function closeReceivers(): Promise<void> {
  await Promise.all([...open].map((server) => closeServer(server)));
}

function closeServer(server: http.Server): Promise<void> {
  open.delete(server);
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export async function receiver(
  answer: (req: http.IncomingMessage, res: http.ServerResponse, received: Received) => void,
  port = 0,
): Promise<Receiver> {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), url: req.url ?? '' };
      received.push(entry);
      for (const wake of waiters.splice(0)) wake();
      answer(req, res, entry);
    });
  });
  open.add(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}/hook`,
    received,
    waitFor: async (count, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) throw new Error(`receiver got ${received.length} requests, not ${count}, within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          waiters.push(() => (clearTimeout(timer), resolve()));
        });
      }
      return received;
    },
    close: () => closeServer(server),
  };
}
