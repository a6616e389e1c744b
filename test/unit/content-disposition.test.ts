import { validateHeaderValue } from 'node:http';
import { describe, expect, it } from 'vitest';
import { contentDisposition } from '../../src/http/content-disposition.js';

/** Reads filename* back the way a browser does (RFC 8187: charset'lang'pct-encoded). */
function extendedName(header: string): string | undefined {
  const m = /filename\*=UTF-8''([^;\s]*)/.exec(header);
  return m ? decodeURIComponent(m[1] ?? '') : undefined;
}

describe('contentDisposition', () => {
  it('gives a plain ASCII name as a quoted filename only', () => {
    expect(contentDisposition('attachment', 'report 2024.pdf')).toBe('attachment; filename="report 2024.pdf"');
  });

  it('keeps the disposition type asked for', () => {
    expect(contentDisposition('inline', 'logo.png')).toBe('inline; filename="logo.png"');
  });

  it('gives the bare type when there is no usable name', () => {
    expect(contentDisposition('attachment', null)).toBe('attachment');
    expect(contentDisposition('inline', '')).toBe('inline');
    expect(contentDisposition('attachment', '\r\n\t')).toBe('attachment');
  });

  it('escapes quotes and backslashes in the quoted string', () => {
    expect(contentDisposition('attachment', 'say "hi" \\ bye.txt')).toBe('attachment; filename="say \\"hi\\" \\\\ bye.txt"');
  });

  it('adds filename* in UTF-8 with an ASCII fallback for non-ASCII names', () => {
    const header = contentDisposition('attachment', 'naïve résumé.pdf');
    expect(header).toBe(`attachment; filename="na_ve r_sum_.pdf"; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf`);
    expect(extendedName(header)).toBe('naïve résumé.pdf');
  });

  it('replaces each non-ASCII character, astral ones included, by one underscore in the fallback', () => {
    const header = contentDisposition('attachment', '日本語 😀.txt');
    expect(header).toContain('filename="___ _.txt"');
    expect(extendedName(header)).toBe('日本語 😀.txt');
  });

  it("percent-encodes what RFC 8187 attr-char excludes (' ( ) * % and others)", () => {
    const header = contentDisposition('attachment', "l'été (1) * 100%.txt");
    const encoded = /filename\*=UTF-8''(\S*)$/.exec(header)?.[1] ?? '';
    expect(encoded).toMatch(/^[A-Za-z0-9!#$&+\-.^_`|~%]+$/);
    expect(encoded).toBe('l%27%C3%A9t%C3%A9%20%281%29%20%2A%20100%25.txt');
    expect(extendedName(header)).toBe("l'été (1) * 100%.txt");
  });

  it('cannot be used for header injection: CR, LF and other controls are removed', () => {
    const header = contentDisposition('attachment', 'evil.txt\r\nSet-Cookie: session=stolen\r\n\r\n<html>');
    expect(header).not.toMatch(/[\r\n]/);
    expect(header).toBe('attachment; filename="evil.txtSet-Cookie: session=stolen<html>"');
    expect(() => validateHeaderValue('Content-Disposition', header)).not.toThrow();
  });

  it('removes CR/LF from the RFC 8187 form of a non-ASCII name too', () => {
    const header = contentDisposition('attachment', 'é\r\nX-Injected: 1');
    expect(header).not.toMatch(/[\r\n]|%0D|%0A/i);
    expect(extendedName(header)).toBe('éX-Injected: 1');
  });

  it('drops bidirectional overrides that disguise an extension', () => {
    const header = contentDisposition('attachment', 'invoice\u202Efdp.exe');
    expect(extendedName(header)).toBeUndefined();
    expect(header).toBe('attachment; filename="invoicefdp.exe"');
  });

  it('shortens a very long name but keeps its extension', () => {
    const header = contentDisposition('attachment', `${'a'.repeat(5000)}.pdf`);
    const name = /filename="([^"]*)"/.exec(header)?.[1] ?? '';
    expect(name.length).toBe(200);
    expect(name.endsWith('.pdf')).toBe(true);
  });

  it('always yields a valid, printable-ASCII header value whatever the name', () => {
    const alphabet = ['a', 'é', '"', '\\', '\r', '\n', '\u0000', '\u007f', '\u0085', ';', '=', "'", '%', '😀', '\ud800', ' ', '\t', '/'];
    let seed = 42;
    for (let i = 0; i < 500; i++) {
      let name = '';
      const length = i % 40;
      for (let j = 0; j < length; j++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        name += alphabet[seed % alphabet.length];
      }
      const header = contentDisposition(i % 2 ? 'inline' : 'attachment', name);
      expect(header).toMatch(/^[\x20-\x7e]+$/);
      expect(() => validateHeaderValue('Content-Disposition', header)).not.toThrow();
      // The quoted string is well formed: every " or \ inside it is escaped.
      const quoted = /filename="((?:[^"\\]|\\.)*)"(;|$)/.exec(header);
      if (header.includes('filename=')) expect(quoted).not.toBeNull();
    }
  });
});
