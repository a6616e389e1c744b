#!/usr/bin/env node
// Checks that the real servers the integration tests start are installed: Dovecot (IMAP, POP3, LMTP),
// Postfix, Redis and openssl, and the shared libraries that the interop suite's Cyrus and Courier link
// against (those two are not installed: they conflict with Dovecot, so test/support/debian-packages.ts
// unpacks their own packages). As root on a Debian-like machine it installs what is missing; otherwise
// it says what to install and exits 1. The tests start their own instances on random free ports from
// a temp dir, so a system Dovecot, Postfix or Redis left running by a package does not get in the way.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';

const TOOLS = ['dovecot', 'doveadm', 'postfix', 'redis-server', 'redis-cli', 'openssl'];
// Files that are not on any PATH: Dovecot's LMTP server (the test MTA delivers through it).
const FILES = ['/usr/lib/dovecot/lmtp'];
// What Cyrus 3.6 and Courier 5 (Debian 12) depend on beyond their unpacked packages, SASL's plugins among
// them (Cyrus's PLAIN logins against a sasldb), and what their test setup runs (nsenter, flock, perl).
const INTEROP_PACKAGES = [
  'libcurl4', 'libdb5.3', 'libgdbm6', 'libglib2.0-0', 'libgnutls30', 'libicu72', 'libjansson4', 'libjson-c5',
  'libldap-2.5-0', 'libpq5', 'libsasl2-2', 'libsasl2-modules', 'libsqlite3-0', 'libwrap0', 'libxml2', 'util-linux', 'perl',
];
const PACKAGES = ['dovecot-imapd', 'dovecot-pop3d', 'dovecot-lmtpd', 'postfix', 'redis-server', 'openssl', ...INTEROP_PACKAGES];
const INSTALL = `apt-get install -y ${PACKAGES.join(' ')}`;
// Postfix asks what kind of mail system to set up; "No configuration" installs it without writing a
// system main.cf or starting a system mailer (the tests run private instances with their own config).
const POSTFIX_SELECTION = 'postfix postfix/main_mailer_type select No configuration';

// dovecot and postfix are in /usr/sbin, which an ordinary user's PATH often lacks (the test support
// adds it too).
const SEARCH_DIRS = [
  ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean),
  '/usr/local/sbin',
  '/usr/sbin',
  '/sbin',
];

function find(tool) {
  for (const dir of SEARCH_DIRS) {
    const candidate = path.join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Packages dpkg does not list as installed (none where there is no dpkg: then only tools and files count). */
function uninstalled(packages) {
  if (find('dpkg-query') === undefined) return [];
  return packages.filter((name) => {
    const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
    return result.status !== 0 || !result.stdout.includes('install ok installed');
  });
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

// Without root the interop suite runs against Dovecot only (Cyrus and Courier need root), so their
// libraries are needed only as root.
const missing = () => [
  ...TOOLS.filter((tool) => find(tool) === undefined),
  ...FILES.filter((file) => !existsSync(file)),
  ...(isRoot ? uninstalled(INTEROP_PACKAGES) : []),
];

function fail(what, result) {
  console.error(`test prerequisites: ${what} failed (${result.error?.message ?? `exit ${result.status}`})`);
  process.exit(1);
}

/**
 * A system Postfix is never needed; with "No configuration" none is set up or started, but if one is
 * configured (an earlier install) and running, stop it so that only the tests' own instances run.
 */
function stopSystemPostfix(env) {
  const postfix = find('postfix');
  if (postfix === undefined || !existsSync('/etc/postfix/main.cf')) return;
  if (spawnSync(postfix, ['status'], { stdio: 'ignore', env }).status !== 0) return;
  console.log('test prerequisites: stopping the system Postfix the package started');
  const result = spawnSync(postfix, ['stop'], { stdio: 'inherit', env });
  if (result.status !== 0) fail('postfix stop', result);
}

let absent = missing();
if (absent.length > 0) {
  if (isRoot && find('apt-get')) {
    console.log(`test prerequisites: missing ${absent.join(', ')}; installing ${PACKAGES.join(' ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', NEEDRESTART_SUSPEND: '1' };
    const selections = spawnSync('debconf-set-selections', [], { input: `${POSTFIX_SELECTION}\n`, stdio: ['pipe', 'inherit', 'inherit'], env });
    if (selections.status !== 0) fail('debconf-set-selections', selections);
    for (const args of [['update'], ['install', '-y', ...PACKAGES]]) {
      const result = spawnSync('apt-get', args, { stdio: 'inherit', env });
      if (result.status !== 0) fail(`apt-get ${args.join(' ')}`, result);
    }
    stopSystemPostfix(env);
    absent = missing();
  }
}

if (absent.length > 0) {
  console.error(
    `test prerequisites: missing ${absent.join(', ')} (needed by the integration tests, which start real servers).\n` +
      'Install them with:\n' +
      `  echo "${POSTFIX_SELECTION}" | sudo debconf-set-selections\n` +
      `  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 ${INSTALL}\n` +
      '(on other systems: Dovecot 2.3 with IMAP, POP3 and LMTP, Postfix 3, Redis 7, OpenSSL; `npm run test:unit` needs none of them)',
  );
  process.exit(1);
}

console.log(`test prerequisites: ${[...TOOLS, ...FILES].join(', ')} and the interop suite's libraries present`);
