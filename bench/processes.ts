/**
 * Child processes: the HTTP servers the load is aimed at (the gateway, src/server.ts; bare Fastify
 * and the naive gateway, bench/children/), and workers driven over stdin/stdout (row (g)'s download
 * client). Each runs in its own Node process, so the load generator (autocannon, in the bench
 * process) never shares an event loop with what it measures. /proc readers for their memory, CPU
 * time and page faults are here too.
 *
 * TypeScript runs through tsx's loader (`node --import tsx`), straight from the working tree: no
 * build step to go stale, and a profile's frames point at the .ts sources. With `--profile` the
 * process also gets `--cpu-prof`, and writes its profile into bench/results/ when it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/ports.js';
import { waitForExit } from '../test/support/processes.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');

export interface ChildServer {
  name: string;
  url: string;
  pid: number;
  /** The profile this process writes at exit (with --profile), relative to the repo. */
  profilePath: string | undefined;
  /** SIGTERM (the gateway logs out of its sessions and exits), SIGKILL after a bound. */
  stop(): Promise<void>;
  logTail(lines?: number): Promise<string>;
}

export interface StartChildOptions {
  name: string;
  /** Script path relative to the repo root. */
  script: string;
  env: Record<string, string>;
  /** A path answering 200 once the process serves. */
  readyPath: string;
  profile?: boolean;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startChild(options: StartChildOptions): Promise<ChildServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `mailgw-bench-${options.name}-`));
  const logPath = path.join(dir, 'output.log');
  const port = await freePort();
  const profileName = `${options.name}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`;
  // Every thread writes a profile (tsx's loader runs in one of its own), named CPU.<date>.<time>.<pid>.<thread>...:
  // they go to the temp dir, and the main thread's (thread 0) is kept.
  const profileDir = path.join(dir, 'profiles');
  const profileArgs = options.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...profileArgs, '--import', 'tsx', options.script], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, ...options.env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  live.add(child);
  child.once('exit', () => live.delete(child));

  const url = `http://127.0.0.1:${port}`;
  const logTail = async (lines = 20): Promise<string> =>
    (await readFile(logPath, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-lines).join('\n');
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
        child.kill('SIGKILL');
        await waitForExit(child, STOP_TIMEOUT_MS);
      }
    }
    if (options.profile) await keepMainThreadProfile(profileDir, path.join(RESULTS_DIR, profileName));
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = await logTail();
      await stop();
      throw new Error(`${options.name} exited before it served (${child.exitCode ?? child.signalCode}):\n${tail}`);
    }
    const ok = await fetch(url + options.readyPath).then((res) => res.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      const tail = await logTail();
      await stop();
      throw new Error(`${options.name} did not answer ${options.readyPath} within ${READY_TIMEOUT_MS} ms:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    name: options.name,
    url,
    pid: child.pid!,
    profilePath: options.profile ? path.join('bench', 'results', profileName) : undefined,
    stop,
    logTail,
  };
}

export interface Worker {
  /** Sends one JSON command line and resolves the next JSON answer line. */
  ask<T>(command: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** A child that takes JSON commands on stdin and answers a JSON line each on stdout (its first line: ready). */
export async function startWorker(script: string, env: Record<string, string>): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => {
    const line = await lines.next();
    if (line.done) throw new Error(`${script} exited (${child.exitCode ?? child.signalCode})`);
    const value = JSON.parse(line.value) as T & { error?: string };
    if (value.error !== undefined) throw new Error(`${script}: ${value.error}`);
    return value;
  };
  await next();
  return {
    ask: async <T>(command: unknown): Promise<T> => {
      child.stdin!.write(`${JSON.stringify(command)}\n`);
      return next<T>();
    },
    stop: async () => {
      child.stdin!.end();
      if (!(await waitForExit(child, STOP_TIMEOUT_MS))) child.kill('SIGKILL');
    },
  };
}

async function keepMainThreadProfile(dir: string, target: string): Promise<void> {
  const files = await readdir(dir).catch(() => [] as string[]);
  const main = files.find((name) => /^CPU\.\d+\.\d+\.\d+\.0\./.test(name));
  if (main === undefined) return;
  await mkdir(path.dirname(target), { recursive: true });
  await copyFile(path.join(dir, main), target);
}

/** A field of /proc/<pid>/status in kB (VmRSS: resident now; VmHWM: the peak since start or reset). */
export async function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]);
}

/** Fields of /proc/<pid>/stat after the parenthesised command name (so field 3, state, is index 0). */
async function procStat(pid: number): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time (user + system) the process has used so far, in ms (fields 14 and 15, in clock ticks). */
export async function procCpuMs(pid: number): Promise<number> {
  const fields = await procStat(pid);
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** CPU time (user and system, ms) of each of the process's threads so far, by thread name (summed per name). */
export async function procThreadCpuMs(pid: number): Promise<Map<string, { userMs: number; systemMs: number }>> {
  const threads = new Map<string, { userMs: number; systemMs: number }>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue; // the thread ended meanwhile
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const entry = threads.get(name) ?? { userMs: 0, systemMs: 0 };
    entry.userMs += (Number(fields[11]) * 1000) / CLOCK_TICKS_PER_SECOND;
    entry.systemMs += (Number(fields[12]) * 1000) / CLOCK_TICKS_PER_SECOND;
    threads.set(name, entry);
  }
  return threads;
}

/** Minor page faults of the process so far (field 10): first touches of fresh memory. */
export async function procMinorFaults(pid: number): Promise<number> {
  return Number((await procStat(pid))[7]);
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** Resets the peak resident size (VmHWM) to the current one (Linux ≥ 4.0, `clear_refs` value 5). */
export async function resetPeakRss(pid: number): Promise<boolean> {
  return writeFile(`/proc/${pid}/clear_refs`, '5').then(
    () => true,
    () => false,
  );
}
