/**
 * A TCP relay in front of a real server that holds the server's answers back for a while: the
 * network latency a mail server on loopback never shows. Bytes are relayed in order and unchanged;
 * only their delivery to the client is late by `delayMs` (changeable at any time).
 */
import net from 'node:net';

export interface LatencyProxy {
  host: '127.0.0.1';
  port: number;
  /** Milliseconds each chunk from the server waits before it goes to the client. */
  delayMs: number;
  /** Resolves once the client has sent a line matching `pattern` (from now on). */
  clientSends(pattern: RegExp): Promise<void>;
  /** Everything clients have sent so far (latin1), to count commands. */
  clientText(): string;
  close(): Promise<void>;
}

export async function startLatencyProxy(target: { host: string; port: number }): Promise<LatencyProxy> {
  const sockets = new Set<net.Socket>();
  const watchers = new Set<{ pattern: RegExp; resolve: () => void }>();
  let sent = '';
  const proxy: LatencyProxy = {
    host: '127.0.0.1',
    port: 0,
    delayMs: 0,
    clientSends: (pattern) => new Promise<void>((resolve) => watchers.add({ pattern, resolve })),
    clientText: () => sent,
    close: async () => undefined,
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      sent += text;
      for (const watcher of [...watchers]) {
        if (!watcher.pattern.test(text)) continue;
        watchers.delete(watcher);
        watcher.resolve();
      }
    });
    // Each chunk leaves no earlier than delayMs after it came, and never before the one before it.
    let lastDue = 0;
    upstream.on('data', (chunk: Buffer) => {
      const due = Math.max(Date.now() + proxy.delayMs, lastDue);
      lastDue = due;
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
      }, due - Date.now());
    });
    upstream.on('close', () => setTimeout(() => client.end(), Math.max(0, lastDue - Date.now())));
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
