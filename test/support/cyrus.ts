/**
 * A real, throwaway Cyrus IMAP 3.6 (IMAP + POP3) for the interop suite, beside the run's Dovecot. Its
 * Debian packages are unpacked, not installed (debian-packages.ts: installing them removes Dovecot), and
 * run from a private config in a temp dir on free loopback ports, as `nobody` (`CYRUS_USER`).
 *
 * Debian's namespace: personal folders below `INBOX.` with `.` as the separator. Users are SASL users in
 * a private sasldb; their mailboxes are created by the admin (`cyrus`) over IMAP, as Cyrus wants.
 * The facts behind this setup (libraries, `CYRUS_USER`, syslog, namespace) were checked on Debian 12.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { libraryPath, unpackedPackages } from './debian-packages.js';
import { sbinEnv, waitForGreeting, type DovecotUser } from './dovecot.js';
import { imapCommands, quoted } from './imap-commands.js';
import { freePorts } from './ports.js';
import { waitForExit } from './processes.js';

export const CYRUS_PACKAGES = [
  'cyrus-common',
  'cyrus-imapd',
  'cyrus-pop3d',
  'sasl2-bin',
  'libclamav12',
  'libical3',
  'libxapian30',
  'libzephyr4',
  'libpcre3',
  'libmspack0',
];

const NOBODY = { uid: 65534, gid: 65534 };
const ADMIN: DovecotUser = { username: 'cyrus', password: 'cyrus-admin-pw' };

/** Plain data locating a running test Cyrus; serialisable (globalSetup hands it to workers). */
export interface CyrusCoordinates {
  kind: 'cyrus';
  host: '127.0.0.1';
  imapPort: number;
  pop3Port: number;
  dir: string;
  /** The unpacked packages. */
  root: string;
  /** Its log (syslog lines) when a C compiler built the syslog shim; else absent. */
  logPath?: string;
}

export interface CyrusServer extends CyrusCoordinates {
  stop(): Promise<void>;
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { env: options.env ?? sbinEnv(), cwd: options.cwd }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

const bin = (root: string, name: string): string => path.join(root, 'usr', 'lib', 'cyrus', 'bin', name);
const cyrusEnv = (root: string): NodeJS.ProcessEnv => ({ ...sbinEnv(), LD_LIBRARY_PATH: libraryPath(root) });


/**
 * Adds a SASL user and creates its mailbox (`user.<name>`, its INBOX). Usable at once. Concurrent calls
 * from several workers are serialised by flock(1) on the sasldb.
 */
export async function addCyrusUser(cyrus: CyrusCoordinates, username: string, password: string): Promise<void> {
  if (!/^[a-z0-9_-]+$/.test(username)) throw new Error(`addCyrusUser: unsupported username ${JSON.stringify(username)} (lower case, no dots)`);
  const sasldb = path.join(cyrus.dir, 'sasldb2');
  await run('flock', [`${sasldb}.lock`, path.join(cyrus.root, 'usr', 'sbin', 'saslpasswd2'), '-p', '-c', '-f', sasldb, '-u', 'localhost', username], {
    env: cyrusEnv(cyrus.root),
    input: password,
  });
  await chown(sasldb, NOBODY.uid, NOBODY.gid);
  await imapCommands(cyrus.imapPort, [`LOGIN ${ADMIN.username} ${quoted(ADMIN.password)}`, `CREATE ${quoted(`user.${username}`)}`, 'LOGOUT']);
}

export async function createCyrusUser(cyrus: CyrusCoordinates, prefix = 'user'): Promise<DovecotUser> {
  const user = { username: `${prefix.toLowerCase()}-${randomBytes(5).toString('hex')}`, password: randomBytes(9).toString('base64url') };
  await addCyrusUser(cyrus, user.username, user.password);
  return user;
}

/** The syslog shim (syslog-to-file.c), built once into the cache; undefined without a C compiler. */
async function syslogShim(root: string): Promise<string | undefined> {
  const shim = path.join(root, '..', 'syslog-to-file.so');
  if (existsSync(shim)) return shim;
  const source = path.join(path.dirname(fileURLToPath(import.meta.url)), 'syslog-to-file.c');
  try {
    await run('cc', ['-shared', '-fPIC', '-O2', '-o', shim, source]);
    return shim;
  } catch {
    return undefined;
  }
}

function imapdConf(dir: string): string {
  return `# A test Cyrus of its own (test/support/cyrus.ts): nothing here is read from /etc.
configdirectory: ${dir}/conf
partition-default: ${dir}/partition
proc_path: ${dir}/proc
mboxname_lockpath: ${dir}/lock
servername: localhost
admins: ${ADMIN.username}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: ${dir}/sasldb2
sasl_mech_list: PLAIN LOGIN
lmtpsocket: ${dir}/conf/socket/lmtp
idlesocket: ${dir}/conf/socket/idle
notifysocket: ${dir}/conf/socket/notify
specialusealways: yes
# Debian's namespace: folders below INBOX., "." as the separator.
altnamespace: no
unixhierarchysep: no
`;
}

function cyrusConf(root: string, dir: string, imapPort: number, pop3Port: number): string {
  const conf = path.join(dir, 'imapd.conf');
  return `START {
  recover cmd="${bin(root, 'ctl_cyrusdb')} -C ${conf} -r"
}
SERVICES {
  imap cmd="${bin(root, 'imapd')} -C ${conf} -U 30" listen="127.0.0.1:${imapPort}" prefork=0 maxchild=200
  pop3 cmd="${bin(root, 'pop3d')} -C ${conf} -U 30" listen="127.0.0.1:${pop3Port}" prefork=0 maxchild=50
}
DAEMON {
  idled cmd="${bin(root, 'idled')} -C ${conf}"
}
`;
}

/**
 * The master runs in a process group of its own (`detached`): at shutdown it signals its whole group
 * (`kill(0, SIGTERM)` in Cyrus's master.c), which must not be the test runner's. Stopping signals the
 * group, so its services (imapd, pop3d, idled) go with it.
 */
function signalGroup(master: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (master.pid !== undefined) process.kill(-master.pid, signal);
  } catch {
    // gone already
  }
}

const liveMasters = new Set<ChildProcess>();
process.once('exit', () => {
  for (const master of liveMasters) signalGroup(master, 'SIGKILL');
});

export async function startCyrus(options: { users?: DovecotUser[] } = {}): Promise<CyrusServer> {
  const root = await unpackedPackages('cyrus', CYRUS_PACKAGES);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-cyrus-'));
  let master: ChildProcess | undefined;
  try {
    for (const sub of ['conf', 'conf/socket', 'partition', 'proc', 'lock']) await mkdir(path.join(dir, sub), { recursive: true });
    const [imapPort, pop3Port] = (await freePorts(2)) as [number, number];
    await writeFile(path.join(dir, 'imapd.conf'), imapdConf(dir));
    await writeFile(path.join(dir, 'cyrus.conf'), cyrusConf(root, dir, imapPort, pop3Port));
    await run(path.join(root, 'usr', 'sbin', 'saslpasswd2'), ['-p', '-c', '-f', path.join(dir, 'sasldb2'), '-u', 'localhost', ADMIN.username], {
      env: cyrusEnv(root),
      input: ADMIN.password,
    });
    const logPath = path.join(dir, 'syslog');
    await writeFile(logPath, '', { mode: 0o666 });
    await run('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, dir]);
    const shim = await syslogShim(root);
    const env: NodeJS.ProcessEnv = { ...cyrusEnv(root), CYRUS_USER: 'nobody', CYRUS_GROUP: 'nogroup', SYSLOG_FILE: logPath };
    if (shim) env.LD_PRELOAD = shim;
    master = spawn(bin(root, 'master'), ['-C', path.join(dir, 'imapd.conf'), '-M', path.join(dir, 'cyrus.conf'), '-p', path.join(dir, 'master.pid')], {
      env,
      stdio: 'ignore',
      detached: true,
    });
    liveMasters.add(master);
    let exited: Error | undefined;
    master.once('exit', (code, signal) => {
      liveMasters.delete(master!);
      exited = new Error(`cyrus master exited (${signal ?? code})`);
    });
    try {
      await waitForGreeting(imapPort, /^\* OK/, 15_000, () => exited);
      await waitForGreeting(pop3Port, /^\+OK/, 15_000, () => exited);
    } catch (error) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      throw new Error(`${(error as Error).message}\n${log.trimEnd().split('\n').slice(-20).join('\n')}`);
    }
    const coordinates: CyrusCoordinates = { kind: 'cyrus', host: '127.0.0.1', imapPort, pop3Port, dir, root, ...(shim ? { logPath } : {}) };
    for (const user of options.users ?? []) await addCyrusUser(coordinates, user.username, user.password);
    const running = master;
    return {
      ...coordinates,
      stop: async () => {
        liveMasters.delete(running);
        signalGroup(running, 'SIGTERM');
        if (!(await waitForExit(running, 5_000))) signalGroup(running, 'SIGKILL');
        // Services still ending their sessions.
        signalGroup(running, 'SIGKILL');
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (master) {
      liveMasters.delete(master);
      signalGroup(master, 'SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
