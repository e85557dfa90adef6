/**
 * API keys: `dk_<12 hex>.<43 base64url>`. The part before the dot is the non-secret prefix (unique,
 * listed, used to find the record); the secret after it is stored only as scrypt(secret, salt).
 * The plaintext exists once, in the answer to the create or rotate call.
 *
 * A verified key is trusted for `cacheMs` without re-hashing (scrypt costs tens of milliseconds by
 * design); a revocation in this process clears it at once, in other processes within `cacheMs`. After
 * that the key is checked again with one read (not revoked, not expired, the same stored hash) but not
 * re-hashed: the process remembers the SHA-256 of each key it verified (the most recent 10,000).
 *
 * Hashing is the expensive part, and it runs in libuv's thread pool, which DNS lookups and file I/O
 * share. So a key this process has not verified yet must first pass `attempts`: token buckets per
 * client address and per key prefix, charged before the lookup and the hash and given back when the
 * key is valid, so only failures count, and while a bucket is empty the answer is a RateLimitedError
 * (429) without any lookup or hash. At most `verifyConcurrency` hashes run at once, `verifyQueue` more
 * wait, and beyond that a verification is refused as busy (503). Concurrent requests with the same
 * key share one verification.
 */
import crypto from 'node:crypto'
import { promisify } from 'node:util'
import type { Logger } from '../common/logger.ts'
import { RateLimitedError } from '../common/errors.ts'
import { Limiter } from '../common/limiter.ts'
import { LruMap } from '../common/lru-map.ts'
import { TokenBuckets, type RateLimit } from '../common/token-buckets.ts'
import type { Collections } from './store.ts'
import { newId } from './store.ts'
import type { ApiKeyDoc, Principal, Scope } from './types.ts'

const scrypt = promisify(crypto.scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>
const SCRYPT = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }
const KEY_FORMAT = /^(dk_[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/
const LAST_USED_THROTTLE_MS = 60_000
/** Verified keys remembered (by SHA-256) so that they are never hashed again in this process. */
const KNOWN_KEYS = 10_000

export const BOOTSTRAP_KEY_ID = 'bootstrap'

export interface ApiKeyOptions {
  /** The admin key from the configuration (ADMIN_API_KEY); empty: none. */
  bootstrapKey: string
  cacheMs: number
  logger: Logger
  /** Failed key attempts per client address and per key prefix (token buckets); absent or perSecond 0: unlimited. */
  attempts?: RateLimit
  /** Key verifications (scrypt) running at once at most. Default 2 (libuv's pool has 4 threads). */
  verifyConcurrency?: number
  /** Key verifications waiting for a slot at most; beyond, a verification is refused as busy. Default 32. */
  verifyQueue?: number
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

function usable(doc: ApiKeyDoc, now: number): boolean {
  return doc.revokedAt === null && (doc.expiresAt === null || doc.expiresAt.getTime() > now)
}

interface KnownKey {
  principal: Principal
  /** Trusted without any read until then. */
  until: number
  expiresAt: number | null
  /** The stored hash this key matched: a later check needs the record, not the hash. */
  hash: string
}

export class ApiKeys {
  private readonly cache = new LruMap<string, KnownKey>(KNOWN_KEYS)
  private readonly pending = new Map<string, Promise<Principal | null>>()
  private readonly lastUsedWrites = new Map<string, number>()
  private readonly bootstrapDigest: Buffer | null
  private readonly attempts: TokenBuckets | null
  private readonly hashing: Limiter
  private readonly verifyQueue: number
  /** Key verifications hashed so far (the expensive work the attempt limits protect). */
  verifications = 0

  constructor(
    private readonly cols: Collections,
    private readonly options: ApiKeyOptions,
  ) {
    this.bootstrapDigest = options.bootstrapKey !== '' ? sha256(options.bootstrapKey) : null
    this.attempts = options.attempts && options.attempts.perSecond > 0 ? new TokenBuckets(options.attempts) : null
    this.hashing = new Limiter(options.verifyConcurrency ?? 2)
    this.verifyQueue = options.verifyQueue ?? 32
  }

  async create(input: CreateKeyInput): Promise<CreatedKey> {
    const prefix = `dk_${crypto.randomBytes(6).toString('hex')}`
    const secret = crypto.randomBytes(32).toString('base64url')
    const salt = crypto.randomBytes(16)
    const hash = await this.hashing.run(() => scrypt(secret, salt, 32, SCRYPT))
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

  /**
   * The principal of a presented key, or null (unknown, wrong, revoked or expired: all alike).
   * `client` is the caller's address (its partition for the attempt limit). Throws RateLimitedError
   * when the client or the key prefix has no attempts left, or when too many verifications wait.
   */
  async authenticate(presented: string, client = 'unknown'): Promise<Principal | null> {
    const digest = sha256(presented)
    if (this.bootstrapDigest !== null && crypto.timingSafeEqual(digest, this.bootstrapDigest))
      return { keyId: BOOTSTRAP_KEY_ID, scope: 'admin', organizationId: null }
    const id = digest.toString('base64')
    const now = Date.now()
    const known = this.cache.get(id)
    if (known && known.until > now && (known.expiresAt === null || known.expiresAt > now)) {
      this.touch(known.principal.keyId, now)
      return known.principal
    }
    if (known) return this.once(id, () => this.recheck(id, known))
    const charged = this.charge(client, KEY_FORMAT.exec(presented)?.[1])
    try {
      const principal = await this.once(id, () => this.verify(presented, id))
      if (principal) this.refund(charged)
      return principal
    } catch (err) {
      this.refund(charged)
      throw err
    }
  }

  /** One verification per presented key at a time: concurrent requests with it wait for the same one. */
  private once(id: string, verify: () => Promise<Principal | null>): Promise<Principal | null> {
    let p = this.pending.get(id)
    if (!p) {
      p = verify().finally(() => this.pending.delete(id))
      this.pending.set(id, p)
    }
    return p
  }

  private async verify(presented: string, id: string): Promise<Principal | null> {
    const m = KEY_FORMAT.exec(presented)
    if (!m) return null
    const doc = await this.cols.apiKeys.findOne({ prefix: m[1]! })
    if (!doc || !usable(doc, Date.now())) return null
    if (this.hashing.size >= this.hashing.max + this.verifyQueue)
      throw new RateLimitedError('too many API key verifications at once; retry shortly', 1000, null)
    const hash = await this.hashing.run(() => {
      this.verifications++
      return scrypt(m[2]!, Buffer.from(doc.salt, 'base64'), 32, SCRYPT)
    })
    if (!crypto.timingSafeEqual(hash, Buffer.from(doc.hash, 'base64'))) return null
    return this.remember(id, doc)
  }

  /** A key verified before whose trust ran out: still there, not revoked or expired, the same hash. */
  private async recheck(id: string, known: KnownKey): Promise<Principal | null> {
    const doc = await this.cols.apiKeys.findOne({ _id: known.principal.keyId })
    if (doc && usable(doc, Date.now()) && doc.hash === known.hash) return this.remember(id, doc)
    this.cache.delete(id)
    return null
  }

  private remember(id: string, doc: ApiKeyDoc): Principal {
    const now = Date.now()
    const principal: Principal = { keyId: doc._id, scope: doc.scope, organizationId: doc.organizationId }
    this.cache.set(id, {
      principal,
      until: now + this.options.cacheMs,
      expiresAt: doc.expiresAt?.getTime() ?? null,
      hash: doc.hash,
    })
    this.touch(doc._id, now)
    return principal
  }

  /**
   * Another secret checked under the same limits as a key (a partner's Kafka password for the
   * registry, control-plane/partner-kafka.ts): a failed check costs an attempt of the client and of
   * `subject` (the user name), the hashing runs in the shared bounded pool. Throws RateLimitedError as
   * `authenticate` does.
   */
  async limitedCheck(client: string, subject: string, check: () => Promise<boolean>): Promise<boolean> {
    const charged = this.charge(client, subject)
    if (this.hashing.size >= this.hashing.max + this.verifyQueue) {
      this.refund(charged)
      throw new RateLimitedError('too many credential verifications at once; retry shortly', 1000, null)
    }
    let ok = false
    try {
      ok = await this.hashing.run(check)
      return ok
    } finally {
      if (ok) this.refund(charged)
    }
  }

  /** Takes an attempt from the client's bucket and the prefix's; throws when either is empty. */
  private charge(client: string, prefix: string | undefined): string[] {
    if (!this.attempts) return []
    const taken: string[] = []
    for (const [bucket, what] of [
      [`client:${client}`, 'from this client'],
      ...(prefix ? [[`prefix:${prefix}`, `for key prefix ${prefix}`]] : []),
    ] as const) {
      const wait = this.attempts.take(bucket)
      if (wait > 0) {
        this.refund(taken)
        throw new RateLimitedError(
          `too many failed API key attempts ${what}; retry after ${wait} s`,
          wait * 1000,
          { name: 'key-attempts', ...this.attempts.limit },
          { bucket },
        )
      }
      taken.push(bucket)
    }
    return taken
  }

  private refund(buckets: string[]): void {
    for (const b of buckets) this.attempts?.refund(b)
  }

  /** Revokes at once (idempotent). */
  async revoke(id: string): Promise<ApiKeyDoc | null> {
    await this.cols.apiKeys.updateOne({ _id: id, revokedAt: null }, { $set: { revokedAt: new Date() } })
    this.forget(id)
    return this.cols.apiKeys.findOne({ _id: id })
  }

  /** A new key with the same scope and organization; the old one stays valid for `overlapSeconds`. */
  async rotate(old: ApiKeyDoc, overlapSeconds: number, by: string, name?: string): Promise<CreatedKey> {
    const created = await this.create({
      scope: old.scope,
      organizationId: old.organizationId,
      name: name ?? old.name,
      createdBy: by,
      rotatedFrom: old._id,
    })
    const end = new Date(Date.now() + overlapSeconds * 1000)
    const expiresAt = old.expiresAt !== null && old.expiresAt < end ? old.expiresAt : end
    await this.cols.apiKeys.updateOne({ _id: old._id }, { $set: { expiresAt } })
    this.forget(old._id)
    return created
  }

  private forget(keyId: string): void {
    for (const [k, v] of this.cache.entries()) if (v.principal.keyId === keyId) this.cache.delete(k)
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
