/**
 * Secrets at rest (webhook secrets, sink credentials): AES-256-GCM under a key ring from the
 * configuration. New values are sealed with the current key; older keys stay in the ring only to
 * open what they sealed, until `reseal` has moved every value to the current key (rotation).
 *
 * Sealed form: `enc:v1:<key id>:<iv>:<tag>:<ciphertext>` (base64url parts), a plain string that
 * a MongoDB document can hold and a query can recognise by its key id.
 */
import crypto from 'node:crypto'
import { ConfigError, SecretUnreadableError } from './errors.ts'

export interface KeyRing {
  currentKeyId: string
  keys: Map<string, Buffer>
}

export interface SecretBox {
  readonly currentKeyId: string
  seal(plaintext: string): string
  open(sealed: string): string
  /** The id of the key that sealed a value. */
  keyIdOf(sealed: string): string
  /** The value sealed with the current key (unchanged when it already is). */
  reseal(sealed: string): string
}

const PREFIX = 'enc:v1:'
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/

/** Parses `id:base64,id:base64` (the first is current unless `currentKeyId` names another). */
export function parseKeyRing(spec: string, currentKeyId = ''): KeyRing {
  const keys = new Map<string, Buffer>()
  for (const entry of spec
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')) {
    const i = entry.indexOf(':')
    const id = i > 0 ? entry.slice(0, i) : ''
    if (!KEY_ID.test(id))
      throw new ConfigError(
        'invalid configuration: secrets.encryptionKeys (env SECRETS_ENCRYPTION_KEYS): ' +
          'each entry is <id>:<base64 of 32 bytes>, the id of letters, digits, _ or -',
        { key: 'secrets.encryptionKeys' },
      )
    const key = Buffer.from(entry.slice(i + 1), 'base64')
    if (key.length !== 32)
      throw new ConfigError(
        `invalid configuration: secrets.encryptionKeys (env ` +
          `SECRETS_ENCRYPTION_KEYS): key ${id} is ${key.length} bytes, AES-256 needs ` +
          `32 (e.g. \`openssl rand -base64 32\`)`,
        { key: 'secrets.encryptionKeys', keyId: id },
      )
    if (keys.has(id))
      throw new ConfigError(
        `invalid configuration: secrets.encryptionKeys (env SECRETS_ENCRYPTION_KEYS): key id ${id} appears twice`,
        { key: 'secrets.encryptionKeys' },
      )
    keys.set(id, key)
  }
  if (keys.size === 0)
    throw new ConfigError(
      'invalid configuration: secrets.encryptionKeys (env SECRETS_ENCRYPTION_KEYS) ' +
        'is empty: give at least one <id>:<base64 of 32 bytes>',
      { key: 'secrets.encryptionKeys' },
    )
  const current = currentKeyId !== '' ? currentKeyId : [...keys.keys()][0]!
  if (!keys.has(current))
    throw new ConfigError(
      `invalid configuration: secrets.currentKeyId (env SECRETS_CURRENT_KEY_ID) ` +
        `${current} is not in secrets.encryptionKeys`,
      { key: 'secrets.currentKeyId' },
    )
  return { currentKeyId: current, keys }
}

export function generateKeyRingEntry(id: string): string {
  return `${id}:${crypto.randomBytes(32).toString('base64')}`
}

export function createSecretBox(ring: KeyRing): SecretBox {
  const b64 = (b: Buffer) => b.toString('base64url')
  const parse = (sealed: string) => {
    const parts = sealed.startsWith(PREFIX) ? sealed.slice(PREFIX.length).split(':') : []
    if (parts.length !== 4) throw new SecretUnreadableError('not a sealed secret', {})
    const [kid, iv, tag, ct] = parts as [string, string, string, string]
    return {
      kid,
      iv: Buffer.from(iv, 'base64url'),
      tag: Buffer.from(tag, 'base64url'),
      ct: Buffer.from(ct, 'base64url'),
    }
  }
  const box: SecretBox = {
    currentKeyId: ring.currentKeyId,
    seal(plaintext) {
      const key = ring.keys.get(ring.currentKeyId)!
      const iv = crypto.randomBytes(12)
      const cipher = crypto.createCipheriv('aes-256-gcm', key, iv)
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return `${PREFIX}${ring.currentKeyId}:${b64(iv)}:${b64(cipher.getAuthTag())}:${b64(ct)}`
    },
    open(sealed) {
      const { kid, iv, tag, ct } = parse(sealed)
      const key = ring.keys.get(kid)
      if (!key)
        throw new SecretUnreadableError(`secret sealed with key ${kid}, which is not in the key ring`, { keyId: kid })
      try {
        const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv)
        decipher.setAuthTag(tag)
        return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8')
      } catch (err) {
        throw new SecretUnreadableError(
          'secret failed authentication (wrong key or tampered)',
          { keyId: kid },
          { cause: err },
        )
      }
    },
    keyIdOf: (sealed) => parse(sealed).kid,
    reseal(sealed) {
      return box.keyIdOf(sealed) === ring.currentKeyId ? sealed : box.seal(box.open(sealed))
    },
  }
  return box
}

/**
 * What a rotation at `now` keeps beside the new secret: the secrets still valid, none valid past the end of the
 * overlap, `overlapSeconds` from now (the current secret, valid without an end, gets that end).
 */
export function rotatedOut<T extends { expiresAt: Date | null }>(
  secrets: readonly T[],
  now: Date,
  overlapSeconds: number,
): Array<T & { expiresAt: Date }> {
  const until = new Date(now.getTime() + overlapSeconds * 1000)
  return secrets
    .filter((s) => s.expiresAt === null || s.expiresAt > now)
    .map((s) => ({ ...s, expiresAt: s.expiresAt === null || s.expiresAt > until ? until : s.expiresAt }))
}

/** Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${crypto.randomBytes(32).toString('base64')}`
}
