/**
 * The one Idempotency-Key store (common/idempotency.ts), which the management API's creates and HTTP
 * ingestion share, against the real store (FerretDB locally): replay, reuse with another request,
 * concurrent claims, expiry without TTL indexes (takeover and sweep), a lapsed claim that cannot
 * overwrite its successor's answer, and sealed bodies.
 */
import { expect } from 'chai'
import type { Collection, Db, MongoClient } from 'mongodb'
import { createSecretBox, generateKeyRingEntry, parseKeyRing } from '../../common/secret-box.ts'
import { IdempotencyStore, fingerprint, type IdempotencyDoc } from '../../common/idempotency.ts'
import { dropDatabaseLater, testMongo, uniqueName } from '../helpers/env.ts'

describe('idempotency store (common/idempotency.ts)', function () {
  let client: MongoClient
  let db: Db
  let col: Collection<IdempotencyDoc>
  const answer = (body: string) => ({ status: 201, headers: { 'content-type': 'application/json' }, body })

  before(async () => {
    client = testMongo()
    await client.connect()
    db = client.db(uniqueName('idem').replace(/-/g, '_').slice(0, 60))
    col = db.collection<IdempotencyDoc>('idempotency')
  })

  after(async () => {
    dropDatabaseLater(db.databaseName)
    await client.close()
  })

  it(
    'replays the answer to the same request, refuses the key for another one, and ' +
      'says when the first is still running',
    async () => {
      const store = new IdempotencyStore(col, { windowMs: 60_000 })
      const print = fingerprint('POST', '/v1/things', '{"a":1}')
      const first = await store.claim('k1:same', print)
      expect(first.kind).to.equal('claimed')
      expect((await store.claim('k1:same', print)).kind).to.equal('in-progress')
      expect((await store.claim('k1:same', fingerprint('POST', '/v1/things', '{"a":2}'))).kind).to.equal('reused')
      if (first.kind !== 'claimed') return
      await store.complete(first.claim, answer('{"id":"t1"}'))
      expect(await store.claim('k1:same', print)).to.deep.equal({ kind: 'replay', response: answer('{"id":"t1"}') })
      expect((await store.claim('k1:same', fingerprint('POST', '/v1/things', '{"a":2}'))).kind).to.equal('reused')
      // another scope's key of the same name is another key
      expect((await store.claim('k2:same', print)).kind).to.equal('claimed')
    },
  )

  it('fingerprints delimit their parts', () => {
    expect(fingerprint('ab', 'c')).to.not.equal(fingerprint('a', 'bc'))
    expect(fingerprint('a', Buffer.from('b'))).to.equal(fingerprint('a', 'b'))
  })

  it('lets exactly one of concurrent requests with one key claim it', async () => {
    const store = new IdempotencyStore(col, { windowMs: 60_000 })
    const print = fingerprint('race')
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => store.claim('k1:race', print)))
    expect(outcomes.filter((o) => o.kind === 'claimed')).to.have.length(1)
    expect(outcomes.filter((o) => o.kind === 'in-progress')).to.have.length(7)
  })

  it('frees a released key for the retry', async () => {
    const store = new IdempotencyStore(col, { windowMs: 60_000 })
    const first = await store.claim('k1:released', 'p')
    if (first.kind !== 'claimed') throw new Error(first.kind)
    await store.release(first.claim)
    expect((await store.claim('k1:released', 'p')).kind).to.equal('claimed')
  })

  it('takes over a lapsed claim, and the lapsed request neither answers for it nor frees it', async () => {
    const store = new IdempotencyStore(col, { windowMs: 60_000, pendingMs: 60_000 })
    const crashed = await store.claim('k1:lapsed', 'p')
    if (crashed.kind !== 'claimed') throw new Error(crashed.kind)
    // the claim lapses (expiry is a stored time: no TTL index, no waiting)
    await col.updateOne({ _id: 'k1:lapsed' }, { $set: { expiresAt: new Date(Date.now() - 1000) } })
    const retry = await store.claim('k1:lapsed', 'p')
    if (retry.kind !== 'claimed') throw new Error(retry.kind)
    await store.complete(crashed.claim, answer('"late"'))
    await store.release(crashed.claim)
    expect((await store.claim('k1:lapsed', 'p')).kind).to.equal('in-progress')
    await store.complete(retry.claim, answer('"retry"'))
    expect(await store.claim('k1:lapsed', 'p')).to.deep.equal({ kind: 'replay', response: answer('"retry"') })
  })

  it('stops replaying after the window, and the sweep deletes what expired (no TTL index in the store)', async () => {
    const store = new IdempotencyStore(col, { windowMs: 60_000 })
    const c = await store.claim('k1:window', 'p')
    if (c.kind !== 'claimed') throw new Error(c.kind)
    await store.complete(c.claim, answer('"once"'))
    const doc = await col.findOne({ _id: 'k1:window' })
    expect(doc!.expiresAt.getTime()).to.be.greaterThan(Date.now() + 30_000)
    await store.sweep()
    expect(await col.findOne({ _id: 'k1:window' })).to.not.equal(null)
    const later = new Date(doc!.expiresAt.getTime() + 1)
    const swept = await store.sweep(later)
    expect(swept).to.be.at.least(1)
    expect(await col.findOne({ _id: 'k1:window' })).to.equal(null)
    // an expired answer that no sweep removed yet is not replayed: the key is claimed afresh
    const again = await store.claim('k1:window', 'p')
    if (again.kind !== 'claimed') throw new Error(again.kind)
    await store.complete(again.claim, answer('"twice"'))
    await col.updateOne({ _id: 'k1:window' }, { $set: { expiresAt: new Date(Date.now() - 1) } })
    expect((await store.claim('k1:window', 'other')).kind).to.equal('claimed')
  })

  it('seals the stored body and opens it for the replay', async () => {
    const box = createSecretBox(parseKeyRing(generateKeyRingEntry('k1')))
    const store = new IdempotencyStore(col, { windowMs: 60_000, seal: box })
    const c = await store.claim('k1:sealed', 'p')
    if (c.kind !== 'claimed') throw new Error(c.kind)
    await store.complete(c.claim, answer('{"key":"dst_secret_shown_once"}'))
    expect(JSON.stringify(await col.findOne({ _id: 'k1:sealed' }))).to.not.include('dst_secret_shown_once')
    expect(await store.claim('k1:sealed', 'p')).to.deep.equal({
      kind: 'replay',
      response: answer('{"key":"dst_secret_shown_once"}'),
    })
  })

  it('refuses durations it cannot keep, naming the field', () => {
    expect(() => new IdempotencyStore(col, { windowMs: -1 })).to.throw(/windowMs/)
    expect(() => new IdempotencyStore(col, { windowMs: 1000, pendingMs: 0 })).to.throw(/pendingMs/)
    expect(() => new IdempotencyStore(col, { windowMs: 1000, purgeEveryMs: Number.NaN })).to.throw(/purgeEveryMs/)
  })
})
