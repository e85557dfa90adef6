/**
 * Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): the first request with a key claims
 * it, later ones with the same key get the first answer back and produce nothing.
 *
 * The claim is an insert under a unique _id (organization + key): exactly one concurrent request
 * wins it, on MongoDB and on FerretDB alike, which does not isolate concurrent updates, so no
 * read-modify-write decides who owns a key. Expiry is checked on read (FerretDB has no TTL indexes)
 * and expired entries are purged now and then; taking over an expired key is a conditional delete
 * (on its expiresAt) followed by a fresh claim, which again only one request wins.
 */
import { createHash } from 'node:crypto'
import type { Collection } from 'mongodb'
import { isDuplicateKey } from '../../common/store-errors.ts'

export interface StoredResponse {
  status: number
  headers: Record<string, string>
  body: string
}

export interface IdempotencyDoc {
  _id: string
  fingerprint: string
  state: 'pending' | 'done'
  createdAt: Date
  expiresAt: Date
  response?: StoredResponse
}

export type ClaimResult = { claimed: true } | { claimed: false; doc: IdempotencyDoc }

export function fingerprint(...parts: Array<string | Buffer>): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p).update('\u0000')
  return h.digest('hex')
}

export class IdempotencyStore {
  private lastPurge = 0

  constructor(
    readonly collection: Collection<IdempotencyDoc>,
    /** How long a completed answer is replayed, in ms. */
    readonly windowMs: number,
    /** How long an unfinished claim blocks the key (a crashed request's claim expires), in ms. */
    readonly pendingMs = 60_000,
  ) {}

  private id(scope: string, key: string): string {
    return `${scope}\u0000${key}`
  }

  async claim(scope: string, key: string, print: string): Promise<ClaimResult> {
    const _id = this.id(scope, key)
    this.purgeSometimes()
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = new Date()
      try {
        await this.collection.insertOne({ _id, fingerprint: print, state: 'pending', createdAt: now, expiresAt: new Date(now.getTime() + this.pendingMs) })
        return { claimed: true }
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
      const doc = await this.collection.findOne({ _id })
      if (!doc) continue // released meanwhile: claim again
      if (doc.expiresAt.getTime() > Date.now()) return { claimed: false, doc }
      await this.collection.deleteOne({ _id, expiresAt: doc.expiresAt })
    }
    throw new Error(`idempotency key ${key} could not be claimed`)
  }

  async complete(scope: string, key: string, response: StoredResponse): Promise<void> {
    await this.collection.updateOne(
      { _id: this.id(scope, key), state: 'pending' },
      { $set: { state: 'done', response, expiresAt: new Date(Date.now() + this.windowMs) } },
    )
  }

  /** The request stored nothing (503): the key is free for the retry. */
  async release(scope: string, key: string): Promise<void> {
    await this.collection.deleteOne({ _id: this.id(scope, key), state: 'pending' })
  }

  private purgeSometimes(): void {
    const now = Date.now()
    if (now - this.lastPurge < 60_000) return
    this.lastPurge = now
    this.collection.deleteMany({ expiresAt: { $lt: new Date(now) } }).catch(() => undefined)
  }
}
