#!/usr/bin/env node
// Checks that the real servers the integration tests start are installed: Dovecot (IMAP, POP3),
// Redis and openssl. As root on a Debian-like machine it installs what is missing; otherwise it
// says what to install and exits 1. The tests start their own instances on random free ports from
// a temp dir, so a system Dovecot or Redis left running by a package does not get in the way.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const TOOLS = ['dovecot', 'doveadm', 'redis-server', 'redis-cli', 'openssl'];
const PACKAGES = ['dovecot-imapd', 'dovecot-pop3d', 'redis-server', 'openssl'];
const INSTALL = `apt-get install -y ${PACKAGES.join(' ')}`;

// dovecot is in /usr/sbin, which an ordinary user's PATH often lacks (the test support adds it too).
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

const missing = () => TOOLS.filter((tool) => find(tool) === undefined);

let absent = missing();
if (absent.length > 0) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && find('apt-get')) {
    console.log(`test prerequisites: missing ${absent.join(', ')}; installing ${PACKAGES.join(' ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update'], ['install', '-y', ...PACKAGES]]) {
      const result = spawnSync('apt-get', args, { stdio: 'inherit', env });
      if (result.status !== 0) {
        console.error(`test prerequisites: apt-get ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`})`);
        process.exit(1);
      }
    }
    absent = missing();
  }
}

if (absent.length > 0) {
  console.error(
    `test prerequisites: missing ${absent.join(', ')} (needed by the integration tests, which start real servers).\n` +
      `Install them with:\n  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${INSTALL}\n` +
      '(on other systems: Dovecot 2.3 with IMAP and POP3, Redis 7, OpenSSL; `npm run test:unit` needs none of them)',
  );
  process.exit(1);
}

console.log(`test prerequisites: ${TOOLS.join(', ')} present`);
