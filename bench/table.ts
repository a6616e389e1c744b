/**
 * The result table: one line per check (a row may have two, or none when it is a baseline), printed
 * as fixed-width text and written with every raw figure to bench/results/latest.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Schedule } from './load.js';
import type { RowId } from './options.js';

export interface Check {
  /** What is compared, e.g. "(b) p50 at 1 conn / (a) p50". */
  figure: string;
  /** The number judged against the target (a ratio, or MB for RSS growth). */
  value: number;
  target: { op: '<=' | '>='; limit: number };
  met: boolean;
}

export interface RowResult {
  id: RowId;
  title: string;
  status: 'measured' | 'skipped' | 'error' | 'not run';
  /** The measured figures, for people. */
  measured: string;
  /** What the figures are compared with, for people. */
  baseline: string;
  checks: Check[];
  notes: string[];
  /** Every number behind the line, for latest.json. */
  raw?: unknown;
}

export function check(figure: string, value: number, op: '<=' | '>=', limit: number): Check {
  return { figure, value, target: { op, limit }, met: op === '<=' ? value <= limit : value >= limit };
}

export const ms = (value: number): string => `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
export const rps = (value: number): string => `${Math.round(value).toLocaleString('en-US')} req/s`;
export const cpu = (msPerRequest: number): string => `CPU ${msPerRequest.toFixed(2)} ms/req`;
export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** A row that was not asked for, or (with `reason`) one that cannot run here. */
export function notRun(id: RowId, title: string, reason?: string): RowResult {
  return { id, title, status: 'not run', measured: reason === undefined ? '' : `not run: ${reason}`, baseline: '', checks: [], notes: reason === undefined ? [] : [reason] };
}

export function failed(id: RowId, title: string, error: unknown): RowResult {
  const message = error instanceof Error ? error.message : String(error);
  return { id, title, status: 'error', measured: `error: ${message.split('\n')[0]}`, baseline: '', checks: [], notes: [message] };
}

function verdict(row: RowResult, c: Check | undefined): string {
  if (row.status !== 'measured') return row.status;
  if (c === undefined) return 'baseline';
  return c.met ? 'met' : 'MISSED';
}

/** One line per check (a row without checks is one line): row, title, measured, baseline, figure, value, target, verdict. */
function tableCells(rows: RowResult[]): string[][] {
  return rows.flatMap((row) => {
    const checks = row.checks.length > 0 ? row.checks : [undefined];
    return checks.map((c, index) => [
      index === 0 ? `(${row.id})` : '',
      index === 0 ? row.title : '',
      index === 0 ? row.measured : '',
      index === 0 ? row.baseline : '',
      c?.figure ?? '',
      c === undefined ? '' : c.value.toFixed(c.value >= 10 ? 1 : 2),
      c === undefined ? '' : `${c.target.op === '<=' ? '≤' : '≥'} ${c.target.limit}`,
      verdict(row, c),
    ]);
  });
}

const HEADER = ['row', 'what', 'measured', 'compared with', 'figure', 'value', 'target', 'result'];

/** The table as text lines. */
export function formatTable(rows: RowResult[]): string {
  const lines = [HEADER, ...tableCells(rows)];
  const widths = HEADER.map((_, col) => Math.max(...lines.map((line) => line[col]!.length)));
  const text = lines.map((line) => line.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd());
  text.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const notes = rows.flatMap((row) => row.notes.map((note) => `(${row.id}) ${note}`));
  return [...text, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

/** The same table as Markdown (for docs/benchmarks.md). */
export function formatMarkdown(rows: RowResult[]): string {
  const body = tableCells(rows).map((cells) => {
    const last = cells.length - 1;
    if (cells[last] === 'MISSED') cells[last] = '**missed**';
    return `| ${cells.join(' | ')} |`;
  });
  return [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`, ...body].join('\n');
}

export interface RunInfo {
  quick: boolean;
  startedAt: string;
  seconds: number;
  schedule: Schedule;
  /** Extra environment the gateway processes ran with (--gateway-env). */
  gatewayEnv: Record<string, string>;
  largeMailboxMessages: number;
  setupMs: Record<string, number>;
  /** os.loadavg() at the start and the end: how busy the machine was with other work too. */
  loadAverage: { before: number[]; after: number[] };
  dovecotVersion: string;
  gitCommit: string;
  /** Whether src/ had uncommitted changes: the run measured the working tree. */
  srcChangedSinceCommit: boolean;
  profiles: string[];
}

export async function writeResults(file: string, rows: RowResult[], info: RunInfo): Promise<void> {
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
  };
  await mkdir(path.dirname(file), { recursive: true });
  const body = { ...info, machine, rows, table: formatTable(rows), markdown: formatMarkdown(rows) };
  await writeFile(file, `${JSON.stringify(body, null, 2)}\n`);
}
