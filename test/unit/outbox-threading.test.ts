import { describe, expect, it } from 'vitest';
import {
  forwardFileName,
  forwardSubject,
  originalFlag,
  replyRecipients,
  replySubject,
  threadingHeaders,
} from '../../src/outbox/threading.js';

const addr = (address: string, name = ''): { name: string; address: string } => ({ name, address });

describe('threading headers (RFC 5322 §3.6.4)', () => {
  it('In-Reply-To is the original Message-ID; References are its References, then its Message-ID', () => {
    expect(threadingHeaders({ messageId: '<c@x>', references: ['<a@x>', '<b@x>'] })).toEqual({
      inReplyTo: '<c@x>',
      references: ['<a@x>', '<b@x>', '<c@x>'],
    });
  });

  it('drops duplicates and keeps the first occurrence, in order', () => {
    expect(threadingHeaders({ messageId: '<b@x>', references: ['<a@x>', '<b@x>', '<a@x>', ' <d@x> '] }).references).toEqual([
      '<a@x>',
      '<b@x>',
      '<d@x>',
    ]);
  });

  it('an original without a Message-ID gives no In-Reply-To, and References only from its own', () => {
    expect(threadingHeaders({ messageId: null, references: ['<a@x>'] })).toEqual({ inReplyTo: undefined, references: ['<a@x>'] });
    expect(threadingHeaders({ messageId: null, references: [] })).toEqual({ inReplyTo: undefined, references: [] });
  });
});

describe('reply and forward subjects', () => {
  it('prefixes Re: once, whatever the case of an existing prefix', () => {
    expect(replySubject('Lunch')).toBe('Re: Lunch');
    expect(replySubject('Re: Lunch')).toBe('Re: Lunch');
    expect(replySubject('RE: Lunch')).toBe('RE: Lunch');
    expect(replySubject('re : Lunch')).toBe('re : Lunch');
    expect(replySubject('  Привет 🎉 ')).toBe('Re: Привет 🎉');
  });

  it('a forwarded subject gets Re: in front of its Fwd:', () => {
    expect(replySubject('Fwd: Lunch')).toBe('Re: Fwd: Lunch');
    expect(replySubject('Reply needed')).toBe('Re: Reply needed');
  });

  it('prefixes Fwd: once, recognising Fwd: and Fw: in any case', () => {
    expect(forwardSubject('Lunch')).toBe('Fwd: Lunch');
    expect(forwardSubject('Fwd: Lunch')).toBe('Fwd: Lunch');
    expect(forwardSubject('FW: Lunch')).toBe('FW: Lunch');
    expect(forwardSubject('fw:Lunch')).toBe('fw:Lunch');
    expect(forwardSubject('Re: Lunch')).toBe('Fwd: Re: Lunch');
  });

  it('an original without a subject gives the bare prefix', () => {
    expect(replySubject(null)).toBe('Re:');
    expect(replySubject('  ')).toBe('Re:');
    expect(forwardSubject(null)).toBe('Fwd:');
  });
});

describe('reply recipients', () => {
  const original = {
    from: [addr('bob@example.com', 'Bob')],
    replyTo: [addr('list@example.com', 'List')],
    to: [addr('me@example.com', 'Me'), addr('carol@example.com', 'Carol'), addr('LIST@example.com')],
    cc: [addr('dave@example.com'), addr('Carol@Example.com'), addr('ME@EXAMPLE.COM')],
  };

  it('reply goes to the Reply-To when there is one, else to the From', () => {
    expect(replyRecipients(original, 'reply', ['me@example.com'])).toEqual({ to: [addr('list@example.com', 'List')], cc: [] });
    expect(replyRecipients({ ...original, replyTo: [] }, 'reply', ['me@example.com'])).toEqual({
      to: [addr('bob@example.com', 'Bob')],
      cc: [],
    });
    // A Reply-To without any address (an empty group) does not count.
    expect(replyRecipients({ ...original, replyTo: [addr('')] }, 'reply', []).to).toEqual([addr('bob@example.com', 'Bob')]);
  });

  it('reply-all adds To and Cc, minus the own address in any case, without duplicates across to and cc', () => {
    expect(replyRecipients(original, 'replyAll', ['Me@Example.Com'])).toEqual({
      to: [addr('list@example.com', 'List'), addr('carol@example.com', 'Carol')],
      cc: [addr('dave@example.com')],
    });
  });

  it('reply-all removes every own address given (the account address and the From used)', () => {
    const result = replyRecipients(original, 'replyAll', ['me@example.com', 'DAVE@example.com', '']);
    expect(result.cc).toEqual([]);
    expect(result.to.map((a) => a.address)).toEqual(['list@example.com', 'carol@example.com']);
  });

  it('skips entries without an address and those the caller cannot send to', () => {
    const result = replyRecipients(
      { from: [addr('bob@example.com')], replyTo: [], to: [addr(''), addr('undisclosed-recipients')], cc: [addr('eve@example.com')] },
      'replyAll',
      [],
      (a) => a.address.includes('@'),
    );
    expect(result).toEqual({ to: [addr('bob@example.com')], cc: [addr('eve@example.com')] });
  });

  it('a message from the account to itself leaves reply-all with nobody', () => {
    const self = { from: [addr('me@example.com')], replyTo: [], to: [addr('me@example.com')], cc: [] };
    expect(replyRecipients(self, 'replyAll', ['me@example.com'])).toEqual({ to: [], cc: [] });
  });
});

describe('the forwarded message file name', () => {
  it('is the subject made safe plus .eml', () => {
    expect(forwardFileName('Quarterly report')).toBe('Quarterly report.eml');
    expect(forwardFileName('Re: a/b\\c: "d" <e> | f? *g*\r\n\th')).toBe('Re a b c d e f g h.eml');
    expect(forwardFileName('..hidden')).toBe('hidden.eml');
    expect(forwardFileName('Отчёт 報告 🎉')).toBe('Отчёт 報告 🎉.eml');
  });

  it('falls back to message.eml and is bounded without splitting characters', () => {
    expect(forwardFileName(null)).toBe('message.eml');
    expect(forwardFileName(' /// ')).toBe('message.eml');
    const long = forwardFileName('🎉'.repeat(150));
    expect(long).toBe(`${'🎉'.repeat(100)}.eml`);
    expect(long).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
  });
});

describe('the flag set on the original', () => {
  it('is \\Answered for replies and $Forwarded for forwards', () => {
    expect(originalFlag('reply')).toBe('\\Answered');
    expect(originalFlag('replyAll')).toBe('\\Answered');
    expect(originalFlag('forward')).toBe('$Forwarded');
  });
});
