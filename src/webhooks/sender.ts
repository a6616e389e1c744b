/**
 * One webhook delivery attempt: an HTTP POST of the event's JSON to the webhook's URL (API.md,
 * Webhooks), and what came of it. Nothing here retries; the caller decides from the outcome.
 *
 * - The host is resolved and checked by the egress policy at every attempt (DNS may have changed since
 *   the URL was saved), and the address checked is the address dialled: the request goes to it, with the
 *   URL's host only in the Host header and as TLS SNI / the name the certificate must carry.
 * - `http:` only to a host the operator admitted by EGRESS_ALLOW (the event carries mail content; on an
 *   internal network that is the operator's call); `https:` to any host the policy lets through.
 * - The whole attempt, connecting included, ends after `timeoutMs` (10 s).
 * - Redirects are not followed: a 3xx is a failed attempt like any other non-2xx.
 * - At most `maxResponseBytes` of the answer are read, then the connection is dropped: a receiver
 *   cannot make the gateway read (or hold) a large body.
 */
import http from 'node:http';
import https from 'node:https';
import type { EgressPolicy } from '../net/egress.js';
import { GatewayError } from '../errors.js';
import { retryAfterMs } from './retry-schedule.js';

export interface SendOptions {
  egress: EgressPolicy;
  /** Keep-alive connections to reuse (per checked address); without, every attempt dials afresh. */
  agents?: WebhookAgents;
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export interface SendOutcome {
  /** A 2xx answer: delivered. */
  ok: boolean;
  /** The answer's status, null when none came (refused, timed out, not allowed). */
  status: number | null;
  /** The receiver asked for a pause (Retry-After), in ms. */
  retryAfterMs: number | null;
  /** 410 Gone: the receiver wants no more deliveries; the webhook is disabled. */
  gone: boolean;
  /** What went wrong, for the delivery record (no secret, no response body). */
  error: string | null;
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 4096;

export async function sendWebhook(url: string, body: string, headers: Record<string, string>, options: SendOptions): Promise<SendOutcome> {
  const startedMs = performance.now();
  const done = (outcome: Omit<SendOutcome, 'durationMs'>): SendOutcome => ({ ...outcome, durationMs: performance.now() - startedMs });
  const failed = (error: string, status: number | null = null): SendOutcome => done({ ok: false, status, retryAfterMs: null, gone: false, error });

  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return failed('the webhook URL is not a valid URL');
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:') return failed('the webhook URL is neither https: nor http:');
  let address;
  try {
    address = await options.egress.resolve(target.hostname);
  } catch (err) {
    return failed(err instanceof GatewayError ? err.message : 'the webhook host could not be resolved');
  }
  if (target.protocol === 'http:' && !address.admitted) {
    return failed('plain http: is allowed only to hosts admitted by EGRESS_ALLOW; use https:');
  }

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const secure = target.protocol === 'https:';
  const payload = Buffer.from(body, 'utf8');
  return new Promise<SendOutcome>((resolve) => {
    let settled = false;
    const retriedFresh = options.agents === undefined;
    const settle = (outcome: SendOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(outcome);
    };
    const requestOptions: https.RequestOptions = {
      method: 'POST',
      host: address.address,
      family: address.family,
      port: target.port === '' ? (secure ? 443 : 80) : Number(target.port),
      path: `${target.pathname}${target.search}`,
      setHost: false,
      agent: options.agents?.agent(secure, address.address, address.family, address.servername) ?? false,
      headers: {
        host: target.host,
        'content-type': 'application/json',
        'content-length': String(payload.length),
        'user-agent': 'mailgw-webhooks',
        ...headers,
      },
      ...(secure ? { servername: address.servername } : {}),
    };
    const request = (secure ? https : http).request(requestOptions, (response) => {
      const status = response.statusCode ?? 0;
      let read = 0;
      const finish = (): void => {
        const ok = status >= 200 && status < 300;
        const header = response.headers['retry-after'];
        settle(
          done({
            ok,
            status,
            retryAfterMs: ok ? null : retryAfterMs(Array.isArray(header) ? header[0] : header, Date.now()),
            gone: status === 410,
            error: ok ? null : status >= 300 && status < 400 ? `HTTP ${status}: redirects are not followed` : `HTTP ${status}`,
          }),
        );
      };
      response.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read >= maxBytes) finish();
      });
      response.on('end', finish);
      response.on('error', finish);
    });
    const timer = setTimeout(() => settle(failed(`no answer within ${timeoutMs} ms`)), timeoutMs);
    request.on('error', (err: NodeJS.ErrnoException) => {
      // A kept-alive connection the receiver closed just as it was reused: not the receiver's
      // answer, so dial afresh once within this attempt (what Node's docs advise, `reusedSocket`).
      if (request.reusedSocket && err.code === 'ECONNRESET' && !settled && !retriedFresh) {
        settled = true;
        clearTimeout(timer);
        // Within what is left of this attempt's time, and timed from its start.
        const left = Math.max(1, timeoutMs - (performance.now() - startedMs));
        resolve(
          sendWebhook(url, body, headers, { ...options, agents: undefined, timeoutMs: left }).then((outcome) => ({
            ...outcome,
            durationMs: performance.now() - startedMs,
          })),
        );
        return;
      }
      settle(failed(`could not deliver: ${err.code ?? err.message}`));
    });
    request.end(payload);
  });
}

/**
 * Keep-alive agents for webhook receivers, one per address the egress policy checked (and TLS name):
 * a connection is reused only for the address it was dialled to, so reuse never skips the check. Idle
 * connections close after FREE_SOCKET_MS, under the 5 s keep-alive most servers (Node's included) keep.
 */
export class WebhookAgents {
  private readonly agents = new Map<string, http.Agent>();

  agent(secure: boolean, address: string, family: number, servername: string | undefined): http.Agent {
    const key = `${secure ? 'https' : 'http'} ${address} ${servername ?? ''}`;
    let agent = this.agents.get(key);
    if (agent === undefined) {
      const settings = { keepAlive: true, maxSockets: MAX_SOCKETS_PER_RECEIVER, timeout: FREE_SOCKET_MS, family };
      agent = secure ? new https.Agent(settings) : new http.Agent(settings);
      this.agents.set(key, agent);
    }
    return agent;
  }

  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}

const FREE_SOCKET_MS = 2_000;
const MAX_SOCKETS_PER_RECEIVER = 16;
