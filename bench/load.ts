/**
 * Load and latency measurement.
 *
 * HTTP load comes from autocannon (in this process; the target is always another process). Its own
 * latency histogram keeps whole milliseconds, too coarse for calls that take one or two, so every
 * response's time (autocannon's hrtime-based float) is collected here and the percentiles computed
 * from all of them. Throughput counts 2xx answers only; anything else is reported, never hidden.
 *
 * A figure and its baseline are measured interleaved (`interleave`): a few rounds, each side in turn,
 * so that load from elsewhere on a shared machine falls on both alike; the rounds of a side are then
 * pooled into one set of figures.
 */
import autocannon from 'autocannon';
import { procCpuMs } from './processes.js';

/** One measured stretch: every 2xx latency, plus what went wrong and the CPU the target used. */
export interface Sample {
  latenciesMs: number[];
  seconds: number;
  connections: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  /** CPU time (user + system) of the process serving the calls. */
  cpuMs: number;
}

export interface LoadStats {
  samples: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  connections: number;
  seconds: number;
  /** 2xx answers per second. */
  rps: number;
  non2xx: number;
  errors: number;
  /**
   * CPU time the serving process spent per 2xx answer (from /proc, or process.cpuUsage in this
   * process): unlike latency and throughput it hardly moves when other processes compete for cores.
   */
  cpuMsPerRequest: number;
}

export type Side = (seconds: number) => Promise<Sample>;

/** Pools samples of one side into figures. */
export function summarize(samples: Sample[]): LoadStats {
  const sorted = Float64Array.from(samples.flatMap((s) => s.latenciesMs)).sort();
  const at = (q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
  const seconds = samples.reduce((sum, s) => sum + s.seconds, 0);
  const cpuMs = samples.reduce((sum, s) => sum + s.cpuMs, 0);
  return {
    samples: sorted.length,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    connections: samples[0]?.connections ?? 0,
    seconds,
    rps: sorted.length / Math.max(seconds, 1e-9),
    non2xx: samples.reduce((sum, s) => sum + s.non2xx, 0),
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    cpuMsPerRequest: cpuMs / Math.max(1, sorted.length),
  };
}

/**
 * Drives `url` (served by process `pid`) with `connections` keep-alive connections for `seconds`.
 * `headers` go with every request; `expectStatus` is the one answer that counts as success (say 304
 * for a conditional GET), else any 2xx does.
 */
export async function httpRun(
  url: string,
  pid: number,
  connections: number,
  seconds: number,
  options: { headers?: Record<string, string>; expectStatus?: number } = {},
): Promise<Sample> {
  const latenciesMs: number[] = [];
  let non2xx = 0;
  const ok = (status: number): boolean => (options.expectStatus !== undefined ? status === options.expectStatus : status >= 200 && status < 300);
  const cpuBefore = await procCpuMs(pid);
  const started = performance.now();
  const instance = autocannon({ url, connections, duration: seconds, timeout: 30, ...(options.headers ? { headers: options.headers } : {}) });
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    if (ok(statusCode)) latenciesMs.push(responseTimeMs);
    else non2xx += 1;
  });
  const result = await instance;
  const elapsed = (performance.now() - started) / 1000;
  const cpuMs = (await procCpuMs(pid)) - cpuBefore;
  return { latenciesMs, seconds: elapsed, connections, non2xx, errors: result.errors + result.timeouts, cpuMs };
}

/** Calls `call` back to back in this process for `seconds`; one latency per call. */
export async function callRun(call: () => Promise<unknown>, seconds: number): Promise<Sample> {
  const latenciesMs: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    const start = performance.now();
    await call();
    latenciesMs.push(performance.now() - start);
  }
  const cpu = process.cpuUsage(cpuBefore);
  return { latenciesMs, seconds: (performance.now() - started) / 1000, connections: 1, non2xx: 0, errors: 0, cpuMs: (cpu.user + cpu.system) / 1000 };
}

export interface Schedule {
  /** Measured seconds per side, split over the rounds. */
  seconds: number;
  rounds: number;
  /** Unmeasured seconds per side before the first round. */
  warmupSeconds: number;
}

/**
 * Measures every side in turn, `rounds` times (the order flips each round: A B, B A, A B, ...), after
 * `warmupSeconds` of each unmeasured; answers each side's samples, one per round, in round order.
 */
export async function alternate<K extends string>(sides: Record<K, Side>, schedule: Schedule): Promise<Record<K, Sample[]>> {
  const names = Object.keys(sides) as K[];
  const samples = Object.fromEntries(names.map((name) => [name, [] as Sample[]])) as Record<K, Sample[]>;
  if (schedule.warmupSeconds > 0) for (const name of names) await sides[name](schedule.warmupSeconds);
  const roundSeconds = schedule.seconds / schedule.rounds;
  for (let round = 0; round < schedule.rounds; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) samples[name].push(await sides[name](roundSeconds));
  }
  return samples;
}

/** Measures every side in turn (`alternate`) and pools each side's rounds into one set of figures. */
export async function interleave<K extends string>(sides: Record<K, Side>, schedule: Schedule): Promise<Record<K, LoadStats>> {
  const samples = await alternate(sides, schedule);
  return Object.fromEntries(Object.entries<Sample[]>(samples).map(([name, rounds]) => [name, summarize(rounds)])) as Record<K, LoadStats>;
}

/** The median: the middle value, or the mean of the two middle values for an even count (row cr's ratios). */
export function trueMedian(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The middle value (the lower one of the two middle values for an even count). */
export function median(values: number[]): number {
  return [...values].sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)]!;
}

/** A note for figures that saw anything but 2xx answers. */
export function failureNote(label: string, stats: LoadStats): string | undefined {
  if (stats.non2xx === 0 && stats.errors === 0) return undefined;
  return `${label}: ${stats.non2xx} non-2xx answers and ${stats.errors} errors/timeouts (excluded from the figures)`;
}

/** The failure notes of several figures. */
export function failureNotes(figures: Record<string, LoadStats>): string[] {
  return Object.entries(figures)
    .map(([label, stats]) => failureNote(label, stats))
    .filter((note): note is string => note !== undefined);
}
