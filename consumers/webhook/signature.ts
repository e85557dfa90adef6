/**
 * Standard Webhooks signing (https://www.standardwebhooks.com/): the signed content is
 * `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256 keyed with the base64 part of a
 * `whsec_` secret, sent as `v1,<base64>`; several signatures (a rotation overlap) are space-separated.
 */
import { createHmac, randomBytes, type KeyObject } from 'node:crypto'

/** Raw key bytes (fastest with createHmac) or a KeyObject. */
export type SigningKey = Buffer | KeyObject

export const SECRET_PREFIX = 'whsec_'
/** The specification asks for at least 24 random bytes (192 bits); we generate 32. */
export const MIN_SECRET_BYTES = 24

/** The key bytes of a `whsec_` secret, or an explanation of what is wrong with it. */
export function secretKey(secret: string): Buffer | string {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with "${SECRET_PREFIX}"`
  const b64 = secret.slice(SECRET_PREFIX.length)
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0)
    return `must be "${SECRET_PREFIX}" followed by standard base64`
  const key = Buffer.from(b64, 'base64')
  if (key.length < MIN_SECRET_BYTES) return `must carry at least ${MIN_SECRET_BYTES} bytes (it has ${key.length})`
  return key
}

export function generateSecret(bytes = 32): string {
  return SECRET_PREFIX + randomBytes(bytes).toString('base64')
}

/** `v1,<base64 signature>` for one key; a Buffer body is signed as its bytes (the UTF-8 of the text sent). */
export function sign(key: SigningKey, id: string, timestampSeconds: number, body: string | Buffer): string {
  return 'v1,' + createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64')
}

/** The webhook-signature header value: one signature per key, space-separated. */
export function signatureHeader(
  keys: readonly SigningKey[],
  id: string,
  timestampSeconds: number,
  body: string | Buffer,
): string {
  if (keys.length === 1) return sign(keys[0]!, id, timestampSeconds, body)
  return keys.map((k) => sign(k, id, timestampSeconds, body)).join(' ')
}
