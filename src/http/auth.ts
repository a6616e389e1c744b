/**
 * Bearer-key authentication for `/v1` (and `/metrics`). Keys come from `API_KEYS`; with none
 * configured the gateway only listens on loopback (enforced in config.ts), and every request passes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import { sendProblem } from './problem.js';

const PUBLIC_PREFIXES = ['/health', '/ready', '/docs'];

export function registerAuth(app: FastifyInstance, apiKeys: string[]): void {
  if (apiKeys.length === 0) return;
  // Compare digests so the comparison takes the same time whatever the key's length.
  const digests = apiKeys.map(digest);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (PUBLIC_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`))) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const presented = match?.[1];
    const ok = presented !== undefined && digests.some((d) => timingSafeEqual(d, digest(presented)));
    if (!ok) {
      void reply.header('www-authenticate', 'Bearer realm="mailgw"');
      return sendProblem(request, reply, new GatewayError('UNAUTHORIZED', 'Missing or wrong API key (Authorization: Bearer <key>)'));
    }
  });
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
