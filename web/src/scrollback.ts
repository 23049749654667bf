// Paging over a session's lines (scrollback then screen, oldest first), as
// GetScrollback serves them: offset and limit, total_lines.

export const PAGE_LINES = 200;

export interface Page {
  offset: number;
  limit: number;
}

/** The last page: the one that ends with the screen's bottom row. */
export function lastPage(total: number, limit = PAGE_LINES): Page {
  return { offset: Math.max(0, total - limit), limit };
}

/** The page before `page` (older lines), or null at the oldest. */
export function olderPage(page: Page): Page | null {
  if (page.offset === 0) return null;
  return { offset: Math.max(0, page.offset - page.limit), limit: page.limit };
}

/** The page after `page` (newer lines), or null past the newest. `shown` is
 * how many lines `page` held (a page may stop early at its size budget). */
export function newerPage(page: Page, shown: number, total: number): Page | null {
  const next = page.offset + shown;
  if (next >= total) return null;
  return { offset: next, limit: page.limit };
}

/** "lines 201-400 of 1234", 1-based as people count. */
export function pageLabel(offset: number, shown: number, total: number): string {
  if (shown === 0) return `no lines of ${total}`;
  return `lines ${offset + 1}-${offset + shown} of ${total}`;
}
