/**
 * A short plain-text preview for listings: the start of the text body, or of the HTML body with
 * markup removed. An approximation by design; it is never rendered as HTML.
 */

const PREVIEW_LENGTH = 200;

const NAMED_ENTITIES: Record<string, string> = {
  nbsp: ' ',
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  copy: '©',
  reg: '®',
  trade: '™',
  hellip: '…',
  mdash: '—',
  ndash: '–',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  bull: '•',
  middot: '·',
  euro: '€',
  zwnj: '',
  zwj: '',
  shy: '',
};

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});?/gi, (match, entity: string) => {
    if (entity[0] === '#') {
      const code = entity[1] === 'x' || entity[1] === 'X' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
      return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : ' ';
    }
    return NAMED_ENTITIES[entity.toLowerCase()] ?? match;
  });
}

/** HTML to rough text: invisible elements and comments dropped, tags become spaces, entities decoded. */
function htmlToPreviewText(html: string): string {
  const withoutInvisible = html
    .replace(/<!--[\s\S]*?(?:-->|$)/g, ' ')
    .replace(/<(head|style|script|title|template)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)/gi, ' ');
  return decodeEntities(withoutInvisible.replace(/<\/?[a-z!?][^>]*>?/gi, ' '));
}

/** Collapses white space (zero-width and soft-hyphen padding of newsletter preheaders included) and cuts. */
export function makePreview(text: string | null, html: string | null, maxLength = PREVIEW_LENGTH): string | null {
  const source = text && text.trim() ? text : html ? htmlToPreviewText(html) : '';
  const collapsed = source
    .replace(/\u034f|[\u00ad\u180e\u200b-\u200d\u2060\ufeff]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  if (!collapsed) return null;
  const codePoints = Array.from(collapsed.slice(0, maxLength * 2));
  return codePoints.length > maxLength ? codePoints.slice(0, maxLength).join('').trimEnd() : codePoints.join('');
}
