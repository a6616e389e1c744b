/**
 * The Content-Disposition response header for a downloaded attachment (RFC 6266), with the file
 * name twice: an ASCII `filename="..."` every client understands, and `filename*` in RFC 8187
 * encoding (UTF-8, percent-encoded) when the name is not plain ASCII. The result is always
 * printable ASCII, so a hostile file name cannot inject a header or split the response.
 */

/** RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~". */
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;

/** Longest name kept, in code points; longer ones are cut keeping the extension. */
const MAX_NAME_LENGTH = 200;

/**
 * Removes what a file name may not carry into a header: C0 and C1 controls (CR, LF, NUL...) and
 * DEL; and bidirectional controls, which can make "cod.exe" display as "exe.doc" (U+202E).
 */
function cleanName(filename: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = filename.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim();
  const codePoints = Array.from(cleaned);
  if (codePoints.length <= MAX_NAME_LENGTH) return cleaned;
  const dot = cleaned.lastIndexOf('.');
  const extension = dot > 0 && cleaned.length - dot <= 16 ? Array.from(cleaned.slice(dot)) : [];
  return codePoints.slice(0, MAX_NAME_LENGTH - extension.length).join('') + extension.join('');
}

function asciiFallback(name: string): string {
  let out = '';
  for (const ch of name) {
    const code = ch.codePointAt(0) ?? 0;
    if (code > 0x7e) out += '_';
    else if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

function encodeRfc8187(name: string): string {
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += ATTR_CHAR.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function contentDisposition(type: 'attachment' | 'inline', filename: string | null): string {
  const disposition = type === 'inline' ? 'inline' : 'attachment';
  const name = filename === null ? '' : cleanName(filename);
  if (!name) return disposition;
  const plainAscii = /^[\x20-\x7e]*$/.test(name);
  const header = `${disposition}; filename="${asciiFallback(name)}"`;
  return plainAscii ? header : `${header}; filename*=UTF-8''${encodeRfc8187(name)}`;
}
