/**
 * Starts a real, throwaway Dovecot 2.3 (IMAP + POP3) for tests: a self-contained config in a fresh temp
 * dir, a self-signed certificate, random free ports on 127.0.0.1, passwd-file users and Maildir storage.
 * It reads nothing from /etc/dovecot, so several instances run side by side.
 *
 * The operations tests need from a worker process (addUser, seedMaildir, doveadm) are standalone
 * functions over the coordinates (`DovecotCoordinates`), so the server object returned here and the
 * helpers of servers.ts share one implementation.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, renameSync, writeFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './ports.js';
import { waitForExit } from './processes.js';

export interface DovecotUser {
  username: string;
  password: string;
}

/** Plain data that locates a running test Dovecot; serialisable, so globalSetup can hand it to workers. */
export interface DovecotCoordinates {
  host: '127.0.0.1';
  imapPort: number;
  imapsPort: number;
  pop3Port: number;
  pop3sPort: number;
  /** The self-signed certificate (PEM): use as `tls.ca` with `servername: 'localhost'`. */
  caPem: string;
  /** The temp dir holding config, users, homes, logs. */
  dir: string;
  confPath: string;
  /** Present when started with `mta: true`: the sockets a test MTA (test/support/mta.ts) talks to. */
  mta?: DovecotMtaSockets;
}

/** Unix sockets of a test Dovecot for an MTA, both mode 0666 (Postfix's processes run as `postfix`). */
export interface DovecotMtaSockets {
  /** LMTP (RFC 2033) delivery into the users' INBOXes; recipients are `user@any.domain`. */
  lmtpSocket: string;
  /** Dovecot's SASL auth protocol, for Postfix's `smtpd_sasl_type = dovecot`. */
  authSocket: string;
}

export interface SeedOptions {
  /** Mailbox to write into; default INBOX. Hierarchy may be written `A/B` (stored as maildir++ `.A.B`). */
  mailbox?: string;
  /** Maildir flag letters: D draft, F flagged, P passed (forwarded), R replied, S seen, T trashed. */
  flags?: string;
}

/** The operations on a test Dovecot, bound to its coordinates. */
export interface DovecotOps {
  /** Adds a user (its own passwd-file, read at the next login) and creates its home dir. Usable at once. */
  addUser(username: string, password: string, options?: { ownUid?: number }): Promise<void>;
  /** Adds a user with a random name (prefix + hex) and password: one per test file keeps files apart. */
  createUser(prefix?: string): Promise<DovecotUser>;
  /** Path of the user's Maildir (INBOX). */
  maildir(username: string): string;
  /** Writes messages straight into Maildir `cur/`, owned by the mail uid; see `seedMaildir`. */
  seedMaildir(username: string, messages: Array<Buffer | string>, options?: SeedOptions): Promise<void>;
  /** Runs `doveadm -c <conf> ...args` and resolves its stdout. */
  doveadm(args: string[]): Promise<string>;
}

/** The plain data of a running server (what crosses from globalSetup to the workers). */
export function coordinatesOf(dovecot: DovecotCoordinates): DovecotCoordinates {
  return {
    host: dovecot.host,
    imapPort: dovecot.imapPort,
    imapsPort: dovecot.imapsPort,
    pop3Port: dovecot.pop3Port,
    pop3sPort: dovecot.pop3sPort,
    caPem: dovecot.caPem,
    dir: dovecot.dir,
    confPath: dovecot.confPath,
    ...(dovecot.mta ? { mta: dovecot.mta } : {}),
  };
}

export interface DovecotServer extends DovecotCoordinates, DovecotOps {
  /** Users created at start (more may have been added since through addUser). */
  users: DovecotUser[];
  /** Stops Dovecot and its children and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops the master (every session with it) and starts it again on the same ports, config and
   * mail, after `downMs` with nothing listening: what a server restart looks like to its clients.
   */
  restart(downMs?: number): Promise<void>;
}

export interface StartDovecotOptions {
  users?: DovecotUser[];
  /** Dovecot's per-user-and-IP connection cap (its default is 10); default here 50. */
  maxUserIpConnections?: number;
  /** Settings appended to the generated config (e.g. an `imap_capability` without CONDSTORE). */
  extraConfig?: string;
  /** Also serve LMTP and an auth socket for a test MTA (see `DovecotMtaSockets`); default false. */
  mta?: boolean;
  /**
   * Also take OAuth2 logins (XOAUTH2, OAUTHBEARER), each token checked by RFC 7662 introspection at
   * this URL (test/support/oauth2-provider.ts); passwords keep working for PLAIN and LOGIN.
   */
  oauth2IntrospectionUrl?: string;
  /** The OAuth2 mechanisms offered with `oauth2IntrospectionUrl`; default both, `xoauth2 oauthbearer`. */
  oauth2Mechanisms?: string;
}

/** What a server without CONDSTORE or QRESYNC offers (as Courier does, or Dovecot configured so). */
export const NO_CONDSTORE_CAPABILITIES =
  'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS MOVE ESEARCH SPECIAL-USE NAMESPACE UNSELECT';

/** A Dovecot of the test's own that offers neither CONDSTORE nor QRESYNC. */
export function startDovecotWithoutCondstore(users: DovecotUser[]): Promise<DovecotServer> {
  return startDovecot({ users, extraConfig: `\nprotocol imap {\n  imap_capability = ${NO_CONDSTORE_CAPABILITIES}\n}\n` });
}

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const SEED_BATCH_SIZE = 1_000;

/** dovecot lives in /usr/sbin, which an ordinary user's PATH may lack. */
export function sbinEnv(): NodeJS.ProcessEnv {
  const parts = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!parts.includes(extra)) parts.push(extra);
  return { ...process.env, PATH: parts.join(path.delimiter) };
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Who owns mail. As root, Dovecot refuses uid 0 for mail, so 65534 (nobody/nogroup); as an ordinary
 * user everything (login, internal and mail processes) runs as that user.
 */
function mailOwner(): { uid: number; gid: number } {
  if (isRoot) return { uid: 65534, gid: 65534 };
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

function primaryGroupName(): string {
  return execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
}

/**
 * One passwd-file per user (`passwd/<name>`): Dovecot checks a passwd-file for changes at most once a
 * second, so a user appended to a shared file within the second of a lookup would stay unknown for up
 * to a second; a file it has never opened is read at the first lookup.
 */
const passwdFile = (dir: string, username: string): string => path.join(dir, 'passwd', username);
const homeOf = (dir: string, username: string): string => path.join(dir, 'home', username);

export function maildirPath(dovecot: Pick<DovecotCoordinates, 'dir'>, username: string): string {
  return path.join(homeOf(dovecot.dir, username), 'Maildir');
}

/** Creates one directory level owned by the mail uid; an existing one is left as it is. */
async function ensureMailDir(dirPath: string): Promise<void> {
  try {
    await mkdir(dirPath, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw error;
  }
  const { uid, gid } = mailOwner();
  await chown(dirPath, uid, gid);
}

/** Creates a maildir (cur/new/tmp), and for a sub-folder the `maildirfolder` marker. */
async function ensureMaildirTree(folder: string, subfolder: boolean): Promise<void> {
  await ensureMailDir(folder);
  await Promise.all(['cur', 'new', 'tmp'].map((sub) => ensureMailDir(path.join(folder, sub))));
  if (subfolder) {
    const marker = path.join(folder, 'maildirfolder');
    await writeFile(marker, '', { flag: 'a', mode: 0o600 });
    const { uid, gid } = mailOwner();
    await chown(marker, uid, gid);
  }
}

/**
 * `ownUid` (honoured as root only): the user's mail processes run under this uid instead of the shared
 * mail uid. The kernel caps inotify instances per uid (fs.inotify.max_user_instances, 128 by default),
 * and Dovecot's IDLE falls back to polling every `mailbox_idle_check_interval` once they run out; the
 * bench's 1,000 watched users each get a uid of their own so that IDLE stays push-driven. Must be above
 * `first_valid_uid` (the shared mail uid).
 */
export async function addUser(dovecot: Pick<DovecotCoordinates, 'dir'>, username: string, password: string, options: { ownUid?: number } = {}): Promise<void> {
  // passwd-file fields are colon-separated with no escaping.
  if (!/^[A-Za-z0-9._@+-]+$/.test(username)) throw new Error(`addUser: unsupported username ${JSON.stringify(username)}`);
  if (/[:\r\n]/.test(password) || password === '') throw new Error('addUser: the password must be non-empty without ":" or newlines');
  const owner = mailOwner();
  const gid = owner.gid;
  const uid = isRoot && options.ownUid !== undefined ? options.ownUid : owner.uid;
  const home = homeOf(dovecot.dir, username);
  await ensureMailDir(home);
  if (uid !== owner.uid) await chown(home, uid, gid);
  // The explicit {PLAIN} prefix keeps a password that starts with "{" from being read as a scheme.
  // 'wx': a user is added once (a rewritten file could be served from Dovecot's copy for a second).
  // 0644: the auth process runs as the internal user (dovecot) and must read it.
  try {
    await writeFile(passwdFile(dovecot.dir, username), `${username}:{PLAIN}${password}:${uid}:${gid}::${home}::\n`, { flag: 'wx', mode: 0o644 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`addUser: ${username} exists already`);
    throw error;
  }
}

export async function createUser(dovecot: Pick<DovecotCoordinates, 'dir'>, prefix = 'user'): Promise<DovecotUser> {
  const user = { username: `${prefix}-${randomBytes(5).toString('hex')}`, password: randomBytes(9).toString('base64url') };
  await addUser(dovecot, user.username, user.password);
  return user;
}

let seedSequence = 0;

/** RFC822.SIZE as IMAP reports it: bare LFs count as CRLF. Goes into the file name as W=. */
function virtualSize(data: Buffer): number {
  let size = data.length;
  for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) if (i === 0 || data[i - 1] !== 13) size++;
  return size;
}

/**
 * Writes message files straight into a Maildir, the fast way to fill a mailbox (100,000 messages in
 * a few seconds); Dovecot assigns UIDs, in file-name order, at its next sync. Each file goes to tmp/, is
 * chowned to the mail uid and renamed into cur/, so a concurrent reader never sees half a file. Names
 * carry S= (bytes) and W= (size with CRLF) as Dovecot's own do, so sizes need no file reads. Bytes are
 * written as given (bare LF stays bare LF).
 */
export async function seedMaildir(
  dovecot: Pick<DovecotCoordinates, 'dir'>,
  username: string,
  messages: Array<Buffer | string>,
  options: SeedOptions = {},
): Promise<void> {
  const flags = [...new Set(options.flags ?? '')].sort().join('');
  if (!/^[A-Z]*$/.test(flags)) throw new Error(`seedMaildir: flags are maildir letters such as "S" or "FS", got ${JSON.stringify(options.flags)}`);
  const root = maildirPath(dovecot, username);
  const home = path.dirname(root);
  await ensureMailDir(home);
  await ensureMaildirTree(root, false);
  const mailbox = options.mailbox ?? 'INBOX';
  let folder = root;
  if (mailbox.toUpperCase() !== 'INBOX') {
    const name = mailbox.split('/').join('.');
    if (name.startsWith('.') || name.includes('..')) throw new Error(`seedMaildir: bad mailbox ${JSON.stringify(mailbox)}`);
    folder = path.join(root, `.${name}`);
    await ensureMaildirTree(folder, true);
  }
  const { uid, gid } = mailOwner();
  // A fixed-width sequence after one timestamp keeps names, and so UIDs, in the order given.
  const stamp = Date.now();
  const host = os.hostname().replace(/[/:]/g, '_');
  // Synchronous calls in batches: about 6x faster than one promise per file (those queue on libuv's
  // four-thread pool), and yielding between batches keeps the event loop responsive.
  for (let start = 0; start < messages.length; start += SEED_BATCH_SIZE) {
    for (const message of messages.slice(start, start + SEED_BATCH_SIZE)) {
      const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
      const seq = String(seedSequence++).padStart(9, '0');
      const base = `${stamp}.P${process.pid}Q${seq}.${host},S=${data.length},W=${virtualSize(data)}`;
      const tmpPath = path.join(folder, 'tmp', base);
      writeFileSync(tmpPath, data, { mode: 0o600 });
      chownSync(tmpPath, uid, gid);
      renameSync(tmpPath, path.join(folder, 'cur', `${base}:2,${flags}`));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export function doveadm(dovecot: Pick<DovecotCoordinates, 'confPath'>, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('doveadm', ['-c', dovecot.confPath, ...args], { env: sbinEnv(), maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`doveadm ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** The operations bound to one server's coordinates. */
export function dovecotOps(dovecot: DovecotCoordinates): DovecotOps {
  return {
    addUser: (username, password, options) => addUser(dovecot, username, password, options),
    createUser: (prefix) => createUser(dovecot, prefix),
    maildir: (username) => maildirPath(dovecot, username),
    seedMaildir: (username, messages, options) => seedMaildir(dovecot, username, messages, options),
    doveadm: (args) => doveadm(dovecot, args),
  };
}

function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: sbinEnv() }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve();
    });
  });
}

interface Ports {
  imap: number;
  imaps: number;
  pop3: number;
  pop3s: number;
}

/** sun_path is 108 bytes with the terminating NUL (unix(7)): a longer path cannot be bound. */
const MAX_SOCKET_PATH_BYTES = 107;

function mtaSockets(dir: string): DovecotMtaSockets {
  const sockets = { lmtpSocket: path.join(dir, 'run', 'lmtp-mta'), authSocket: path.join(dir, 'run', 'auth-mta') };
  for (const socket of Object.values(sockets)) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`startDovecot: socket path ${socket} is longer than ${MAX_SOCKET_PATH_BYTES} bytes; set TMPDIR to a shorter dir`);
    }
  }
  return sockets;
}

/**
 * LMTP and an auth socket for a test MTA, both in base_dir. LMTP recipients are addresses
 * (`bob@example.com`); `%Ln` looks up the local part (`bob`), which is the passwd-file name. Scoped to
 * LMTP: IMAP and POP3 logins (and SMTP AUTH through auth-mta) keep the full name, as before.
 */
function mtaConfigText(): string {
  return `
# A test MTA delivers over LMTP and checks SMTP AUTH here (test/support/mta.ts).
protocols = $protocols lmtp
protocol lmtp {
  auth_username_format = %Ln
}
service lmtp {
  unix_listener lmtp-mta {
    mode = 0666
  }
}
service auth {
  unix_listener auth-mta {
    mode = 0666
  }
}
`;
}

/** Dovecot's oauth2 passdb settings (the `args` file): introspection by POST, the token's `username` is the login. */
function oauth2ConfigText(introspectionUrl: string): string {
  return `introspection_mode = post
introspection_url = ${introspectionUrl}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
`;
}

function configText(dir: string, ports: Ports, maxUserIpConnections: number, oauth2: string | null): string {
  const { uid } = mailOwner();
  const me = os.userInfo().username;
  // As root the package's users run login and internal processes; otherwise this user runs all, and
  // the login processes cannot chroot.
  const processUsers = isRoot
    ? ['default_internal_user = dovecot', 'default_login_user = dovenull']
    : [`default_internal_user = ${me}`, `default_internal_group = ${primaryGroupName()}`, `default_login_user = ${me}`];
  const noChroot = isRoot ? '' : '  chroot =\n';
  const specialUse = (name: string, flag: string): string =>
    `  mailbox ${name} {\n    special_use = \\${flag}\n    auto = subscribe\n  }\n`;
  return `# Generated by test/support/dovecot.ts: a throwaway test server; reads nothing from /etc/dovecot.
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
${processUsers.join('\n')}
listen = 127.0.0.1
protocols = imap pop3

ssl = yes
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login${oauth2 !== null ? ` ${oauth2}` : ''}
# A failed login answers at once instead of after the default 2 s.
auth_failure_delay = 0
${
  oauth2
    ? `
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${dir}/oauth2.conf.ext
}
`
    : ''
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd/%u${oauth2 ? '\n  mechanisms = plain login' : ''}
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/passwd/%u
}
first_valid_uid = ${uid}
last_valid_uid = 0
first_valid_gid = 0

mail_location = maildir:~/Maildir
mail_max_userip_connections = ${maxUserIpConnections}
mail_fsync = never
# IDLE and NOTIFY learn of changes through inotify; every mail process runs as one uid here, and
# the kernel's fs.inotify.max_user_instances (128 by default) runs out when many sessions watch at
# once (a busy test run, the bench). Dovecot then looks at the mailbox every this often instead.
mailbox_idle_check_interval = 1 secs
pop3_uidl_format = %08Xu%08Xv

namespace inbox {
  inbox = yes
${specialUse('Sent', 'Sent')}${specialUse('Drafts', 'Drafts')}${specialUse('Trash', 'Trash')}${specialUse('Junk', 'Junk')}${specialUse('Archive', 'Archive')}}

service imap-login {
${noChroot}  inet_listener imap {
    port = ${ports.imap}
  }
  inet_listener imaps {
    port = ${ports.imaps}
    ssl = yes
  }
}
service pop3-login {
${noChroot}  inet_listener pop3 {
    port = ${ports.pop3}
  }
  inet_listener pop3s {
    port = ${ports.pop3s}
    ssl = yes
  }
}
# No auth penalty: after a failed login anvil delays every later login from that IP (up to 15 s), so a
# test trying a wrong password would slow the logins of all files running beside it. The auth process
# skips the penalty when it cannot open this socket.
service anvil {
${noChroot}  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;
}

/**
 * Connects until the server greets with a line matching `ok` that is not Dovecot's
 * "Waiting for authentication process" (sent while the auth process is still starting).
 */
export async function waitForGreeting(port: number, ok: RegExp, timeoutMs = READY_TIMEOUT_MS, exited?: () => Error | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const failure = exited?.();
    if (failure) throw failure;
    const line = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      let buffer = '';
      const finish = (result: string): void => {
        socket.destroy();
        resolve(result);
      };
      socket.setTimeout(Math.max(100, Math.min(2_000, deadline - Date.now())), () => finish(`timeout (${buffer.trim() || 'silent'})`));
      socket.on('error', (error) => finish(error.message));
      socket.on('close', () => finish(`closed (${buffer.trim()})`));
      socket.on('data', (chunk) => {
        buffer += chunk.toString('latin1');
        let newline: number;
        while ((newline = buffer.indexOf('\n')) !== -1) {
          const greeting = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          // The real greeting may follow the "Waiting" one on the same connection.
          if (ok.test(greeting) && !/Waiting for authentication/i.test(greeting)) return finish('');
          last = greeting;
        }
      });
    });
    if (line === '') return;
    last = line || last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no ready greeting on port ${port} within ${timeoutMs} ms (last: ${last})`);
}

// Safety net: if the test process exits without stop(), stop the masters (their children follow).
const liveMasters = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveMasters.add(child);
  child.once('exit', () => liveMasters.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const master of liveMasters) master.kill('SIGTERM');
    });
  }
}

async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function startDovecot(options: StartDovecotOptions = {}): Promise<DovecotServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-dovecot-'));
  try {
    // Mail processes run as the mail uid and must be able to reach their homes below this dir.
    await chmod(dir, 0o755);
    await mkdir(path.join(dir, 'home'), { mode: 0o755 });
    await mkdir(path.join(dir, 'passwd'), { mode: 0o755 });
    // An EC key is generated in milliseconds (RSA takes a noticeable fraction of a second).
    await run(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem',
        '-out', 'cert.pem', '-days', '7', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      dir,
    );
    const caPem = await readFile(path.join(dir, 'cert.pem'), 'utf8');
    const users = [...(options.users ?? [])];
    for (const user of users) await addUser({ dir }, user.username, user.password);
    const confPath = path.join(dir, 'dovecot.conf');
    const mta = options.mta ? mtaSockets(dir) : undefined;
    if (options.oauth2IntrospectionUrl !== undefined) await writeFile(path.join(dir, 'oauth2.conf.ext'), oauth2ConfigText(options.oauth2IntrospectionUrl), { mode: 0o644 });

    // Ports are picked free, then bound by Dovecot: if another process took one in between, retry.
    for (let attempt = 1; ; attempt++) {
      const [imap, imaps, pop3, pop3s] = (await freePorts(4)) as [number, number, number, number];
      await writeFile(
        confPath,
        configText(dir, { imap, imaps, pop3, pop3s }, options.maxUserIpConnections ?? 50, options.oauth2IntrospectionUrl !== undefined ? (options.oauth2Mechanisms ?? 'xoauth2 oauthbearer') : null) + (mta ? mtaConfigText() : '') + (options.extraConfig ?? ''),
      );
      let master: ChildProcess = spawn('dovecot', ['-F', '-c', confPath], { cwd: dir, env: sbinEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      track(master);
      let output = '';
      const collect = (chunk: Buffer): void => {
        if (output.length < 16_384) output += chunk.toString('utf8');
      };
      master.stdout?.on('data', collect);
      master.stderr?.on('data', collect);
      let spawnError: Error | undefined;
      master.once('error', (error) => (spawnError = error));
      const exited = (): Error | undefined =>
        spawnError ?? (master.exitCode !== null || master.signalCode !== null ? new Error(`dovecot exited (${master.exitCode ?? master.signalCode})`) : undefined);
      try {
        await waitForGreeting(imap, /^\* OK/, READY_TIMEOUT_MS, exited);
        await waitForGreeting(pop3, /^\+OK/, READY_TIMEOUT_MS, exited);
      } catch (error) {
        master.kill('SIGTERM');
        await waitForExit(master, STOP_TIMEOUT_MS);
        const log = await tail(path.join(dir, 'dovecot.log'));
        if (attempt < 3 && /Address already in use/.test(log + output)) continue;
        throw new Error(`Dovecot did not start: ${(error as Error).message}\n${output}${log}`);
      }

      const coordinates: DovecotCoordinates = {
        host: '127.0.0.1', imapPort: imap, imapsPort: imaps, pop3Port: pop3, pop3sPort: pop3s, caPem, dir, confPath, ...(mta ? { mta } : {}),
      };
      let stopping: Promise<void> | undefined;
      const server: DovecotServer = {
        ...coordinates,
        ...dovecotOps(coordinates),
        users,
        addUser: async (username, password) => {
          await addUser(coordinates, username, password);
          users.push({ username, password });
        },
        createUser: async (prefix) => {
          const user = await createUser(coordinates, prefix);
          users.push(user);
          return user;
        },
        restart: async (downMs = 0) => {
          // A master that takes longer than STOP_TIMEOUT_MS to stop is SIGKILLed, and its imap
          // processes would live on with their clients: end every session first.
          await doveadm(coordinates, ['kick', '*']).catch(() => undefined);
          master.kill('SIGTERM');
          if (!(await waitForExit(master, STOP_TIMEOUT_MS))) {
            master.kill('SIGKILL');
            await waitForExit(master, STOP_TIMEOUT_MS);
          }
          if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
          master = spawn('dovecot', ['-F', '-c', confPath], { cwd: dir, env: sbinEnv(), stdio: ['ignore', 'ignore', 'ignore'] });
          track(master);
          await waitForGreeting(imap, /^\* OK/, READY_TIMEOUT_MS);
          await waitForGreeting(pop3, /^\+OK/, READY_TIMEOUT_MS);
        },
        stop: () =>
          (stopping ??= (async () => {
            // SIGTERM makes the master stop its children before it exits.
            master.kill('SIGTERM');
            if (!(await waitForExit(master, STOP_TIMEOUT_MS))) {
              master.kill('SIGKILL');
              await waitForExit(master, STOP_TIMEOUT_MS);
            }
            await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
          })()),
      };
      return server;
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    throw error;
  }
}
