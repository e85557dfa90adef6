/**
 * Idempotency-Key for creates, without transactions or TTL indexes: the first request inserts a
 * record (the unique _id makes a concurrent twin fail), the outcome is stored sealed (it may hold a
 * key or secret shown once), and a periodic sweep deletes expired records.
 */
import crypto from 'node:crypto'
import type { SecretBox } from '../common/secret-box.ts'
import { ConflictError, isDuplicateKey, RequestInvalidError } from './errors.ts'
import type { Collections } from './store.ts'

export type IdempotencyStart = { kind: 'new'; recordId: string } | { kind: 'replay'; status: number; body: unknown }

export function fingerprint(method: string, path: string, body: unknown): string {
  return crypto.createHash('sha256').update(`${method} ${path}\n${JSON.stringify(body ?? null)}`).digest('base64url')
}

export class IdempotencyStore {
  constructor(
    private readonly cols: Collections,
    private readonly box: SecretBox,
    private readonly ttlSeconds: number,
  ) {}

  async begin(keyId: string, idempotencyKey: string, print: string): Promise<IdempotencyStart> {
    const _id = `${keyId}:${idempotencyKey}`
    const now = new Date()
    try {
      await this.cols.idempotency.insertOne({ _id, fingerprint: print, state: 'in-progress', status: null, sealedBody: null, createdAt: now, expiresAt: new Date(now.getTime() + this.ttlSeconds * 1000) })
      return { kind: 'new', recordId: _id }
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
    const rec = await this.cols.idempotency.findOne({ _id })
    if (!rec || rec.expiresAt <= now) {
      // Expired but not swept yet: take it over.
      await this.cols.idempotency.deleteOne({ _id, expiresAt: { $lte: now } })
      return this.begin(keyId, idempotencyKey, print)
    }
    if (rec.fingerprint !== print) {
      throw new RequestInvalidError([{ field: 'Idempotency-Key', message: 'was already used with a different request; use a new key for a new request' }])
    }
    if (rec.state === 'in-progress' || rec.status === null || rec.sealedBody === null) {
      throw new ConflictError('a request with this Idempotency-Key is still in progress; retry later', 'Idempotency-Key')
    }
    return { kind: 'replay', status: rec.status, body: JSON.parse(this.box.open(rec.sealedBody)) as unknown }
  }

  async complete(recordId: string, status: number, body: unknown): Promise<void> {
    await this.cols.idempotency.updateOne({ _id: recordId }, { $set: { state: 'done', status, sealedBody: this.box.seal(JSON.stringify(body ?? null)) } })
  }

  /** The request failed: forget the key so that a retry runs again. */
  async abandon(recordId: string): Promise<void> {
    await this.cols.idempotency.deleteOne({ _id: recordId, state: 'in-progress' })
  }

  async sweep(now = new Date()): Promise<number> {
    const r = await this.cols.idempotency.deleteMany({ expiresAt: { $lte: now } })
    return r.deletedCount
  }
}
