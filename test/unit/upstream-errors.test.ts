import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { mapImapError } from '../../src/mail/imap/errors.js';
import { socketError } from '../../src/mail/pop3/errors.js';
import { classifySocketError } from '../../src/mail/upstream-errors.js';

const nodeError = (code: string, message = `connect ${code} 192.0.2.1:993`): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code });

describe('classifySocketError', () => {
  it('tells a refused port apart from an unknown host', () => {
    const refused = classifySocketError(nodeError('ECONNREFUSED'));
    expect(refused).toMatchObject({ code: 'UPSTREAM_ERROR', status: 502, message: 'The mail server refused the connection' });
    for (const code of ['ENOTFOUND', 'EAI_AGAIN']) {
      expect(classifySocketError(nodeError(code))).toMatchObject({
        code: 'UPSTREAM_ERROR',
        message: 'The mail server host name could not be resolved',
      });
    }
  });

  it('answers a timed-out connection as UPSTREAM_TIMEOUT (504), naming the step when given', () => {
    expect(classifySocketError(nodeError('ETIMEDOUT'))).toMatchObject({ code: 'UPSTREAM_TIMEOUT', status: 504, message: 'The mail server did not answer in time' });
    expect(classifySocketError(nodeError('ETIMEDOUT'), { step: 'connect' })?.message).toBe('The mail server did not answer in time (connect)');
  });

  it('says how to accept a self-signed certificate for every TLS failure, by code or by OpenSSL words', () => {
    const failures = [
      nodeError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'),
      nodeError('SELF_SIGNED_CERT_IN_CHAIN'),
      nodeError('CERT_HAS_EXPIRED'),
      nodeError('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      nodeError('ERR_TLS_CERT_ALTNAME_INVALID'),
      nodeError('ERR_SSL_WRONG_VERSION_NUMBER'),
      new Error('140241:error:0A00010B:SSL routines::wrong version number'),
    ];
    for (const err of failures) {
      const mapped = classifySocketError(err);
      expect(mapped?.code, err.message).toBe('UPSTREAM_ERROR');
      expect(mapped?.message, err.message).toMatch(/^TLS with the mail server failed .*set tlsVerify to false$/);
    }
    expect(classifySocketError(nodeError('CERT_HAS_EXPIRED'))?.message).toContain('(CERT_HAS_EXPIRED)');
    expect(classifySocketError(new Error('x'), { tls: true })?.message).toContain('(handshake error)');
  });

  it('reads the code where the library keeps it when told', () => {
    const wrapped = Object.assign(new Error('Connection failed'), { _err: { code: 'ECONNREFUSED' } });
    expect(classifySocketError(wrapped)).toBeNull();
    expect(classifySocketError(wrapped, { code: 'ECONNREFUSED' })?.message).toBe('The mail server refused the connection');
  });

  it('reports a reset or broken pipe as a lost connection, with the step', () => {
    expect(classifySocketError(nodeError('ECONNRESET'), { step: 'RETR' })?.message).toBe('The connection to the mail server was lost (RETR)');
    expect(classifySocketError(nodeError('EPIPE'))?.code).toBe('UPSTREAM_ERROR');
  });

  it('keeps the original error as the cause, and passes a GatewayError through unchanged', () => {
    const err = nodeError('ECONNREFUSED');
    expect(classifySocketError(err)?.cause).toBe(err);
    const own = new GatewayError('POOL_EXHAUSTED', 'busy');
    expect(classifySocketError(own)).toBe(own);
  });

  it('leaves anything that is not a socket, TLS or DNS failure to the protocol mapper', () => {
    expect(classifySocketError(new Error('Command failed'))).toBeNull();
    expect(classifySocketError(nodeError('EACCES'))).toBeNull();
    expect(classifySocketError(null)).toBeNull();
    expect(classifySocketError('a string')).toBeNull();
  });
});

describe('IMAP and POP3 classify socket failures alike', () => {
  it('gives the same code and detail for a refused port, an unknown host and a bad certificate', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'CERT_HAS_EXPIRED', 'ERR_SSL_WRONG_VERSION_NUMBER']) {
      const imap = mapImapError(nodeError(code));
      const pop3 = socketError(nodeError(code), 'connect');
      expect({ code: pop3.code, message: pop3.message }, code).toEqual({ code: imap.code, message: imap.message });
    }
  });

  it('keeps what only each protocol knows: imapflow timers on IMAP, a lost connection as the POP3 fallback', () => {
    expect(mapImapError(Object.assign(new Error('Greeting timeout'), { code: 'GREETING_TIMEOUT' })).code).toBe('UPSTREAM_TIMEOUT');
    expect(mapImapError(Object.assign(new Error('x'), { tlsFailed: true })).message).toMatch(/^TLS with the mail server failed/);
    expect(socketError(new Error('socket hang up'), 'greeting').message).toBe('The connection to the mail server was lost (greeting)');
  });
});

describe('IMAP: only what the server did is 502', () => {
  const imapflowError = (code: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error('x'), { code, ...extra });

  it('is 502 for a tagged NO or BAD, a lost connection and a response imapflow could not parse', () => {
    expect(mapImapError(Object.assign(new Error('Command failed'), { responseStatus: 'NO', responseText: 'Quota' }))).toMatchObject({
      code: 'UPSTREAM_ERROR',
      status: 502,
      message: 'The mail server answered NO: Quota',
    });
    for (const code of ['NoConnection', 'EConnectionClosed', 'ClosedAfterConnectText', 'ParserError11', 'InvalidResponse', 'MissingTag', 'LineTooLarge']) {
      expect(mapImapError(imapflowError(code)).code, code).toBe('UPSTREAM_ERROR');
    }
  });

  it('is 500 INTERNAL_ERROR, masked, with the cause kept for the log, for a bug of ours or an imapflow misuse code', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'uid')");
    for (const err of [bug, new Error('something else'), imapflowError('NoMailboxSelected'), imapflowError('InstanceReused'), null, undefined]) {
      const mapped = mapImapError(err);
      expect(mapped, String(err)).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
      expect(mapped.message).not.toContain('uid');
      expect(mapped.cause).toBe(err);
    }
  });

  it('is 400 for a value imapflow refuses to send (CR, LF, NUL), which came with the request', () => {
    const mapped = mapImapError(imapflowError('InvalidStringValue'));
    expect(mapped).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 });
    expect(mapped.message).toContain('CR, LF or NUL');
  });
});
