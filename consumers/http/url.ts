/** The shape every outbound sink URL must have (the URL guard checks where it points, at save and delivery time). */

/**
 * Why a URL is not an absolute http(s) URL without credentials, or null. `credentialsHint` says where credentials go
 * instead.
 */
export function httpUrlProblem(url: string, credentialsHint: string): string | null {
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
