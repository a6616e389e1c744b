/**
 * An HTTP fuzzer over every operation of the committed OpenAPI document, against a real gateway with
 * real IMAP and POP3 accounts: malformed and random path parameters, query strings, headers and bodies,
 * derived from each operation's own schema and then broken. What must hold, for every answer:
 *   - no 5xx but a genuine upstream one (502/503/504 with an upstream code): a bug is 500 INTERNAL_ERROR;
 *   - every error is problem+json with a code from the catalogue;
 *   - every request is answered within a bound (no hang);
 *   - the process's memory stays bounded over the run.
 * Deterministic for a seed. `npm run fuzz` runs it long; test/integration/fuzz.test.ts runs a short form.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { ERROR_CODES } from '../../src/errors.js';

/** 5xx codes that report the mail server or the gateway's own store, not a bug. */
const UPSTREAM_CODES = new Set(['UPSTREAM_ERROR', 'UPSTREAM_TIMEOUT', 'POOL_EXHAUSTED', 'SERVICE_UNAVAILABLE']);
const KNOWN_CODES = new Set<string>(ERROR_CODES);

export interface Fixtures {
  /** Path parameter values that name real things (an account, a mailbox, a message…). */
  valid: Record<string, string[]>;
  /** Called between operations: restores accounts or messages that a valid destructive case removed. */
  restore(): Promise<void>;
}

export interface FuzzOptions {
  app: FastifyInstance;
  fixtures: Fixtures;
  seed: number;
  casesPerOperation: number;
  /** Stop early, whatever is left, after this long. */
  timeBudgetMs: number;
  requestTimeoutMs?: number;
  headers?: Record<string, string>;
}

export interface Finding {
  operation: string;
  request: { method: string; url: string; headers: Record<string, string>; body?: string };
  problem: string;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  operations: number;
  byStatus: Record<string, number>;
  findings: Finding[];
  rssGrowthMb: number;
  elapsedMs: number;
}

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  schema?: Schema;
}
interface Schema {
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, Schema>;
  items?: Schema;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  format?: string;
  $ref?: string;
}
interface Operation {
  method: string;
  route: string;
  parameters: Parameter[];
  body?: { mediaType: string; schema?: Schema };
}

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function loadOperations(root: string): Operation[] {
  const doc = JSON.parse(readFileSync(path.join(root, 'openapi', 'openapi.json'), 'utf8')) as {
    paths: Record<string, Record<string, { parameters?: Parameter[]; requestBody?: { content: Record<string, { schema?: Schema }> } }>>;
  };
  const ops: Operation[] = [];
  for (const [route, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const content = op.requestBody?.content ?? {};
      const mediaType = Object.keys(content)[0];
      ops.push({
        method: method.toUpperCase(),
        route,
        parameters: op.parameters ?? [],
        ...(mediaType !== undefined ? { body: { mediaType, schema: content[mediaType]?.schema } } : {}),
      });
    }
  }
  return ops;
}

/** Strings that break parsers, paths, headers and protocols. */
const NASTY = [
  '',
  ' ',
  '..',
  '.',
  '%',
  '%00',
  '%0d%0a',
  '%FF',
  '%C0%AE',
  '\u0000',
  '\r\n',
  'a\r\nX-Injected: 1',
  '"quoted"',
  "'",
  '\\',
  '*',
  '%',
  '{}',
  '[]',
  'null',
  'true',
  '-1',
  '0',
  '1e309',
  '99999999999999999999999999',
  '4294967296',
  '9007199254740993',
  'NaN',
  '€uro',
  '😀',
  '\u202e',
  'INBOX',
  'inbox',
  'Work/2024',
  'a'.repeat(300),
  'a'.repeat(5000),
  '<script>alert(1)</script>',
  '${jndi:x}',
  '../../etc/passwd',
  'bnVsbA',
  'AAAAAAAAAAAAAAAAAAAA',
];

export async function runFuzz(options: FuzzOptions, root: string): Promise<FuzzReport> {
  const random = prng(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const chance = (p: number): boolean => random() < p;
  const operations = loadOperations(root);
  const started = Date.now();
  const rssBefore = process.memoryUsage().rss;
  const report: FuzzReport = { seed: options.seed, requests: 0, operations: operations.length, byStatus: {}, findings: [], rssGrowthMb: 0, elapsedMs: 0 };

  const valueFor = (schema: Schema | undefined, name: string): string => {
    if (chance(0.35)) return pick(NASTY);
    if (schema?.enum && chance(0.7)) return String(pick(schema.enum));
    const types = Array.isArray(schema?.type) ? schema.type : [schema?.type];
    if (types.includes('integer') || types.includes('number')) {
      return String(pick([schema?.minimum ?? 0, schema?.maximum ?? 100, -1, 0, 1, 50, 201, 2 ** 31, 2 ** 53, 1.5]));
    }
    if (types.includes('boolean')) return pick(['true', 'false', '1', '0', 'yes', '']);
    if (schema?.format === 'date') return pick(['2026-01-01', '0000-01-01', '9999-12-31', '2026-02-30', '2026-1-1']);
    if (schema?.format === 'date-time') return pick(['2030-01-01T00:00:00Z', '2020-01-01T00:00:00Z', 'yesterday']);
    return name === 'flags' ? pick(['\\Seen', '\\Deleted', '$Work', '\\Recent', 'a b', '\\Flagged']) : pick(NASTY);
  };

  const bodyValue = (schema: Schema | undefined, depth: number): unknown => {
    if (depth > 3 || chance(0.15)) return pick([null, 0, -1, 1e308, '', 'x'.repeat(2000), true, [], {}, '\u0000', '€']);
    const types = Array.isArray(schema?.type) ? schema.type : [schema?.type];
    if (schema?.enum) return chance(0.8) ? pick(schema.enum) : 'not-in-enum';
    if (types.includes('object') || schema?.properties) {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(schema?.properties ?? {})) if (chance(0.6)) out[key] = bodyValue(child, depth + 1);
      if (chance(0.15)) out[pick(['passwrd', '__proto__', 'constructor', 'extra'])] = 'x';
      return out;
    }
    if (types.includes('array')) return Array.from({ length: pick([0, 1, 2, 70]) }, () => bodyValue(schema?.items, depth + 1));
    if (types.includes('integer') || types.includes('number')) return pick([0, 1, 993, 65536, -5, 2.5, 2 ** 53]);
    if (types.includes('boolean')) return pick([true, false, 'true']);
    return pick(['127.0.0.1', 'alice', 'INBOX', 'Archive', 'Work/2024', ...NASTY.slice(0, 20)]);
  };

  outer: for (const op of operations) {
    for (let i = 0; i < options.casesPerOperation; i++) {
      if (Date.now() - started > options.timeBudgetMs) break outer;
      let url = op.route;
      for (const parameter of op.parameters.filter((p) => p.in === 'path')) {
        const valid = options.fixtures.valid[parameter.name];
        const raw = valid && chance(0.6) ? pick(valid) : valueFor(parameter.schema, parameter.name);
        // Mostly encoded as a client would; sometimes raw, as an attacker would.
        const encoded = chance(0.85) ? encodeURIComponent(raw) : raw.replace(/[\s/?#]|[^\P{Cc}]/gu, (c) => encodeURIComponent(c));
        url = url.replace(`{${parameter.name}}`, encoded);
      }
      const query: string[] = [];
      for (const parameter of op.parameters.filter((p) => p.in === 'query')) {
        if (chance(0.5)) continue;
        const times = chance(0.1) ? 2 : 1;
        for (let t = 0; t < times; t++) query.push(`${encodeURIComponent(parameter.name)}=${encodeURIComponent(valueFor(parameter.schema, parameter.name))}`);
      }
      if (chance(0.1)) query.push(`${pick(['junk', 'limit[]', '__proto__[x]', 'cursor'])}=${encodeURIComponent(pick(NASTY))}`);
      if (query.length > 0) url += `?${query.join('&')}`;

      const headers: Record<string, string> = { ...(options.headers ?? {}) };
      for (const parameter of op.parameters.filter((p) => p.in === 'header')) {
        if (chance(0.5)) headers[parameter.name] = pick(['bytes=0-10', 'bytes=-5', 'bytes=10-5', 'bytes=0-', 'bytes=a-b', '"x"', '*', 'W/"x"', 'bytes=0-1,2-3', '"' + 'a'.repeat(600) + '"']);
      }
      if (chance(0.05)) headers['x-request-id'] = pick(NASTY).replace(/\p{Cc}/gu, '');
      let body: string | Buffer | undefined;
      if (op.body !== undefined && chance(0.9)) {
        if (op.body.mediaType === 'message/rfc822') {
          headers['content-type'] = chance(0.8) ? 'message/rfc822' : pick(['application/json', 'text/plain', 'message/rfc822; charset=x']);
          body = chance(0.2) ? '' : `Subject: ${pick(NASTY)}\r\nFrom: a@b\r\n\r\n${pick(NASTY)}\r\n`;
        } else {
          headers['content-type'] = chance(0.9) ? 'application/json' : pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']);
          body = chance(0.1) ? pick(['{', '[', '{"a":', 'nul', '\u0000', '{"a":1}{"b":2}', JSON.stringify({ a: 'x'.repeat(10) }).repeat(3)]) : JSON.stringify(bodyValue(op.body.schema, 0));
        }
      }
      const method = chance(0.03) ? pick(['PUT', 'OPTIONS', 'TRACE']) : op.method;
      report.requests += 1;
      const name = `${op.method} ${op.route}`;
      // Findings keep the request short enough to read (and to replay from the seed).
      const request = { method, url: url.slice(0, 300), headers, ...(body !== undefined ? { body: body.toString().slice(0, 300) } : {}) };
      let timer: NodeJS.Timeout | undefined;
      try {
        const res = await Promise.race([
          answer(options.app, { method: method as 'GET', url, headers, ...(body !== undefined ? { payload: body } : {}) }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${options.requestTimeoutMs ?? 15_000} ms`)), options.requestTimeoutMs ?? 15_000);
          }),
        ]);
        report.byStatus[res.statusCode] = (report.byStatus[res.statusCode] ?? 0) + 1;
        const problem = judge(res.statusCode, res.contentType, res.body);
        if (problem !== null) report.findings.push({ operation: name, request, problem });
      } catch (err) {
        report.findings.push({ operation: name, request, problem: (err as Error).message });
      } finally {
        clearTimeout(timer);
      }
    }
    await options.fixtures.restore();
  }
  report.elapsedMs = Date.now() - started;
  report.rssGrowthMb = Math.round(((process.memoryUsage().rss - rssBefore) / 1024 / 1024) * 10) / 10;
  return report;
}

/**
 * One request's status, content type and body. An event stream (`text/event-stream`) that opened
 * never ends by itself: its opening is the answer, and the stream is closed at once.
 */
async function answer(app: FastifyInstance, request: InjectOptions): Promise<{ statusCode: number; contentType: string; body: string }> {
  const res = await app.inject({ ...request, payloadAsStream: true });
  const contentType = String(res.headers['content-type'] ?? '');
  const stream = res.stream();
  if (res.statusCode === 200 && contentType.startsWith('text/event-stream')) {
    stream.destroy();
    return { statusCode: res.statusCode, contentType, body: '' };
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return { statusCode: res.statusCode, contentType, body: Buffer.concat(chunks).toString('utf8') };
}

/** What is wrong with this answer, or null. */
export function judge(status: number, contentType: string, body: string): string | null {
  if (status < 400) return null;
  if (!contentType.startsWith('application/problem+json')) return `${status} without problem+json (${contentType || 'no content type'})`;
  let code: unknown;
  try {
    code = (JSON.parse(body) as { code?: unknown }).code;
  } catch {
    return `${status} with a problem document that is not JSON`;
  }
  if (typeof code !== 'string' || !KNOWN_CODES.has(code)) return `${status} with an unknown code ${String(code)}`;
  if (status >= 500 && !UPSTREAM_CODES.has(code)) return `${status} ${code}`;
  return null;
}
