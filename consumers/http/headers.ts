import type { FieldProblem } from '../../common/errors.ts'

/** RFC 9110 token: what a header name may be made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

export const isHeaderName = (name: string): boolean => TOKEN.test(name)

/**
 * Every problem with a sink's extra request headers (the `headers` setting): an object of strings, each
 * name a valid header name and none of the headers the sink sets itself (`reserved`, lower case).
 */
export function headerProblems(headers: unknown, reserved: ReadonlySet<string>): FieldProblem[] {
  if (headers === undefined) return []
  if (headers === null || typeof headers !== 'object')
    return [{ field: 'headers', message: 'must be an object of strings' }]
  const out: FieldProblem[] = []
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') out.push({ field: `headers.${k}`, message: 'must be a string' })
    if (!isHeaderName(k)) out.push({ field: `headers.${k}`, message: 'is not a valid header name' })
    if (reserved.has(k.toLowerCase()))
      out.push({ field: `headers.${k}`, message: 'is set by the platform and cannot be overridden' })
  }
  return out
}
