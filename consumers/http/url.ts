/** The shape every outbound sink URL must have (the URL guard checks where it points, at save and delivery time). */

/**
 * How a sink URL begins, as the OpenAPI document says it (the request validator applies it, and httpUrlProblem again
 * for URLs that come another way): the WHATWG parser also takes `http:host`, `http:\\host` or a leading space as
 * http URLs, which a schema of `format: uri` alone let through to a 422 an API fuzzer counts as a wrong refusal.
 */
export const HTTP_URL_PATTERN = '^[Hh][Tt][Tt][Pp][Ss]?://'
const HTTP_URL_START = new RegExp(HTTP_URL_PATTERN)

/**
 * Why a URL is not an absolute http(s) URL without credentials, or null. `credentialsHint` says where credentials go
 * instead.
 */
export function httpUrlProblem(url: string, credentialsHint: string): string | null {
  if (!HTTP_URL_START.test(url)) return 'must be an absolute http:// or https:// URL'
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'must be an absolute http:// or https:// URL'
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http:// or https:// URL'
  if (u.username !== '' || u.password !== '') return `must not carry credentials; ${credentialsHint}`
  return null
}
