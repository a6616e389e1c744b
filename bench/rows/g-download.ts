/**
 * Row (g): the large message's raw bytes through the gateway against imapflow's `download()`,
 * alternating, each read as fast as possible by a process of its own: curl for the gateway (Node's
 * HTTP client, in bench/children/downloader.ts, when curl is missing), and
 * bench/children/downloader.ts for imapflow.
 * The direct side asks for the same 1 MiB partial FETCHes the gateway makes (its default
 * `downloadChunkBytes`), so only the gateway's own work differs; `download()`'s default 64 KiB
 * chunks are measured once too, for a note. Also the gateway process's peak resident memory above
 * what it held just before each download (VmHWM after resetting it, and VmRSS sampled every 10 ms in
 * case the reset is not allowed).
 */
import { encodeImapMessageId } from '../../src/mail/message-id.js';
import { ALLOCATOR_ENV, type Gateway } from '../gateway.js';
import { curlDownload, type DownloadResult } from '../http.js';
import { median } from '../load.js';
import { procCpuMs, procMinorFaults, procStatusKb, resetPeakRss, startWorker, type Worker } from '../processes.js';
import { check, mb, type RowResult } from '../table.js';
import type { RowContext } from './context.js';

export const TITLE_G = 'raw download of a 25 MB message';

/** The gateway's partial FETCH size (ImapBackend's default downloadChunkBytes). */
const GATEWAY_CHUNK_BYTES = 1024 * 1024;
const IMAPFLOW_DEFAULT_CHUNK_BYTES = 64 * 1024;

export function rawUrl(ctx: RowContext, gateway: Gateway): string {
  const { uidValidity, uid } = ctx.servers.bigMessage;
  return `${gateway.url}/v1/accounts/${ctx.accounts.small}/mailboxes/INBOX/messages/${encodeImapMessageId(uidValidity, uid)}/raw`;
}

const mbps = (result: { bytes: number; seconds: number }): number => result.bytes / 1024 / 1024 / result.seconds;

interface GatewayRun {
  mbps: number;
  /** Peak resident bytes above those before the download. */
  rssGrowth: number;
  reader: 'curl' | 'node';
  /** The gateway's CPU time and minor page faults during the download. */
  cpuMs: number;
  minorFaults: number;
}

/** One gateway download: throughput, peak RSS growth, and what it cost the gateway process. */
async function viaGateway(client: Worker, url: string, pid: number, expectedBytes: number): Promise<GatewayRun> {
  const beforeKb = await procStatusKb(pid, 'VmRSS');
  const [faultsBefore, cpuBefore] = [await procMinorFaults(pid), await procCpuMs(pid)];
  const hwmReset = await resetPeakRss(pid);
  let sampledKb = beforeKb;
  const sampler = setInterval(() => {
    procStatusKb(pid, 'VmRSS').then((kb) => (sampledKb = Math.max(sampledKb, kb)), () => undefined);
  }, 10);
  try {
    const curl = await curlDownload(url);
    const result = curl ?? (await client.ask<DownloadResult>({ http: url }));
    if (result.status !== 200 || result.bytes !== expectedBytes) {
      throw new Error(`gateway download answered ${result.status} with ${result.bytes} of ${expectedBytes} bytes`);
    }
    const peakKb = Math.max(sampledKb, hwmReset ? await procStatusKb(pid, 'VmHWM') : 0);
    return {
      mbps: mbps(result),
      rssGrowth: (peakKb - beforeKb) * 1024,
      reader: curl ? ('curl' as const) : ('node' as const),
      cpuMs: (await procCpuMs(pid)) - cpuBefore,
      minorFaults: (await procMinorFaults(pid)) - faultsBefore,
    };
  } finally {
    clearInterval(sampler);
  }
}

export async function rowG(ctx: RowContext, gateway: Gateway): Promise<RowResult> {
  const { bigMessage, dovecot, small } = ctx.servers;
  const url = rawUrl(ctx, gateway);
  const client = await startWorker('bench/children/downloader.ts', {
    ...ALLOCATOR_ENV,
    IMAP_PORT: String(dovecot.imapPort),
    IMAP_USER: small.username,
    IMAP_PASS: small.password,
    UID: String(bigMessage.uid),
  });
  try {
    const direct = async (chunkSize = GATEWAY_CHUNK_BYTES): Promise<number> => {
      const result = await client.ask<{ bytes: number; seconds: number }>({ imap: chunkSize });
      if (result.bytes !== bigMessage.bytes) throw new Error(`direct download gave ${result.bytes} of ${bigMessage.bytes} bytes`);
      return mbps(result);
    };
    // Unmeasured rounds first (at least two, for the warm-up time): sessions open, the file in the
    // page cache, the stream paths compiled; the first downloads run at a fraction of full speed.
    const warmEnd = performance.now() + ctx.options.schedule.warmupSeconds * 1000;
    for (let round = 0; round < 2 || performance.now() < warmEnd; round++) {
      await viaGateway(client, url, gateway.pid, bigMessage.bytes);
      await direct();
    }
    const gatewayRuns: GatewayRun[] = [];
    const directRuns: number[] = [];
    // Alternating pairs for the measuring time (at least `downloadRuns` pairs); medians count.
    const measureEnd = performance.now() + ctx.options.schedule.seconds * 1000;
    for (let run = 0; run < ctx.options.downloadRuns || performance.now() < measureEnd; run++) {
      gatewayRuns.push(await viaGateway(client, url, gateway.pid, bigMessage.bytes));
      directRuns.push(await direct());
    }
    const defaultChunkMbps = await direct(IMAPFLOW_DEFAULT_CHUNK_BYTES);
    const gatewayMbps = median(gatewayRuns.map((r) => r.mbps));
    const directMbps = median(directRuns);
    const rssGrowth = Math.max(...gatewayRuns.map((r) => r.rssGrowth));
    return {
      id: 'g',
      title: TITLE_G,
      status: 'measured',
      measured:
        `gateway ${gatewayMbps.toFixed(0)} MB/s (median of ${gatewayRuns.length}, read by ${gatewayRuns[0]!.reader === 'curl' ? 'curl' : "Node's http"}), ` +
        `peak RSS +${mb(rssGrowth)}; CPU ${median(gatewayRuns.map((r) => r.cpuMs)).toFixed(0)} ms and ${median(gatewayRuns.map((r) => r.minorFaults))} page faults per download`,
      baseline: `imapflow download(), 1 MiB chunks: ${directMbps.toFixed(0)} MB/s`,
      checks: [
        check('(g) gateway MB/s / direct MB/s', gatewayMbps / directMbps, '>=', 0.8),
        check('(g) gateway peak RSS growth, MB', rssGrowth / 1024 / 1024, '<=', 64),
      ],
      notes: [`imapflow download() with its default 64 KiB chunks: ${defaultChunkMbps.toFixed(0)} MB/s (one run)`],
      raw: { gatewayRuns, directRuns, gatewayMbps, directMbps, defaultChunkMbps, rssGrowthBytes: rssGrowth, messageBytes: bigMessage.bytes },
    };
  } finally {
    await client.stop();
  }
}
