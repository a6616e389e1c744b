/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, as `npm run bench -- --profile` writes them):
 *   npx tsx bench/profile-summary.ts bench/results/<name>.cpuprofile [top] [--skip=SECONDS] [--last=SECONDS]
 * prints the share of samples by self time per function, and by package/area (inclusive of
 * nothing: each sample counts once, for the frame at the top of the stack), the inclusive share of
 * functions, of the gateway's own (src/) functions, and the JavaScript callers of native frames
 * (socket writes show there). `--skip` leaves out the first seconds (start-up, module loading);
 * `--last` keeps only the last seconds (the rows that ran last in that process).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  /** Microseconds between consecutive samples. */
  timeDeltas: number[];
}

/** Which part of the stack a script belongs to. */
function area(url: string): string {
  if (url === '') return '(native/VM)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node core';
  const src = /\/(src\/[^/]+(?:\/[^/]+)?)\//.exec(url);
  if (src) return src[1]!;
  const file = /\/(src|bench)\/.*$/.exec(url);
  return file ? file[0].slice(1) : url;
}

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => args.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
const [file, topArg] = args.filter((arg) => !arg.startsWith('--'));
if (file === undefined) {
  process.stderr.write('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top] [--skip=SECONDS] [--last=SECONDS]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const totalUs = profile.timeDeltas.reduce((sum, delta) => sum + delta, 0);
const skipUs = Math.max(Number(flag('skip') ?? 0), flag('last') === undefined ? 0 : totalUs / 1e6 - Number(flag('last'))) * 1e6;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

const selfCounts = new Map<string, number>();
/** For samples in native code (writes, hashing, GC excluded): the nearest JavaScript caller outside node core. */
const nativeCallers = new Map<string, number>();
const areaCounts = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
let idle = 0;
let elapsedUs = 0;
for (const [index, sample] of profile.samples.entries()) {
  elapsedUs += profile.timeDeltas[index] ?? 0;
  if (elapsedUs < skipUs) continue;
  const node = byId.get(sample)!;
  const { functionName, url, lineNumber } = node.callFrame;
  total += 1;
  if (functionName === '(idle)') {
    idle += 1;
    continue;
  }
  const name = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src|bench)\//, '$1/')}:${lineNumber + 1}`;
  selfCounts.set(name, (selfCounts.get(name) ?? 0) + 1);
  areaCounts.set(area(url), (areaCounts.get(area(url)) ?? 0) + 1);
  if (url === '' && !functionName.startsWith('(')) {
    for (let id: number | undefined = parent.get(sample); id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (frame.url === '' || frame.url.startsWith('node:')) continue;
      const key = `${functionName} <- ${frame.functionName || '(anonymous)'} ${area(frame.url)}`;
      nativeCallers.set(key, (nativeCallers.get(key) ?? 0) + 1);
      break;
    }
  }
  // Inclusive per function name: each distinct name on the stack counts once.
  const seen = new Set<string>();
  for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
    const frame = byId.get(id)!.callFrame;
    const key = `${frame.functionName || '(anonymous)'} ${area(frame.url)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + 1);
  }
}
const busy = total - idle;
const pct = (n: number, of: number): string => `${((100 * n) / Math.max(1, of)).toFixed(1).padStart(5)}%`;
const print = (title: string, counts: Map<string, number>, limit: number): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [name, count] of [...counts].sort((x, y) => y[1] - x[1]).slice(0, limit)) {
    process.stdout.write(`  ${pct(count, busy)}  ${name}\n`);
  }
};
process.stdout.write(`${file}: ${total} samples, ${pct(idle, total).trim()} idle; shares below are of the ${busy} busy samples\n`);
print('self time by area', areaCounts, top);
print('self time by function', selfCounts, top);
print('inclusive time by function (each name once per stack)', inclusive, top);
print('inclusive time of the gateway\'s own functions (src/)', new Map([...inclusive].filter(([key]) => / src\//.test(key))), top);
print('inclusive time by caller of the hottest native frames', nativeCallers, top);
