/**
 * Single HTTP calls the rows time one by one: a GET with its latency, and a download read as fast as
 * possible or throttled (pausing the response applies TCP backpressure all the way to the gateway).
 */
import { execFile } from 'node:child_process';
import http from 'node:http';

export interface TimedResponse {
  status: number;
  ms: number;
  body: Buffer;
  headers: http.IncomingHttpHeaders;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

export function timedGet(url: string): Promise<TimedResponse> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start, body: Buffer.concat(chunks), headers: res.headers }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** A POST over the same kept-alive connections (node:http: less client work per call than fetch, which the rows would time too). */
export function timedPost(url: string, body: string, headers: Record<string, string>): Promise<TimedResponse> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface DownloadResult {
  status: number;
  bytes: number;
  seconds: number;
}

/**
 * Reads the whole body of `url`, counting bytes, keeping none. With `bytesPerSecond` the reader
 * pauses whenever it is ahead of that rate.
 */
export function download(url: string, options: { bytesPerSecond?: number; signal?: AbortSignal } = {}): Promise<DownloadResult> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    // A fresh connection (no agent): a paused download must not hold a socket other calls want.
    const req = http.get(url, { agent: false, signal: options.signal }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        const rate = options.bytesPerSecond;
        if (rate === undefined) return;
        const aheadMs = (bytes / rate) * 1000 - (performance.now() - start);
        if (aheadMs > 5) {
          res.pause();
          setTimeout(() => res.resume(), aheadMs);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, seconds: (performance.now() - start) / 1000 }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * The same download read by curl, a process of its own that reads faster than Node's HTTP client
 * does here (about 2x on the bench machine), so the figure is the gateway's and not the client's.
 * Resolves null when curl is not installed.
 */
export function curlDownload(url: string): Promise<DownloadResult | null> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], (error, stdout) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') return resolve(null);
      if (error) return reject(error);
      const [status, bytes, seconds] = stdout.trim().split(' ').map(Number) as [number, number, number];
      resolve({ status, bytes, seconds });
    });
  });
}
