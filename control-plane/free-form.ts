/**
 * Free-form JSON a client may store (a publisher's profile): what every supported store keeps as it
 * was sent. MongoDB and FerretDB refuse field names starting with `$` or holding `.` or NUL, FerretDB v1
 * refuses an array directly inside an array, and a string with a lone UTF-16 surrogate (valid JSON, not
 * valid UTF-8) would come back changed. Each is a 422 naming the field, never a 500 or a silent change.
 */
import type { FieldError } from './errors.ts'

/** Deeper nesting than this is refused (MongoDB's own limit is 100 levels, counting the document's own). */
export const MAX_FREE_FORM_DEPTH = 32
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** The problems of `value` stored under `field` (at most `limit` of them), or none. */
export function freeFormErrors(value: unknown, field: string, limit = 10): FieldError[] {
  const errors: FieldError[] = []
  const walk = (v: unknown, path: string, depth: number, inArray: boolean): void => {
    if (errors.length >= limit) return
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v))
        errors.push({ field: path, message: 'holds a lone UTF-16 surrogate (not valid Unicode text)' })
      return
    }
    if (v === null || typeof v !== 'object') return
    if (depth > MAX_FREE_FORM_DEPTH) {
      errors.push({ field: path, message: `is nested more than ${MAX_FREE_FORM_DEPTH} levels deep` })
      return
    }
    if (Array.isArray(v)) {
      if (inArray) {
        errors.push({
          field: path,
          message: 'is an array directly inside an array (not storable; wrap it in an object)',
        })
        return
      }
      v.forEach((x, i) => walk(x, `${path}[${i}]`, depth + 1, true))
      return
    }
    for (const [k, x] of Object.entries(v)) {
      const at = `${path}.${k}`
      if (k.startsWith('$')) errors.push({ field: at, message: 'is a field name starting with $ (not storable)' })
      else if (k.includes('.')) errors.push({ field: at, message: 'is a field name holding a dot (not storable)' })
      else if (k.includes('\u0000'))
        errors.push({ field: at, message: 'is a field name holding a NUL character (not storable)' })
      else if (LONE_SURROGATE.test(k))
        errors.push({ field: at, message: 'is a field name holding a lone UTF-16 surrogate (not valid Unicode text)' })
      else walk(x, at, depth + 1, false)
      if (errors.length >= limit) return
    }
  }
  walk(value, field, 1, false)
  return errors
}
