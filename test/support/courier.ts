/**
 * A real, throwaway Courier-IMAP 5 and Courier POP3 for the interop suite, beside the run's Dovecot. Its
 * Debian packages are unpacked, not installed (debian-packages.ts), and since its paths are compiled in
 * (`/etc/courier`, `/run/courier`, `/usr/lib/courier-authlib`) its daemons run in a private mount
 * namespace (`unshare -m`) where `/usr` is an overlay of the unpacked tree over the real one, `/etc` an
 * overlay whose upper folder is ours, and `/run` a folder of ours. Nothing outside the temp dir is touched,
 * and the mounts vanish with the namespace. Needs root.
 *
 * Users are userdb users (authuserdb) of uid 65534 with a Maildir in the temp dir.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { unpackedPackages } from './debian-packages.js';
import { sbinEnv, waitForGreeting, type DovecotUser } from './dovecot.js';
import { freePorts } from './ports.js';
import { waitForExit } from './processes.js';

export const COURIER_PACKAGES = [
  'courier-imap',
  'courier-pop',
  'courier-base',
  'courier-authlib',
  'courier-authdaemon',
  'courier-authlib-userdb',
  'libcourier-unicode4',
  'libidn12',
  'libltdl7',
  'libgamin0',
  'gamin',
  'libpcre3',
];

const NOBODY = { uid: 65534, gid: 65534 };

/** Plain data locating a running test Courier; serialisable (globalSetup hands it to workers). */
export interface CourierCoordinates {
  kind: 'courier';
  host: '127.0.0.1';
  imapPort: number;
  pop3Port: number;
  dir: string;
  /** A process inside the servers' mount namespace (for `nsenter`). */
  namespacePid: number;
}

export interface CourierServer extends CourierCoordinates {
  stop(): Promise<void>;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = sbinEnv(), input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { env }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export function courierMaildir(courier: Pick<CourierCoordinates, 'dir'>, username: string): string {
  return path.join(courier.dir, 'home', username, 'Maildir');
}

async function makeMaildir(folder: string): Promise<void> {
  for (const sub of ['', 'cur', 'new', 'tmp']) {
    await mkdir(path.join(folder, sub), { recursive: true, mode: 0o700 });
    await chown(path.join(folder, sub), NOBODY.uid, NOBODY.gid);
  }
}

/**
 * Adds a userdb user with an empty Maildir; usable at once (authuserdb rereads userdb.dat when it
 * changes). Concurrent calls from several workers are serialised by flock(1) inside the namespace.
 */
export async function addCourierUser(courier: CourierCoordinates, username: string, password: string): Promise<void> {
  if (!/^[A-Za-z0-9._-]+$/.test(username)) throw new Error(`addCourierUser: unsupported username ${JSON.stringify(username)}`);
  const home = path.join(courier.dir, 'home', username);
  await mkdir(home, { recursive: true });
  await chown(home, NOBODY.uid, NOBODY.gid);
  await makeMaildir(courierMaildir(courier, username));
  const hash = (await run('openssl', ['passwd', '-6', '-stdin'], sbinEnv(), password)).trim();
  const line = `${username}\tuid=${NOBODY.uid}|gid=${NOBODY.gid}|home=${home}|mail=${courierMaildir(courier, username)}|systempw=${hash}`;
  const script = 'printf "%s\\n" "$USERDB_LINE" >> /etc/courier/userdb && chmod 600 /etc/courier/userdb && /usr/sbin/makeuserdb';
  await run('nsenter', ['-t', String(courier.namespacePid), '-m', '--', 'flock', '/etc/courier/.add-user.lock', 'sh', '-c', script], {
    ...sbinEnv(),
    USERDB_LINE: line,
  });
}

export async function createCourierUser(courier: CourierCoordinates, prefix = 'user'): Promise<DovecotUser> {
  const user = { username: `${prefix}-${randomBytes(5).toString('hex')}`, password: randomBytes(9).toString('base64url') };
  await addCourierUser(courier, user.username, user.password);
  return user;
}

/**
 * The namespace's start script: mounts, then authdaemond, imapd and pop3d in the background with the
 * settings of Debian's /etc/courier/imapd and pop3d, but for the per-IP caps (Debian's 20 and 4): every
 * test connection comes from 127.0.0.1. Then it waits, holding the namespace, until it is killed.
 */
function startScript(root: string, dir: string, imapPort: number, pop3Port: number): string {
  return `set -e
mount -t overlay overlay -o lowerdir=${root}/usr:/usr,upperdir=${dir}/usr-upper,workdir=${dir}/usr-work /usr
mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc-upper,workdir=${dir}/etc-work /etc
mount --bind ${dir}/run /run
mkdir -p /run/courier/authdaemon
touch /etc/courier/userdb && chmod 600 /etc/courier/userdb && /usr/sbin/makeuserdb
/usr/sbin/authdaemond start
set -a; . /etc/courier/imapd; . /etc/courier/imapd-ssl; set +a
/usr/sbin/courierlogger -pid=/run/courier/imapd.pid -start -name=imapd /usr/sbin/couriertcpd -address=127.0.0.1 \\
  -maxprocs=400 -maxperip=300 -nodnslookup -noidentlookup ${imapPort} /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir
set -a; . /etc/courier/pop3d; . /etc/courier/pop3d-ssl; set +a
/usr/sbin/courierlogger -pid=/run/courier/pop3d.pid -start -name=pop3d /usr/sbin/couriertcpd -address=127.0.0.1 \\
  -maxprocs=100 -maxperip=50 -nodnslookup -noidentlookup ${pop3Port} /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir
echo started
exec sleep 2147483647
`;
}

const authdaemonrc = `authmodulelist="authuserdb"
daemons=5
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
`;

/**
 * The mount namespace `pid` is in (`mnt:[inode]`), read once while that process is known to be ours:
 * read again later, a reused pid could name a process of the host's namespace.
 */
function namespaceOf(pid: number): string {
  const namespace = readlinkSync(`/proc/${pid}/ns/mnt`);
  if (namespace === readlinkSync('/proc/self/ns/mnt')) throw new Error(`courier: process ${pid} is not in a namespace of its own`);
  return namespace;
}

/** Every process in `namespace` (the daemons detach from the start script). */
function processesInNamespace(namespace: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/mnt`) === namespace) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function killNamespace(namespace: string): void {
  for (const member of processesInNamespace(namespace)) {
    try {
      process.kill(member, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}

const liveNamespaces = new Set<string>();
process.once('exit', () => {
  for (const namespace of liveNamespaces) killNamespace(namespace);
});

export async function startCourier(options: { users?: DovecotUser[] } = {}): Promise<CourierServer> {
  const root = await unpackedPackages('courier', COURIER_PACKAGES);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-courier-'));
  let holder: ChildProcess | undefined;
  let namespace: string | undefined;
  try {
    for (const sub of ['etc-upper/courier', 'etc-work', 'usr-upper', 'usr-work', 'run', 'home']) await mkdir(path.join(dir, sub), { recursive: true });
    // The mail processes (uid 65534) must reach the homes below the temp dir.
    await run('chmod', ['755', dir]);
    for (const file of ['imapd', 'imapd-ssl', 'pop3d', 'pop3d-ssl']) {
      await run('cp', [path.join(root, 'etc', 'courier', file), path.join(dir, 'etc-upper', 'courier', file)]);
    }
    await writeFile(path.join(dir, 'etc-upper', 'courier', 'authdaemonrc'), authdaemonrc);
    const [imapPort, pop3Port] = (await freePorts(2)) as [number, number];
    await writeFile(path.join(dir, 'start.sh'), startScript(root, dir, imapPort, pop3Port));
    let output = '';
    holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', path.join(dir, 'start.sh')], { env: sbinEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    holder.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    holder.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let exited: Error | undefined;
    holder.once('exit', (code, signal) => {
      exited = new Error(`courier start script exited (${signal ?? code}): ${output.trim()}`);
    });
    const holderPid = holder.pid!;
    await waitForGreeting(imapPort, /^\* OK/, 15_000, () => exited);
    await waitForGreeting(pop3Port, /^\+OK/, 15_000, () => exited);
    if (exited) throw exited;
    namespace = namespaceOf(holderPid);
    liveNamespaces.add(namespace);
    // The script's own pid runs `sleep` in the namespace once it has started everything.
    const coordinates: CourierCoordinates = { kind: 'courier', host: '127.0.0.1', imapPort, pop3Port, dir, namespacePid: holderPid };
    for (const user of options.users ?? []) await addCourierUser(coordinates, user.username, user.password);
    const running = holder;
    const own = namespace;
    return {
      ...coordinates,
      stop: async () => {
        liveNamespaces.delete(own);
        killNamespace(own);
        await waitForExit(running, 5_000);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (namespace !== undefined) {
      liveNamespaces.delete(namespace);
      killNamespace(namespace);
    } else if (holder?.pid !== undefined && holder.exitCode === null) {
      // Started, but not through to its greeting: its namespace is read while it still runs.
      try {
        killNamespace(namespaceOf(holder.pid));
      } catch {
        // it had not left the host's namespace yet, or has exited
      }
    }
    holder?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
