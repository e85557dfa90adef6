/**
 * API keys: `dk_<12 hex>.<43 base64url>`. The part before the dot is the non-secret prefix (unique,
 * listed, used to find the record); the secret after it is stored only as scrypt(secret, salt).
 * The plaintext exists once, in the answer to the create or rotate call.
 *
 * A verified key is trusted for `cacheMs` without re-hashing (scrypt costs tens of milliseconds by
 * design); a revocation in this process clears it at once, in other processes within `cacheMs`.
 */
import crypto from 'node:crypto'
import { promisify } from 'node:util'
import type { Logger } from '../common/logger.ts'
import type { Collections } from './store.ts'
import { newId } from './store.ts'
import type { ApiKeyDoc, Principal, Scope } from './types.ts'

const scrypt = promisify(crypto.scrypt) as (password: string, salt: Buffer, keylen: number, options: crypto.ScryptOptions) => Promise<Buffer>
const SCRYPT = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }
const KEY_FORMAT = /^(dk_[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/
const LAST_USED_THROTTLE_MS = 60_000

export const BOOTSTRAP_KEY_ID = 'bootstrap'

export interface ApiKeyOptions {
  /** The admin key from the configuration (ADMIN_API_KEY); empty: none. */
  bootstrapKey: string
  cacheMs: number
  logger: Logger
}

export interface CreatedKey {
  doc: ApiKeyDoc
  /** The plaintext key: give it to the caller once, never store or log it. */
  key: string
}

export interface CreateKeyInput {
  scope: Scope
  organizationId: string | null
  name: string
  createdBy: string
  expiresAt?: Date | null
  rotatedFrom?: string | null
}

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest()

export class ApiKeys {
  private readonly cache = new Map<string, { principal: Principal; until: number; expiresAt: number | null }>()
  private readonly lastUsedWrites = new Map<string, number>()
  private readonly bootstrapDigest: Buffer | null

  constructor(
    private readonly cols: Collections,
    private readonly options: ApiKeyOptions,
  ) {
    this.bootstrapDigest = options.bootstrapKey !== '' ? sha256(options.bootstrapKey) : null
  }

  async create(input: CreateKeyInput): Promise<CreatedKey> {
    const prefix = `dk_${crypto.randomBytes(6).toString('hex')}`
    const secret = crypto.randomBytes(32).toString('base64url')
    const salt = crypto.randomBytes(16)
    const hash = await scrypt(secret, salt, 32, SCRYPT)
    const doc: ApiKeyDoc = {
      _id: newId('key'),
      prefix,
      hash: hash.toString('base64'),
      salt: salt.toString('base64'),
      scope: input.scope,
      organizationId: input.organizationId,
      name: input.name,
      createdAt: new Date(),
      createdBy: input.createdBy,
      expiresAt: input.expiresAt ?? null,
      revokedAt: null,
      lastUsedAt: null,
      rotatedFrom: input.rotatedFrom ?? null,
    }
    await this.cols.apiKeys.insertOne(doc)
    return { doc, key: `${prefix}.${secret}` }
  }

  /** The principal of a presented key, or null (unknown, wrong, revoked or expired: all alike). */
  async authenticate(presented: string): Promise<Principal | null> {
    if (this.bootstrapDigest !== null) {
      const d = sha256(presented)
      if (crypto.timingSafeEqual(d, this.bootstrapDigest)) return { keyId: BOOTSTRAP_KEY_ID, scope: 'admin', organizationId: null }
    }
    const m = KEY_FORMAT.exec(presented)
    if (!m) return null
    const now = Date.now()
    const cacheKey = sha256(presented).toString('base64')
    const hit = this.cache.get(cacheKey)
    if (hit && hit.until > now && (hit.expiresAt === null || hit.expiresAt > now)) {
      this.touch(hit.principal.keyId, now)
      return hit.principal
    }
    this.cache.delete(cacheKey)
    const doc = await this.cols.apiKeys.findOne({ prefix: m[1]! })
    if (!doc || doc.revokedAt !== null || (doc.expiresAt !== null && doc.expiresAt.getTime() <= now)) return null
    const hash = await scrypt(m[2]!, Buffer.from(doc.salt, 'base64'), 32, SCRYPT)
    if (!crypto.timingSafeEqual(hash, Buffer.from(doc.hash, 'base64'))) return null
    const principal: Principal = { keyId: doc._id, scope: doc.scope, organizationId: doc.organizationId }
    if (this.cache.size > 10_000) this.cache.clear()
    this.cache.set(cacheKey, { principal, until: now + this.options.cacheMs, expiresAt: doc.expiresAt?.getTime() ?? null })
    this.touch(doc._id, now)
    return principal
  }

  /** Revokes at once (idempotent). */
  async revoke(id: string): Promise<ApiKeyDoc | null> {
    await this.cols.apiKeys.updateOne({ _id: id, revokedAt: null }, { $set: { revokedAt: new Date() } })
    this.forget(id)
    return this.cols.apiKeys.findOne({ _id: id })
  }

  /** A new key with the same scope and organization; the old one stays valid for `overlapSeconds`. */
  async rotate(old: ApiKeyDoc, overlapSeconds: number, by: string, name?: string): Promise<CreatedKey> {
    const created = await this.create({ scope: old.scope, organizationId: old.organizationId, name: name ?? old.name, createdBy: by, rotatedFrom: old._id })
    const end = new Date(Date.now() + overlapSeconds * 1000)
    const expiresAt = old.expiresAt !== null && old.expiresAt < end ? old.expiresAt : end
    await this.cols.apiKeys.updateOne({ _id: old._id }, { $set: { expiresAt } })
    this.forget(old._id)
    return created
  }

  private forget(keyId: string): void {
    for (const [k, v] of this.cache) if (v.principal.keyId === keyId) this.cache.delete(k)
  }

  /** lastUsedAt, written at most once a minute per key, never on the request's critical path. */
  private touch(keyId: string, now: number): void {
    const last = this.lastUsedWrites.get(keyId) ?? 0
    if (now - last < LAST_USED_THROTTLE_MS) return
    this.lastUsedWrites.set(keyId, now)
    this.cols.apiKeys.updateOne({ _id: keyId }, { $set: { lastUsedAt: new Date(now) } }).catch((err: unknown) => {
      this.options.logger.warn('could not record API key use', { keyId, err })
    })
  }
}
