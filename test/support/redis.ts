/**
 * Starts real, throwaway redis-server processes for tests (a single instance, or a three-master
 * cluster). Readiness is checked with a few bytes of RESP over a raw socket, so this module needs no
 * Redis client library.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, freePorts } from './ports.js';
import { waitForExit } from './processes.js';

export interface RedisServer {
  url: string;
  port: number;
  /** SIGTERM, wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit, for outage tests; `restart()` brings it back (empty). */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port (stopping it first if it is still running). */
  restart(): Promise<void>;
}

export interface RedisClusterNode {
  host: string;
  port: number;
}

export interface RedisCluster {
  nodes: RedisClusterNode[];
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const CLUSTER_READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/** Encodes a command as a RESP array of bulk strings. */
function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
}

/**
 * Sends one command and resolves its reply if it is a simple string or a bulk string; an error
 * reply rejects. Enough for PING and CLUSTER INFO.
 */
export function redisCommand(port: number, args: string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffer = Buffer.alloc(0);
    const done = (error: Error | undefined, value?: string): void => {
      socket.destroy();
      if (error) reject(error);
      else resolve(value ?? '');
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`redis ${args[0]}: no answer in ${timeoutMs} ms`)));
    socket.on('error', (error) => done(error));
    socket.on('close', () => done(new Error(`redis ${args[0]}: connection closed`)));
    socket.on('connect', () => socket.write(encodeCommand(args)));
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const lineEnd = buffer.indexOf('\r\n');
      if (lineEnd === -1) return;
      const head = buffer.subarray(0, lineEnd).toString('utf8');
      const type = head[0];
      if (type === '+') return done(undefined, head.slice(1));
      if (type === '-') return done(new Error(`redis ${args[0]}: ${head.slice(1)}`));
      if (type === '$') {
        const length = Number(head.slice(1));
        if (length < 0) return done(undefined, '');
        if (buffer.length < lineEnd + 2 + length) return; // wait for the rest of the bulk string
        return done(undefined, buffer.subarray(lineEnd + 2, lineEnd + 2 + length).toString('utf8'));
      }
      return done(undefined, head);
    });
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
    child.kill('SIGKILL');
    await waitForExit(child, STOP_TIMEOUT_MS);
  }
}

// Safety net: a test process that exits without stop() takes its redis-servers along.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/** Spawns redis-server in the foreground and resolves once it answers (INFO, like PING but with its pid). */
async function spawnRedis(port: number, dir: string, extraArgs: string[] = []): Promise<ChildProcess> {
  const logFile = path.join(dir, `redis-${port}.log`);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', logFile, ...extraArgs],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  track(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 8_192) stderr += chunk.toString('utf8');
  });
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (spawnError || child.exitCode !== null || child.signalCode !== null) break;
    try {
      // INFO names the answering process, so a redis already on this port is not taken for ours.
      const info = await redisCommand(port, ['INFO', 'server'], 1_000);
      if (new RegExp(`^process_id:${child.pid}\\r?$`, 'm').test(info)) return child;
      last = `port ${port} is answered by another redis-server (in use)`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await terminate(child);
  let log = '';
  try {
    log = (await readFile(logFile, 'utf8')).trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    // no log written
  }
  throw new Error(`redis-server on port ${port} did not start: ${spawnError?.message ?? last}\n${stderr}${log}`);
}

export async function startRedis(options: { port?: number } = {}): Promise<RedisServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-redis-'));
  let port = options.port ?? (await freePort());
  let child: ChildProcess;
  try {
    // A port picked free may be taken before redis binds it: pick again (only when we picked it).
    for (let attempt = 1; ; attempt++) {
      try {
        child = await spawnRedis(port, dir);
        break;
      } catch (error) {
        if (options.port !== undefined || attempt >= 3 || !/in use/i.test((error as Error).message)) throw error;
        port = await freePort();
      }
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () =>
      (stopping ??= (async () => {
        await terminate(child);
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      })()),
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await waitForExit(child, STOP_TIMEOUT_MS);
    },
    restart: async () => {
      if (stopping) throw new Error('restart after stop()');
      await terminate(child);
      child = await spawnRedis(port, dir);
    },
  };
}

function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis-cli ${args.join(' ')} failed: ${stderr.trim() || stdout.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Three masters on 127.0.0.1, slots spread by `redis-cli --cluster create`, no replicas. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-redis-cluster-'));
  const children: ChildProcess[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(children.map((child) => terminate(child)));
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    // The cluster bus defaults to port + 10000, which may be taken or beyond 65535: pick it too.
    const ports = await freePorts(6);
    const nodes = [0, 1, 2].map((i) => ({ host: '127.0.0.1', port: ports[i]!, busPort: ports[i + 3]! }));
    for (const node of nodes) {
      children.push(
        await spawnRedis(node.port, dir, [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(dir, `nodes-${node.port}.conf`),
          '--cluster-port', String(node.busPort),
          '--cluster-node-timeout', '5000',
        ]),
      );
    }
    await redisCli(['--cluster', 'create', ...nodes.map((node) => `${node.host}:${node.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
    for (;;) {
      const infos = await Promise.all(nodes.map((node) => redisCommand(node.port, ['CLUSTER', 'INFO']).catch(() => '')));
      if (infos.every((info) => /cluster_state:ok/.test(info) && /cluster_known_nodes:3\b/.test(info))) break;
      if (Date.now() > deadline) throw new Error(`redis cluster not ok within ${CLUSTER_READY_TIMEOUT_MS} ms:\n${infos.join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    let stopping: Promise<void> | undefined;
    return {
      nodes: nodes.map(({ host, port }) => ({ host, port })),
      stop: () => (stopping ??= stopAll()),
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
