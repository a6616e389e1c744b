import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { createEgressPolicy, validateEgressEntries, type LookupAll } from '../../src/net/egress.js';

/** Resolves to the policy's error (or fails the test when it resolves). */
async function refusal(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected the egress policy to refuse');
}

/** A resolver answering from a table: stands in for DNS answers this offline machine cannot get. */
function fakeDns(table: Record<string, string[]>): LookupAll {
  return async (host) => {
    const addresses = table[host.toLowerCase()]; // DNS names are case-insensitive
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

describe('egress policy, default (nothing allowed)', () => {
  const policy = createEgressPolicy([]);

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback, bracketed'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.254', 'private'],
    ['192.168.1.10', 'private'],
    ['fc00::1', 'unique local'],
    ['fd12:3456::1', 'unique local'],
    ['169.254.169.254', 'metadata'],
    ['fd00:ec2::254', 'metadata (AWS IPv6)'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%lo', 'link-local with zone'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.127.255.254', 'carrier-grade NAT'],
    ['224.0.0.251', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex form'],
    ['::ffff:10.1.2.3', 'IPv4-mapped private'],
    ['::ffff:169.254.169.254', 'IPv4-mapped metadata'],
    ['64:ff9b::7f00:1', 'NAT64 of loopback'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 of metadata'],
    ['2002:7f00:1::1', '6to4 of loopback'],
    ['2002:c0a8:101::1', '6to4 of private'],
    ['::127.0.0.1', 'IPv4-compatible (deprecated)'],
  ])('refuses %s (%s) with HOST_NOT_ALLOWED naming only the host', async (host) => {
    const err = await refusal(policy.resolve(host));
    expect(err.code).toBe('HOST_NOT_ALLOWED');
    expect(err.status).toBe(403);
    expect(err.message).toContain(host);
    expect(err.message).toContain('EGRESS_ALLOW');
    // The response detail names the host only: no range names, no resolved addresses.
    expect(err.message).not.toMatch(/loopback|private|metadata|link-local|reserved|NAT/);
  });

  it('refuses localhost, judged by what it resolves to', async () => {
    const err = await refusal(policy.resolve('localhost'));
    expect(err.code).toBe('HOST_NOT_ALLOWED');
    expect(err.message).toContain('"localhost"');
    expect(err.message).not.toContain('127.0.0.1');
  });

  it.each([
    ['8.8.8.8', 4],
    ['172.32.0.1', 4], // just outside 172.16/12
    ['100.128.0.1', 4], // just outside 100.64/10
    ['169.255.0.1', 4],
    ['2606:4700:4700::1111', 6],
    ['64:ff9b::808:808', 6], // NAT64 of a public address
    ['2002:808:808::1', 6], // 6to4 of a public address
  ])('lets a public IP literal %s through as is, without a servername', async (host, family) => {
    expect(await policy.resolve(host)).toEqual({ address: host, family, servername: undefined, admitted: false });
  });

  it('dials an IPv4-mapped public address as the IPv4 address it maps', async () => {
    expect(await policy.resolve('::ffff:8.8.4.4')).toEqual({ address: '8.8.4.4', family: 4, servername: undefined, admitted: false });
  });
});

describe('egress policy, allow list', () => {
  it('allows exactly the listed CIDRs and IPs', async () => {
    const policy = createEgressPolicy(['127.0.0.1/32', '10.0.0.0/8', '::1']);
    expect(await policy.resolve('127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4, servername: undefined, admitted: true });
    expect((await policy.resolve('10.200.3.4')).address).toBe('10.200.3.4');
    // A public address passes the policy without being one the operator named.
    expect((await policy.resolve('8.8.8.8')).admitted).toBe(false);
    expect((await policy.resolve('::1')).address).toBe('::1');
    expect((await refusal(policy.resolve('127.0.0.2'))).code).toBe('HOST_NOT_ALLOWED');
    expect((await refusal(policy.resolve('192.168.0.1'))).code).toBe('HOST_NOT_ALLOWED');
    expect((await refusal(policy.resolve('169.254.169.254'))).code).toBe('HOST_NOT_ALLOWED');
  });

  it('applies an IPv4 allowance to the IPv4-mapped form too, and dials the IPv4 address', async () => {
    const policy = createEgressPolicy(['127.0.0.0/8']);
    expect(await policy.resolve('::ffff:127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4, servername: undefined, admitted: true });
  });

  it('reads an IPv4-mapped IPv6 CIDR as the IPv4 range it maps', async () => {
    const policy = createEgressPolicy(['::ffff:10.0.0.0/104']);
    expect((await policy.resolve('10.1.1.1')).address).toBe('10.1.1.1');
    expect((await refusal(policy.resolve('192.168.0.1'))).code).toBe('HOST_NOT_ALLOWED');
  });

  it('an allowed IPv6 range does not open IPv4 (::/0 is not 0.0.0.0/0)', async () => {
    const policy = createEgressPolicy(['::/0']);
    expect((await policy.resolve('fd00::5')).address).toBe('fd00::5');
    expect((await refusal(policy.resolve('127.0.0.1'))).code).toBe('HOST_NOT_ALLOWED');
  });

  it('an allowed host name allows what it resolves to, case-insensitively, and keeps the name for SNI', async () => {
    const policy = createEgressPolicy(['LocalHost.']);
    expect(await policy.resolve('localhost')).toEqual({ address: '127.0.0.1', family: 4, servername: 'localhost', admitted: true });
    expect(await policy.resolve('LOCALHOST')).toEqual({ address: '127.0.0.1', family: 4, servername: 'localhost', admitted: true });
    // The name allowance is for that name only, not for the address it happens to resolve to.
    expect((await refusal(policy.resolve('127.0.0.1'))).code).toBe('HOST_NOT_ALLOWED');
  });
});

describe('egress policy, resolution', () => {
  it('checks every resolved address: one forbidden address refuses the host (DNS rebinding, mixed answers)', async () => {
    const lookup = fakeDns({
      'mixed.test': ['203.0.114.7', '10.0.0.7'],
      'mixed6.test': ['2606:4700::1', '::1'],
    });
    const policy = createEgressPolicy([], { lookup });
    expect((await refusal(policy.resolve('mixed.test'))).code).toBe('HOST_NOT_ALLOWED');
    expect((await refusal(policy.resolve('mixed6.test'))).code).toBe('HOST_NOT_ALLOWED');
  });

  it('returns the first resolved address to dial, with the host name as servername', async () => {
    const lookup = fakeDns({ 'mail.test': ['2606:4700::6810:84e5', '104.16.132.229'] });
    const policy = createEgressPolicy([], { lookup });
    expect(await policy.resolve('Mail.Test')).toEqual({ address: '2606:4700::6810:84e5', family: 6, servername: 'mail.test', admitted: false });
  });

  it('a mixed answer is fine when the forbidden address is allowed', async () => {
    const lookup = fakeDns({ 'split.test': ['10.0.0.7', '203.0.114.7'] });
    const policy = createEgressPolicy(['10.0.0.0/24'], { lookup });
    expect(await policy.resolve('split.test')).toEqual({ address: '10.0.0.7', family: 4, servername: 'split.test', admitted: false });
  });

  it('a name resolving to an IPv4-mapped address is judged and dialled as IPv4', async () => {
    const lookup = fakeDns({ 'mapped.test': ['::ffff:127.0.0.1'], 'mapped-ok.test': ['::ffff:8.8.8.8'] });
    const policy = createEgressPolicy([], { lookup });
    expect((await refusal(policy.resolve('mapped.test'))).code).toBe('HOST_NOT_ALLOWED');
    expect(await policy.resolve('mapped-ok.test')).toEqual({ address: '8.8.8.8', family: 4, servername: 'mapped-ok.test', admitted: false });
  });

  it('a name that does not resolve is UPSTREAM_ERROR "could not resolve <host>"', async () => {
    const policy = createEgressPolicy([], { lookup: fakeDns({}) });
    const err = await refusal(policy.resolve('nowhere.test'));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(err.status).toBe(502);
    expect(err.message).toBe('could not resolve nowhere.test');
  });

  it('the real resolver reports an unresolvable name the same way', async () => {
    // .invalid never resolves (RFC 6761 §6.4); the system resolver answers without the network.
    const err = await refusal(createEgressPolicy([]).resolve('no-such-host.invalid'));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(err.message).toBe('could not resolve no-such-host.invalid');
  });

  it('an empty answer is UPSTREAM_ERROR too', async () => {
    const policy = createEgressPolicy([], { lookup: async () => [] });
    expect((await refusal(policy.resolve('empty.test'))).code).toBe('UPSTREAM_ERROR');
  });
});

describe('validateEgressEntries', () => {
  it('accepts CIDRs, bare IPs and host names of both families', () => {
    expect(
      validateEgressEntries([
        '127.0.0.1/32',
        '10.0.0.0/8',
        '0.0.0.0/0',
        '::1/128',
        'fd00::/8',
        '192.168.1.5',
        '::1',
        'localhost',
        'imap.internal.example.com',
        'mail-1.corp.',
      ]),
    ).toEqual([]);
  });

  it('names each malformed entry', () => {
    const problems = validateEgressEntries([
      'ok.example',
      '10.0.0.0/33',
      '::/129',
      '10.0.0/8',
      '300.1.1.1',
      '*.example.com',
      'imap.example.com:993',
      'imaps://imap.example.com',
      '',
      'bad..name',
      '-bad.example',
      '10.0.0.0/x',
    ]);
    expect(problems).toHaveLength(11);
    expect(problems[0]).toContain('"10.0.0.0/33"');
    expect(problems[4]).toMatch(/wildcard/);
    expect(problems.join('\n')).not.toContain('ok.example');
  });

  it('createEgressPolicy refuses a malformed allow list', () => {
    expect(() => createEgressPolicy(['10.0.0.0/40'])).toThrow(/10\.0\.0\.0\/40/);
  });
});
