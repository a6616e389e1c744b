/**
 * Row (d): bare Fastify answering the gateway's listing bytes from memory, on the same path. The
 * ceiling for a cached listing: HTTP parsing, routing and writing, nothing else.
 *
 * Env: PORT, HOST, BODY_FILE (the JSON bytes to answer with).
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const body = readFileSync(process.env.BODY_FILE ?? '');
const app = Fastify({ logger: false });
app.get('/ready', async () => ({ status: 'ok' }));
app.get('/v1/accounts/:account/mailboxes/:mailbox/messages', async (_request, reply) =>
  reply.header('content-type', 'application/json; charset=utf-8').send(body),
);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' });
