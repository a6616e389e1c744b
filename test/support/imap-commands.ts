/**
 * Raw IMAP commands on a plain connection, for what imapflow does not send as written: the Cyrus
 * admin's CREATE of a user's mailbox (imapflow would put the admin's namespace prefix in front) and
 * CREATE with a USE list (RFC 6154 §3).
 */
import net from 'node:net';

/**
 * Sends IMAP commands one after another on a fresh plain connection and resolves once each is
 * answered OK; a NO/BAD rejects with the server's line. Enough for the admin's CREATE of a user.
 */
export function imapCommands(port: number, commands: string[], timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffer = '';
    let step = -1;
    const timer = setTimeout(() => finish(new Error(`IMAP commands timed out at ${JSON.stringify(commands[step] ?? 'greeting')}`)), timeoutMs);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    const next = (): void => {
      step++;
      if (step === commands.length) return finish();
      socket.write(`a${step} ${commands[step]}\r\n`);
    };
    socket.on('error', (error) => finish(error));
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let newline: number;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (step === -1 && line.startsWith('* OK')) next();
        else if (line.startsWith(`a${step} `)) {
          if (/^a\d+ OK/.test(line)) next();
          else finish(new Error(`IMAP ${JSON.stringify(commands[step]?.replace(/LOGIN .*/, 'LOGIN …'))}: ${line}`));
        }
      }
    });
  });
}

/** An IMAP quoted string (RFC 9051 §4.3). */
export const quoted = (value: string): string => `"${value.replace(/(["\\])/g, '\\$1')}"`;
