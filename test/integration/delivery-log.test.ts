/**
 * The delivery log on the real store: one document per (subscription, event) however many attempts,
 * found by the API by (subscription, event), written by `_id` through the id mapping, and a document
 * written before the mapping existed is found and kept (no second document).
 */
import { expect } from 'chai'
import { MongoClient, type Db } from 'mongodb'
import { DeliveryLog } from '../../control-plane/deliveries.ts'
import { collections, ensureIndexes, newId } from '../../control-plane/store.ts'
import { loadConfig, mongoUri } from '../../config/index.ts'
import { dropDatabaseLater, uniqueName } from '../helpers/env.ts'

describe('delivery log', function () {
  this.timeout(30_000)
  let client: MongoClient
  let db: Db
  const attempt = (statusCode: number) => ({ at: new Date(), durationMs: 5, statusCode, error: statusCode < 300 ? null : `HTTP ${statusCode}`, responseExcerpt: String(statusCode) })
  const base = { subscriptionId: 'sub_1', partnerId: 'org_p', eventType: 'inventory.level.changed', key: 'SKU-1' }

  before(async () => {
    const name = uniqueName('dlog').slice(0, 60)
    dropDatabaseLater(name)
    client = await new MongoClient(mongoUri(loadConfig())).connect()
    db = client.db(name)
    await ensureIndexes(db)
  })
  after(() => client?.close())

  it('keeps one document per (subscription, event) across attempts, concurrent first writes and a second log instance', async () => {
    const log = new DeliveryLog(collections(db))
    const other = new DeliveryLog(collections(db)) // another process: no shared cache
    await Promise.all([
      log.recordAttempt({ ...base, eventId: 'ev-1', status: 'retrying', attempt: attempt(503) }),
      other.recordAttempt({ ...base, eventId: 'ev-1', status: 'retrying', attempt: attempt(502) }),
    ])
    await other.recordAttempt({ ...base, eventId: 'ev-1', status: 'delivered', attempt: attempt(200) })
    const docs = await db.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: 'ev-1' }).toArray()
    expect(docs).to.have.length(1)
    const got = await log.get('sub_1', 'ev-1')
    expect(got?._id).to.equal(docs[0]!._id)
    expect(got?.status).to.equal('delivered')
    expect(got?.attemptCount).to.equal(3)
    expect(got?.attempts.map((a) => a.statusCode).sort()).to.deep.equal([200, 502, 503])
    expect(got).to.include({ partnerId: 'org_p', key: 'SKU-1', eventType: 'inventory.level.changed' })
    expect(await log.get('sub_1', 'no-such-event')).to.equal(null)
  })

  it('finds and updates a document written before the id mapping existed', async () => {
    const legacyId = newId('dlv')
    await db.collection('deliveries').insertOne({ _id: legacyId as never, ...base, eventId: 'ev-old', status: 'retrying', attempts: [], attemptCount: 1, createdAt: new Date(), updatedAt: new Date() })
    const log = new DeliveryLog(collections(db))
    expect((await log.get('sub_1', 'ev-old'))?._id).to.equal(legacyId)
    await log.recordAttempt({ ...base, eventId: 'ev-old', status: 'delivered', attempt: attempt(200) })
    const docs = await db.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: 'ev-old' }).toArray()
    expect(docs.map((d) => d._id)).to.deep.equal([legacyId])
    expect(docs[0]).to.include({ status: 'delivered', attemptCount: 2 })
  })
})
