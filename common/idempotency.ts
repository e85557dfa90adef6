/**
 * The one Idempotency-Key store (draft-ietf-httpapi-idempotency-key-header), for the management API's
 * creates and for HTTP ingestion alike (issue 22: each had its own): the first request with a key
 * claims it, a later one with the same key and the same request gets the first answer back and runs
 * nothing, one with the same key and another request is told so (the caller answers 422), and one
 * that arrives while the first is still running is told that (409).
 *
 * - The claim is an insert under a unique _id: exactly one of concurrent requests wins it, on MongoDB
 *   and on FerretDB alike (which does not isolate concurrent updates, so no read-modify-write decides
 *   who owns a key). The _id is the caller's: it scopes the key (an API key, an organization).
 * - Expiry is explicit, since FerretDB has no TTL indexes: a claim blocks its key for `pendingMs` (a
 *   crashed request's claim lapses), an answer is replayed for `windowMs` after it was stored; expired
 *   records are ignored on read, taken over by a conditional delete (on their expiresAt) and a fresh
 *   claim (which again only one request wins), and deleted by `sweep` (the platform's periodic
 *   sweep) and, at most once a `purgeEveryMs`, by a claim itself.
 * - `complete` and `release` act only on the claim they were given (its createdAt): a request that
 *   outlived its claim never overwrites the answer of the request that took the key over.
 * - The answer's body may be sealed (`seal`): a create's answer can hold a key or a secret shown once.
 */
import { createHash } from 'node:crypto'
import type { Collection } from 'mongodb'
import { isDuplicateKey } from './store-errors.ts'

/** An answer as it is replayed: status, the headers worth repeating, and the body as sent. */
export interface StoredResponse {
  status: number
  headers: Record<string, string>
  /** The body as sent (sealed in the store when the store seals). */
  body: string
}

export interface IdempotencyDoc {
  /** The caller's scope and the Idempotency-Key, e.g. `<api key id>:<key>`. */
  _id: string
  /** What makes two requests the same (`fingerprint`). */
  fingerprint: string
  state: 'pending' | 'done'
  createdAt: Date
  /** Pending: when the claim lapses; done: when the answer stops being replayed. */
  expiresAt: Date
  response?: StoredResponse
}

/** A won claim: pass it to `complete` or `release`. */
export interface IdempotencyClaim {
  id: string
  createdAt: Date
}

export type ClaimOutcome =
  | { kind: 'claimed'; claim: IdempotencyClaim }
  /** The same request answered before: send `response` again. */
  | { kind: 'replay'; response: StoredResponse }
  /** The key was used for another request (a different fingerprint). */
  | { kind: 'reused' }
  /** The same key's first request has not answered yet. */
  | { kind: 'in-progress' }

export interface IdempotencyOptions {
  /** How long a stored answer is replayed, in ms. */
  windowMs: number
  /** How long an unfinished claim blocks its key, in ms. Default 60 s. */
  pendingMs?: number
  /** Seals the stored body (and opens it for a replay); absent: the body is stored as sent. */
  seal?: { seal(plaintext: string): string; open(sealed: string): string }
  /** A claim also deletes expired records, at most this often per process, in ms. Default 60 s. */
  purgeEveryMs?: number
}

/** A digest of the parts that make a request what it is (each part delimited, so none runs into the next). */
export function fingerprint(...parts: Array<string | Buffer>): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p).update('\u0000')
  return h.digest('hex')
}

/** Claims taken over after expiring, in a row, before giving up (each loss means another request won). */
const MAX_TAKEOVERS = 5

export class IdempotencyStore {
  readonly windowMs: number
  readonly pendingMs: number
  readonly purgeEveryMs: number
  private lastPurge = 0

  constructor(
    readonly collection: Collection<IdempotencyDoc>,
    private readonly options: IdempotencyOptions,
  ) {
    this.windowMs = options.windowMs
    this.pendingMs = options.pendingMs ?? 60_000
    this.purgeEveryMs = options.purgeEveryMs ?? 60_000
    // windowMs 0 replays nothing (every answer expires as it is stored); a claim must block its key a while
    if (!Number.isFinite(this.windowMs) || this.windowMs < 0)
      throw new RangeError(`idempotency.windowMs: ${this.windowMs} is not a duration (0 ms or more)`)
    for (const [field, v] of [
      ['pendingMs', this.pendingMs],
      ['purgeEveryMs', this.purgeEveryMs],
    ] as const) {
      if (!Number.isFinite(v) || v <= 0)
        throw new RangeError(`idempotency.${field}: ${v} is not a duration (more than 0 ms)`)
    }
  }

  /** Claims `id` for a request with fingerprint `print`, or says what became of the key's first request. */
  async claim(id: string, print: string): Promise<ClaimOutcome> {
    this.purgeSometimes()
    for (let takeover = 0; takeover < MAX_TAKEOVERS; takeover++) {
      const now = new Date()
      try {
        await this.collection.insertOne({
          _id: id,
          fingerprint: print,
          state: 'pending',
          createdAt: now,
          expiresAt: new Date(now.getTime() + this.pendingMs),
        })
        return { kind: 'claimed', claim: { id, createdAt: now } }
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
      const doc = await this.collection.findOne({ _id: id })
      if (!doc) continue // released meanwhile: claim again
      if (doc.expiresAt.getTime() > Date.now()) return this.outcome(doc, print)
      // Expired but not swept yet: take it over (only the request whose delete matched goes on to claim).
      await this.collection.deleteOne({ _id: id, expiresAt: doc.expiresAt })
    }
    throw new Error(`idempotency key ${id} could not be claimed (taken over ${MAX_TAKEOVERS} times by other requests)`)
  }

  private outcome(doc: IdempotencyDoc, print: string): ClaimOutcome {
    if (doc.fingerprint !== print) return { kind: 'reused' }
    if (doc.state !== 'done' || !doc.response) return { kind: 'in-progress' }
    const r = doc.response
    return {
      kind: 'replay',
      response: {
        status: r.status,
        headers: r.headers ?? {},
        body: this.options.seal ? this.options.seal.open(r.body) : r.body,
      },
    }
  }

  /** Stores the claim's answer, replayed from now on for `windowMs`. */
  async complete(claim: IdempotencyClaim, response: StoredResponse): Promise<void> {
    const stored = { ...response, body: this.options.seal ? this.options.seal.seal(response.body) : response.body }
    await this.collection.updateOne(
      { _id: claim.id, state: 'pending', createdAt: claim.createdAt },
      { $set: { state: 'done', response: stored, expiresAt: new Date(Date.now() + this.windowMs) } },
    )
  }

  /** The request stored nothing (it failed, or answered 503): the key is free for the retry. */
  async release(claim: IdempotencyClaim): Promise<void> {
    await this.collection.deleteOne({ _id: claim.id, state: 'pending', createdAt: claim.createdAt })
  }

  /** Deletes the records expired at `now`; returns how many. */
  async sweep(now = new Date()): Promise<number> {
    const r = await this.collection.deleteMany({ expiresAt: { $lte: now } })
    return r.deletedCount
  }

  private purgeSometimes(): void {
    const now = Date.now()
    if (now - this.lastPurge < this.purgeEveryMs) return
    this.lastPurge = now
    this.sweep(new Date(now)).catch(() => undefined) // the next claim's sweep or the periodic one tries again
  }
}
