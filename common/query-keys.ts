/**
 * The query keys of a request as it was sent, before any query parser: Express's (qs) drops a key with no name before
 * its brackets (`?[a]=1`) and nests others (`a[b]=1`), so a check of what was sent reads the URL itself.
 */
export function queryKeys(originalUrl: string): string[] {
  const at = originalUrl.indexOf('?')
  return at < 0 ? [] : [...new Set(new URLSearchParams(originalUrl.slice(at + 1)).keys())]
}
