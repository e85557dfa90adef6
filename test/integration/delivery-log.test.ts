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

  it('inserts the first attempts of many events in a few commands; known and legacy events in the batch keep one document each', async () => {
    const name = uniqueName('dlog-batch').slice(0, 60)
    dropDatabaseLater(name)
    const watched = await new MongoClient(mongoUri(loadConfig()), { monitorCommands: true }).connect()
    try {
      const bdb = watched.db(name)
      await ensureIndexes(bdb)
      const writes: string[] = []
      watched.on('commandStarted', (e) => {
        if (e.commandName === 'insert' || e.commandName === 'update') writes.push(`${e.commandName}:${String(e.command[e.commandName])}`)
      })
      const known = new DeliveryLog(collections(bdb)) // another process wrote the first attempt of ev-k-*
      for (let i = 0; i < 3; i++) await known.recordAttempt({ ...base, eventId: `ev-k-${i}`, status: 'retrying', attempt: attempt(503) })
      const legacyId = newId('dlv')
      await bdb.collection('deliveries').insertOne({ _id: legacyId as never, ...base, eventId: 'ev-legacy', status: 'retrying', attempts: [], attemptCount: 1, createdAt: new Date(), updatedAt: new Date() })
      writes.length = 0

      const log = new DeliveryLog(collections(bdb))
      const events = [...Array.from({ length: 600 }, (_, i) => `ev-${i}`), 'ev-k-0', 'ev-k-1', 'ev-k-2', 'ev-legacy']
      await Promise.all(events.map((eventId, i) => log.recordAttempt({ ...base, subscriptionId: i % 2 === 0 ? 'sub_a' : 'sub_b', eventId, status: 'delivered', attempt: attempt(200) })))
      const inserts = writes.filter((w) => w.startsWith('insert:'))
      expect(inserts.length, writes.join(' ')).to.be.at.most(8) // 604 first attempts: batches of 250, two inserts each

      const docs = await bdb.collection('deliveries').find({}).toArray()
      const perEvent = new Map<string, number>()
      for (const d of docs) perEvent.set(`${d.subscriptionId}|${d.eventId}`, (perEvent.get(`${d.subscriptionId}|${d.eventId}`) ?? 0) + 1)
      expect([...perEvent.values()].every((n) => n === 1), 'one document per (subscription, event)').to.equal(true)
      expect(docs.filter((d) => /^ev-\d+$/.test(d.eventId as string) && d.status === 'delivered' && d.attemptCount === 1)).to.have.length(600)
      // ev-k-*: sub_1 wrote them; these went to sub_a/sub_b, so they are new events there. The same
      // subscription and event through the batch: the known mapping wins, the attempt is appended.
      await Promise.all([0, 1, 2].map((i) => log.recordAttempt({ ...base, eventId: `ev-k-${i}`, status: 'delivered', attempt: attempt(200) })))
      const fresh = new DeliveryLog(collections(bdb))
      await Promise.all([0, 1, 2].map((i) => fresh.recordAttempt({ ...base, eventId: `ev-k-${i}`, status: 'delivered', attempt: attempt(201) })))
      for (let i = 0; i < 3; i++) {
        const d = await bdb.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: `ev-k-${i}` }).toArray()
        expect(d).to.have.length(1)
        expect(d[0]).to.include({ status: 'delivered', attemptCount: 3 })
      }
      await fresh.recordAttempt({ ...base, eventId: 'ev-legacy', status: 'delivered', attempt: attempt(200) })
      const legacy = await bdb.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: 'ev-legacy' }).toArray()
      expect(legacy.map((d) => d._id)).to.deep.equal([legacyId])
      expect(legacy[0]).to.include({ status: 'delivered', attemptCount: 2 })
      expect((await fresh.get('sub_1', 'ev-legacy'))?._id).to.equal(legacyId)
    } finally {
      await watched.close()
    }
  })

  it('holds successful deliveries for their longer window, and a failure entering the batch writes it within its own', async () => {
    const log = new DeliveryLog(collections(db), { firstMs: 10, deliveredMs: 20_000 })
    let done = false
    const success = log.recordAttempt({ ...base, subscriptionId: 'sub_w', eventId: 'ev-ok', status: 'delivered', attempt: attempt(200) }).then(() => (done = true))
    await new Promise((r) => setTimeout(r, 300)) // a timer never fires early: 300 ms is inside the 20 s window
    expect(done).to.equal(false)
    expect(await db.collection('deliveries').countDocuments({ eventId: 'ev-ok' })).to.equal(0)
    const t0 = Date.now()
    await log.recordAttempt({ ...base, subscriptionId: 'sub_w', eventId: 'ev-fail', status: 'retrying', attempt: attempt(503) })
    await success
    expect(Date.now() - t0, 'written with the failure, not after the success window').to.be.below(10_000)
    const docs = await db.collection('deliveries').find({ subscriptionId: 'sub_w' }).toArray()
    expect(docs.map((d) => [d.eventId, d.status]).sort()).to.deep.equal([['ev-fail', 'retrying'], ['ev-ok', 'delivered']])
  })
})
