/** The shape every outbound sink URL must have (the URL guard checks where it points, at save and delivery time). */

/**
 * How a sink URL begins, and that it holds no white space or control character, as the OpenAPI document says it (the
 * request validator applies it, and httpUrlProblem again for URLs that come another way): the WHATWG parser also takes
 * `http:host`, `http:\\host` or a leading space as http URLs, and a NUL in a host was the guard's 422: a schema of
 * `format: uri` alone let those through, and an API fuzzer counts such a 422 as a wrong refusal.
 */
export const HTTP_URL_PATTERN = '^[Hh][Tt][Tt][Pp][Ss]?://[^\\s\\x00-\\x1f\\x7f]*$'
const HTTP_URL_SHAPE = new RegExp(HTTP_URL_PATTERN)
export const HTTP_URL_MEANING = 'must be an absolute http:// or https:// URL without spaces or control characters'

/**
 * Why a URL is not an absolute http(s) URL without credentials, or null. `credentialsHint` says where credentials go
 * instead.
 */
export function httpUrlProblem(url: string, credentialsHint: string): string | null {
  if (!HTTP_URL_SHAPE.test(url)) return HTTP_URL_MEANING
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
