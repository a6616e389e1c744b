/**
 * Egress policy: which mail hosts the gateway may dial (ARCHITECTURE.md, "Egress").
 *
 * Callers name the hosts we connect to, so without a policy the gateway is an SSRF tool: a caller could
 * point an "IMAP account" at 127.0.0.1:6379, a cloud metadata endpoint or the internal network. So a host
 * is resolved first, EVERY address it resolves to is checked, and the caller then dials exactly the
 * address that was checked (never the name again), which defeats DNS rebinding between check and connect.
 * The host name travels only as TLS SNI and for certificate verification (`servername`).
 *
 * Forbidden unless allowed by configuration (EGRESS_ALLOW): loopback, unspecified, private and
 * unique-local, link-local, carrier-grade NAT, cloud metadata, multicast, broadcast and reserved or
 * documentation ranges (IANA special-purpose registries, RFC 6890). IPv4-mapped IPv6 (::ffff:a.b.c.d) is
 * judged, and dialled, as the IPv4 address it maps; NAT64 (64:ff9b::/96, RFC 6052) and 6to4 (2002::/16,
 * RFC 3056) addresses are refused when the IPv4 address they embed is.
 *
 * Allow entries are CIDRs, bare IPs, or host names. A host name entry matches the host exactly as the
 * account names it (case-insensitive, trailing dot ignored; no wildcards) and then allows whatever it
 * resolves to: that is how an operator says "this internal mail server is fine".
 */
import { BlockList, isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import { GatewayError } from '../errors.js';

export interface EgressTarget {
  /** The checked address to dial (an IPv4-mapped IPv6 address is given as the IPv4 it maps). */
  address: string;
  family: 4 | 6;
  /**
   * The host name for TLS SNI and certificate checks (lower-cased, trailing dot removed); undefined when
   * the host was an IP literal (SNI carries no IP addresses, RFC 6066 §3).
   */
  servername: string | undefined;
  /**
   * The operator admitted this host by name in EGRESS_ALLOW, or every address it resolves to by an
   * allow entry: a destination they named, not merely one outside the forbidden ranges.
   */
  admitted: boolean;
}

export interface EgressPolicy {
  /**
   * Resolves and checks a host. Throws GatewayError HOST_NOT_ALLOWED (403) when any address it resolves
   * to is forbidden, UPSTREAM_ERROR (502) when it does not resolve.
   */
  resolve(host: string): Promise<EgressTarget>;
}

export type LookupAll = (host: string) => Promise<Array<{ address: string; family: number }>>;

export interface EgressPolicyOptions {
  /** Name resolution; defaults to dns.lookup with `all: true` (the system resolver, /etc/hosts included). */
  lookup?: LookupAll;
}

type Family = 'ipv4' | 'ipv6';

interface RangeGroup {
  reason: string;
  v4: BlockList;
  v6: BlockList;
}

/**
 * Forbidden ranges by reason, most specific first (the reason is for logs, never for the response).
 * IPv4 and IPv6 rules live in separate BlockLists on purpose: a BlockList matches IPv4 addresses against
 * IPv6 rules through their mapped form, so `::/8` would otherwise swallow all of IPv4.
 */
const FORBIDDEN: RangeGroup[] = [
  group('cloud metadata', ['169.254.169.254/32'], ['fd00:ec2::254/128']),
  group('loopback', ['127.0.0.0/8'], ['::1/128']),
  group('unspecified', ['0.0.0.0/8'], ['::/128']),
  group(
    'private',
    ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
    // fc00::/7 unique local (RFC 4193), fec0::/10 deprecated site-local, 64:ff9b:1::/48 local-use NAT64 (RFC 8215).
    ['fc00::/7', 'fec0::/10', '64:ff9b:1::/48'],
  ),
  group('link-local', ['169.254.0.0/16'], ['fe80::/10']),
  group('carrier-grade NAT', ['100.64.0.0/10'], []),
  group('multicast', ['224.0.0.0/4'], ['ff00::/8']),
  group(
    'reserved',
    [
      '240.0.0.0/4', // reserved, with 255.255.255.255 broadcast
      '192.0.0.0/24', // IETF protocol assignments
      '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', // documentation
      '198.18.0.0/15', // benchmarking
      '192.88.99.0/24', // 6to4 relay anycast (deprecated)
    ],
    [
      '::/8', // IPv4-compatible and other reserved forms (mapped and NAT64 are handled before)
      '100::/64', // discard-only
      '2001::/23', // IETF protocol assignments (Teredo, ORCHID, benchmarking)
      '2001:db8::/32', '3fff::/20', // documentation
    ],
  ),
];

export function createEgressPolicy(allow: string[], options: EgressPolicyOptions = {}): EgressPolicy {
  const problems = validateEgressEntries(allow);
  if (problems.length > 0) throw new Error(`invalid egress allow list: ${problems.join('; ')}`);

  const allowedV4 = new BlockList();
  const allowedV6 = new BlockList();
  const allowedHosts = new Set<string>();
  for (const raw of allow) {
    const entry = parseEntry(raw);
    if (entry.kind === 'host') {
      allowedHosts.add(entry.name);
    } else if (entry.kind === 'cidr') {
      (entry.family === 'ipv4' ? allowedV4 : allowedV6).addSubnet(entry.address, entry.prefix, entry.family);
    }
  }
  const lookup = options.lookup ?? defaultLookup;

  const isAllowed = (address: string, family: Family): boolean =>
    family === 'ipv4' ? allowedV4.check(address, 'ipv4') : allowedV6.check(stripZone(address), 'ipv6');

  return {
    async resolve(host: string): Promise<EgressTarget> {
      const literal = stripBrackets(host.trim());
      if (literal === '') throw new GatewayError('VALIDATION_FAILED', 'the mail host is empty');

      let candidates: string[];
      let servername: string | undefined;
      if (isIP(literal) !== 0) {
        candidates = [literal];
        servername = undefined;
      } else {
        candidates = await resolveName(lookup, literal);
        // SNI carries the name without a trailing dot (RFC 6066 §3); names compare case-insensitively.
        servername = normaliseHostName(literal);
      }

      const hostAllowed = servername !== undefined && allowedHosts.has(servername);
      const targets = candidates.map(normaliseAddress);
      if (!hostAllowed) {
        for (const target of targets) {
          const reason = forbiddenReason(target.address, target.family);
          if (reason !== null && !isAllowed(target.address, target.family)) {
            throw new GatewayError(
              'HOST_NOT_ALLOWED',
              // The host only, never its resolved address nor the kind of range: what a name resolves
              // to on the gateway's network is not the caller's to learn. But how to admit it is.
              `the egress policy does not allow connections to "${host}"; an operator can admit it with EGRESS_ALLOW (the host name or a CIDR)`,
              // For the server log only: which address and why.
              { cause: new Error(`${target.address} is ${reason}; allow it with EGRESS_ALLOW if intended`) },
            );
          }
        }
      }
      // Every address passed; dial the first, in the resolver's order.
      const first = targets[0];
      if (!first) throw couldNotResolve(host);
      const admitted = hostAllowed || targets.every((target) => isAllowed(target.address, target.family));
      return { address: first.address, family: first.family === 'ipv4' ? 4 : 6, servername, admitted };
    },
  };
}

/**
 * Returns one message per malformed entry (empty list when all are fine), for configuration checks.
 * Entries may be CIDRs (`10.0.0.0/8`, `fd00::/8`), bare IPs, or host names (no wildcards, no ports).
 */
export function validateEgressEntries(entries: string[]): string[] {
  const problems: string[] = [];
  for (const entry of entries) {
    const parsed = parseEntry(entry);
    if (parsed.kind === 'error') problems.push(`"${entry}": ${parsed.message}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------

/*
 * A name that does not resolve is UPSTREAM_ERROR (502), not a 4xx: the gateway cannot tell NXDOMAIN
 * for a mistyped host from a resolver outage (EAI_AGAIN) reliably, and either way the failure is in the
 * path to the mail server, not in the request's syntax. The detail names the host only.
 */
function couldNotResolve(host: string, cause?: unknown): GatewayError {
  return new GatewayError('UPSTREAM_ERROR', `could not resolve ${host}`, cause === undefined ? {} : { cause });
}

async function resolveName(lookup: LookupAll, host: string): Promise<string[]> {
  let results: Array<{ address: string; family: number }>;
  try {
    results = await lookup(host);
  } catch (err) {
    throw couldNotResolve(host, err);
  }
  const addresses = results.map((r) => r.address).filter((a) => isIP(stripZone(a)) !== 0);
  if (addresses.length === 0) throw couldNotResolve(host);
  return addresses;
}

const defaultLookup: LookupAll = (host) => dnsLookup(host, { all: true, verbatim: true });

interface Address {
  address: string;
  family: Family;
}

/** IPv4-mapped IPv6 becomes the IPv4 it maps: judged as such and dialled as such. */
function normaliseAddress(raw: string): Address {
  if (isIP(raw) === 4) return { address: raw, family: 'ipv4' };
  const bytes = ipv6Bytes(stripZone(raw));
  if (bytes && isMapped(bytes)) return { address: ipv4FromBytes(bytes, 12), family: 'ipv4' };
  return { address: raw, family: 'ipv6' };
}

function forbiddenReason(address: string, family: Family): string | null {
  if (family === 'ipv4') return rangeReason(address, 'ipv4');
  const plain = stripZone(address);
  const bytes = ipv6Bytes(plain);
  if (!bytes) return 'not a valid address';
  // Forms that carry an IPv4 address: refused when the embedded address is.
  if (startsWith(bytes, NAT64_PREFIX)) {
    const inner = rangeReason(ipv4FromBytes(bytes, 12), 'ipv4');
    return inner === null ? null : `NAT64 of ${inner}`;
  }
  if (bytes[0] === 0x20 && bytes[1] === 0x02) {
    const inner = rangeReason(ipv4FromBytes(bytes, 2), 'ipv4');
    if (inner !== null) return `6to4 of ${inner}`;
  }
  return rangeReason(plain, 'ipv6');
}

function rangeReason(address: string, family: Family): string | null {
  for (const g of FORBIDDEN) {
    if ((family === 'ipv4' ? g.v4 : g.v6).check(address, family)) return g.reason;
  }
  return null;
}

function group(reason: string, v4: string[], v6: string[]): RangeGroup {
  return { reason, v4: blockList(v4, 'ipv4'), v6: blockList(v6, 'ipv6') };
}

function blockList(cidrs: string[], family: Family): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefix = ''] = cidr.split('/');
    list.addSubnet(address, Number(prefix), family);
  }
  return list;
}

/** 64:ff9b::/96, the well-known NAT64 prefix (RFC 6052). */
const NAT64_PREFIX = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function isMapped(bytes: Uint8Array): boolean {
  return startsWith(bytes, MAPPED_PREFIX);
}

function startsWith(bytes: Uint8Array, prefix: number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

function ipv4FromBytes(bytes: Uint8Array, offset: number): string {
  return Array.from(bytes.subarray(offset, offset + 4)).join('.');
}

/** The 16 bytes of a valid IPv6 address (zone already removed), or null. */
function ipv6Bytes(address: string): Uint8Array | null {
  if (isIP(address) !== 6) return null;
  let text = address;
  const out = new Uint8Array(16);
  // A trailing dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [headText = '', tailText] = text.split('::');
  const head = headText === '' ? [] : headText.split(':');
  const rest = tailText === undefined || tailText === '' ? [] : tailText.split(':');
  const zeros = tailText === undefined ? 0 : 8 - head.length - rest.length;
  const groups = [...head, ...Array<string>(zeros).fill('0'), ...rest];
  if (groups.length !== 8) return null;
  groups.forEach((g, i) => {
    const value = parseInt(g, 16);
    out[i * 2] = value >> 8;
    out[i * 2 + 1] = value & 0xff;
  });
  return out;
}

function stripZone(address: string): string {
  const i = address.indexOf('%');
  return i === -1 ? address : address.slice(0, i);
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function normaliseHostName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

type Entry =
  | { kind: 'cidr'; address: string; prefix: number; family: Family }
  | { kind: 'host'; name: string }
  | { kind: 'error'; message: string };

const LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const HOST_NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*\\.?$`);

function parseEntry(raw: string): Entry {
  const entry = raw.trim();
  if (entry === '') return { kind: 'error', message: 'empty entry' };
  if (entry.includes('%')) return { kind: 'error', message: 'zone ids are not supported' };

  if (entry.includes('://')) return { kind: 'error', message: 'a URL is not an entry: give a host name, IP or CIDR' };

  const slash = entry.indexOf('/');
  if (slash !== -1) {
    const address = stripBrackets(entry.slice(0, slash));
    const prefixText = entry.slice(slash + 1);
    const version = isIP(address);
    if (version === 0) return { kind: 'error', message: 'not a CIDR: the part before "/" is not an IP address' };
    const max = version === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      return { kind: 'error', message: `not a CIDR: the prefix length must be 0..${max}` };
    }
    return cidrEntry(address, Number(prefixText), version === 4 ? 'ipv4' : 'ipv6');
  }

  const address = stripBrackets(entry);
  const version = isIP(address);
  if (version !== 0) return cidrEntry(address, version === 4 ? 32 : 128, version === 4 ? 'ipv4' : 'ipv6');

  if (entry.includes('*')) return { kind: 'error', message: 'wildcards are not supported; list each host name' };
  if (entry.includes(':')) {
    return { kind: 'error', message: 'not an IP address, CIDR or host name (no port)' };
  }
  if (/^[0-9.]+$/.test(entry)) return { kind: 'error', message: 'not a valid IP address' };
  if (entry.length > 254 || !HOST_NAME.test(entry)) return { kind: 'error', message: 'not a valid host name' };
  return { kind: 'host', name: normaliseHostName(entry) };
}

/** An IPv4-mapped IPv6 entry (::ffff:10.0.0.0/104) is stored as the IPv4 range it maps. */
function cidrEntry(address: string, prefix: number, family: Family): Entry {
  if (family === 'ipv6') {
    const bytes = ipv6Bytes(address);
    if (bytes && isMapped(bytes) && prefix >= 96) {
      return { kind: 'cidr', address: ipv4FromBytes(bytes, 12), prefix: prefix - 96, family: 'ipv4' };
    }
  }
  return { kind: 'cidr', address, prefix, family };
}
