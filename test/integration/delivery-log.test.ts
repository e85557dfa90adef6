/**
 * The delivery log on the real store: one document per (subscription, event) however many attempts,
 * under the `_id` derived from the pair, found by the API by (subscription, event); a document an
 * earlier version wrote under a random `_id` is found and kept (no second document); listed newest
 * first attempt first, page by page.
 */
import { expect } from 'chai'
import { MongoClient, type Db } from 'mongodb'
import { DeliveryLog, deliveryId } from '../../control-plane/deliveries.ts'
import { PAGE_SIZE } from '../../control-plane/delivery-failures.ts'
import { collections, ensureIndexes, newId } from '../../control-plane/store.ts'
import { loadConfig, mongoUri } from '../../config/index.ts'
import { dropDatabaseLater, uniqueName } from '../helpers/env.ts'

describe('delivery log', function () {
  this.timeout(30_000)
  let client: MongoClient
  let db: Db
  const attempt = (statusCode: number) => ({
    at: new Date(),
    durationMs: 5,
    statusCode,
    error: statusCode < 300 ? null : `HTTP ${statusCode}`,
    responseExcerpt: String(statusCode),
  })
  const base = { subscriptionId: 'sub_1', partnerId: 'org_p', eventType: 'inventory.level.changed', key: 'SKU-1' }

  before(async () => {
    const name = uniqueName('dlog').slice(0, 60)
    dropDatabaseLater(name)
    client = await new MongoClient(mongoUri(loadConfig())).connect()
    db = client.db(name)
    await ensureIndexes(db)
  })
  after(() => client?.close())

  it(
    'keeps one document per (subscription, event) across attempts, concurrent ' +
      'first writes and a second log instance',
    async () => {
      const log = new DeliveryLog(collections(db))
      const other = new DeliveryLog(collections(db)) // another process: no shared cache
      await Promise.all([
        log.recordAttempt({ ...base, eventId: 'ev-1', status: 'retrying', attempt: attempt(503) }),
        other.recordAttempt({ ...base, eventId: 'ev-1', status: 'retrying', attempt: attempt(502) }),
      ])
      await other.recordAttempt({ ...base, eventId: 'ev-1', status: 'delivered', attempt: attempt(200) })
      const docs = await db.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: 'ev-1' }).toArray()
      expect(docs).to.have.length(1)
      expect(docs[0]!._id).to.equal(deliveryId('sub_1', 'ev-1'))
      expect(docs[0]!._id).to.match(/^dlv_[0-9a-f]{24}$/) // the API's id pattern (OpenAPI Delivery.id)
      expect(deliveryId('sub_1', 'ev-1'))
        .to.not.equal(deliveryId('sub_2', 'ev-1'))
        .and.to.not.equal(deliveryId('sub_1', 'ev-2'))
      expect(deliveryId('a|b', 'c')).to.not.equal(deliveryId('a', 'b|c'))
      const got = await log.get('sub_1', 'ev-1')
      expect(got?._id).to.equal(docs[0]!._id)
      expect(got?.status).to.equal('delivered')
      expect(got?.attemptCount).to.equal(3)
      expect(got?.attempts.map((a) => a.statusCode).sort()).to.deep.equal([200, 502, 503])
      expect(got).to.include({ partnerId: 'org_p', key: 'SKU-1', eventType: 'inventory.level.changed' })
      expect(await log.get('sub_1', 'no-such-event')).to.equal(null)
    },
  )

  it('finds and updates a document an earlier version wrote under a random _id', async () => {
    const legacyId = newId('dlv')
    await db.collection('deliveries').insertOne({
      _id: legacyId as never,
      ...base,
      eventId: 'ev-old',
      status: 'retrying',
      attempts: [],
      attemptCount: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    })
    const log = new DeliveryLog(collections(db))
    expect((await log.get('sub_1', 'ev-old'))?._id).to.equal(legacyId)
    await log.recordAttempt({ ...base, eventId: 'ev-old', status: 'delivered', attempt: attempt(200) })
    const docs = await db.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: 'ev-old' }).toArray()
    expect(docs.map((d) => d._id)).to.deep.equal([legacyId])
    expect(docs[0]).to.include({ status: 'delivered', attemptCount: 2 })
    await new DeliveryLog(collections(db)).markDead({
      ...base,
      publisherId: null,
      eventId: 'ev-old',
      reason: 'test',
      source: null,
      deadLetter: { topic: 't', partition: 0, offset: '1', key: null, value: null, headers: {}, deadLetterTopic: null },
    })
    expect(
      await db.collection('deliveries').find({ subscriptionId: 'sub_1', eventId: 'ev-old' }).toArray(),
    ).to.have.length(1)
    await log.requestRetry({ subscriptionId: 'sub_1', partnerId: 'org_p', eventId: 'ev-old', requestedBy: 'key_1' })
    expect((await log.get('sub_1', 'ev-old'))?.retryRequestedAt).to.be.instanceOf(Date)
  })

  it(
    'inserts the first attempts of many events in a few commands; known and ' +
      'legacy events in the batch keep one document each',
    async () => {
      const name = uniqueName('dlog-batch').slice(0, 60)
      dropDatabaseLater(name)
      const watched = await new MongoClient(mongoUri(loadConfig()), { monitorCommands: true }).connect()
      try {
        const bdb = watched.db(name)
        await ensureIndexes(bdb)
        const writes: string[] = []
        watched.on('commandStarted', (e) => {
          if (e.commandName === 'insert' || e.commandName === 'update')
            writes.push(`${e.commandName}:${String(e.command[e.commandName])}`)
        })
        const known = new DeliveryLog(collections(bdb)) // another process wrote the first attempt of ev-k-*
        for (let i = 0; i < 3; i++)
          await known.recordAttempt({ ...base, eventId: `ev-k-${i}`, status: 'retrying', attempt: attempt(503) })
        const legacyId = newId('dlv')
        await bdb.collection('deliveries').insertOne({
          _id: legacyId as never,
          ...base,
          eventId: 'ev-legacy',
          status: 'retrying',
          attempts: [],
          attemptCount: 1,
          createdAt: new Date(),
          updatedAt: new Date(),
        })
        writes.length = 0

        const log = new DeliveryLog(collections(bdb))
        const events = [...Array.from({ length: 600 }, (_, i) => `ev-${i}`), 'ev-k-0', 'ev-k-1', 'ev-k-2', 'ev-legacy']
        await Promise.all(
          events.map((eventId, i) =>
            log.recordAttempt({
              ...base,
              subscriptionId: i % 2 === 0 ? 'sub_a' : 'sub_b',
              eventId,
              status: 'delivered',
              attempt: attempt(200),
            }),
          ),
        )
        const inserts = writes.filter((w) => w.startsWith('insert:'))
        expect(inserts.length, writes.join(' ')).to.be.at.most(4) // 604 first attempts: batches of 250, one insert each

        const docs = await bdb.collection('deliveries').find({}).toArray()
        const perEvent = new Map<string, number>()
        for (const d of docs)
          perEvent.set(`${d.subscriptionId}|${d.eventId}`, (perEvent.get(`${d.subscriptionId}|${d.eventId}`) ?? 0) + 1)
        expect(
          [...perEvent.values()].every((n) => n === 1),
          'one document per (subscription, event)',
        ).to.equal(true)
        expect(
          docs.filter((d) => /^ev-\d+$/.test(d.eventId as string) && d.status === 'delivered' && d.attemptCount === 1),
        ).to.have.length(600)
        // stored without its null fields; read with them
        const raw = docs.find((d) => d.eventId === 'ev-7')!
        expect(Object.entries(raw).filter(([, v]) => v === null)).to.deep.equal([])
        expect(raw).to.not.have.property('deadAt')
        const read = (await log.get('sub_b', 'ev-7'))!
        expect(read).to.include({ deadAt: null, deadReason: null, retryRequestedAt: null, status: 'delivered' })
        expect(read.attempts[0]).to.include({ error: null, statusCode: 200 })
        expect((await log.search({ subscriptionId: 'sub_b', eventId: 'ev-7' }, { limit: 1 })).items[0]).to.deep.equal(
          read,
        )
        // ev-k-*: sub_1 wrote them; these went to sub_a/sub_b, so they are new events there. The same
        // subscription and event through the batch: the insert is refused, the attempt is appended.
        await Promise.all(
          [0, 1, 2].map((i) =>
            log.recordAttempt({ ...base, eventId: `ev-k-${i}`, status: 'delivered', attempt: attempt(200) }),
          ),
        )
        const fresh = new DeliveryLog(collections(bdb))
        await Promise.all(
          [0, 1, 2].map((i) =>
            fresh.recordAttempt({ ...base, eventId: `ev-k-${i}`, status: 'delivered', attempt: attempt(201) }),
          ),
        )
        for (let i = 0; i < 3; i++) {
          const d = await bdb
            .collection('deliveries')
            .find({ subscriptionId: 'sub_1', eventId: `ev-k-${i}` })
            .toArray()
          expect(d).to.have.length(1)
          expect(d[0]).to.include({ status: 'delivered', attemptCount: 3 })
        }
        await fresh.recordAttempt({ ...base, eventId: 'ev-legacy', status: 'delivered', attempt: attempt(200) })
        const legacy = await bdb
          .collection('deliveries')
          .find({ subscriptionId: 'sub_1', eventId: 'ev-legacy' })
          .toArray()
        expect(legacy.map((d) => d._id)).to.deep.equal([legacyId])
        expect(legacy[0]).to.include({ status: 'delivered', attemptCount: 2 })
        expect((await fresh.get('sub_1', 'ev-legacy'))?._id).to.equal(legacyId)
      } finally {
        await watched.close()
      }
    },
  )

  it('lists newest first attempt first, page by page (ties by _id), within since/until', async () => {
    const log = new DeliveryLog(collections(db))
    for (let i = 0; i < 4; i++) {
      await log.recordAttempt({
        ...base,
        subscriptionId: 'sub_p',
        eventId: `ev-p-${i}`,
        status: 'retrying',
        attempt: attempt(503),
      })
      await new Promise((r) => setTimeout(r, 5))
    }
    const tie = new Date()
    const tied = ['ev-t-0', 'ev-t-1', 'ev-t-2'].map((eventId) => ({
      _id: deliveryId('sub_p', eventId),
      ...base,
      subscriptionId: 'sub_p',
      eventId,
      status: 'delivered',
      attempts: [],
      attemptCount: 1,
      createdAt: tie,
      updatedAt: tie,
    }))
    await db.collection('deliveries').insertMany(tied as never[])
    const all = await db.collection('deliveries').find({ subscriptionId: 'sub_p' }).toArray()
    const expected = all
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a._id < b._id ? 1 : -1))
      .map((d) => d.eventId as string)
    expect(expected.slice(0, 3).sort()).to.deep.equal(['ev-t-0', 'ev-t-1', 'ev-t-2'])
    expect(expected.slice(3)).to.deep.equal(['ev-p-3', 'ev-p-2', 'ev-p-1', 'ev-p-0'])
    const seen: string[] = []
    let cursor: string | undefined
    do {
      const p = await log.search({ subscriptionId: 'sub_p' }, { limit: 2, cursor })
      expect(p.items.length).to.be.at.most(2)
      seen.push(...p.items.map((d) => d.eventId))
      cursor = p.nextCursor ?? undefined
    } while (cursor)
    expect(seen).to.deep.equal(expected)
    const first = all.find((d) => d.eventId === 'ev-p-1')!.createdAt as Date
    const last = all.find((d) => d.eventId === 'ev-p-3')!.createdAt as Date
    expect(
      (await log.search({ subscriptionId: 'sub_p', since: first, until: last }, { limit: 10 })).items.map(
        (d) => d.eventId,
      ),
    ).to.deep.equal(['ev-p-3', 'ev-p-2', 'ev-p-1'])
    expect(
      (await log.search({ subscriptionId: 'sub_p', status: 'delivered' }, { limit: 10 })).items
        .map((d) => d.eventId)
        .sort(),
    ).to.deep.equal(['ev-t-0', 'ev-t-1', 'ev-t-2'])
    try {
      await log.search(
        { subscriptionId: 'sub_p' },
        { limit: 2, cursor: Buffer.from(JSON.stringify({ after: 'dlv_1' })).toString('base64url') },
      )
      expect.fail('a cursor of an _id-ordered list was accepted')
    } catch (err) {
      expect((err as { errors?: Array<{ field: string }> }).errors?.[0]?.field).to.equal('cursor')
    }
  })

  it(
    'holds successful deliveries for their longer window, and a failure entering ' +
      'the batch writes it within its own',
    async () => {
      const log = new DeliveryLog(collections(db), { firstMs: 10, deliveredMs: 20_000 })
      let done = false
      const success = log
        .recordAttempt({
          ...base,
          subscriptionId: 'sub_w',
          eventId: 'ev-ok',
          status: 'delivered',
          attempt: attempt(200),
        })
        .then(() => (done = true))
      await new Promise((r) => setTimeout(r, 300)) // a timer never fires early: 300 ms is inside the 20 s window
      expect(done).to.equal(false)
      expect(await db.collection('deliveries').countDocuments({ eventId: 'ev-ok' })).to.equal(0)
      const t0 = Date.now()
      await log.recordAttempt({
        ...base,
        subscriptionId: 'sub_w',
        eventId: 'ev-fail',
        status: 'retrying',
        attempt: attempt(503),
      })
      await success
      expect(Date.now() - t0, 'written with the failure, not after the success window').to.be.below(10_000)
      const docs = await db.collection('deliveries').find({ subscriptionId: 'sub_w' }).toArray()
      expect(docs.map((d) => [d.eventId, d.status]).sort()).to.deep.equal([
        ['ev-fail', 'retrying'],
        ['ev-ok', 'delivered'],
      ])
    },
  )

  it('indexes every failure by _id (dead, retrying; pages of PAGE_SIZE), newest first; not successes', async () => {
    const log = new DeliveryLog(collections(db))
    await log.recordAttempt({
      ...base,
      subscriptionId: 'sub_f',
      eventId: 'ev-ok',
      status: 'delivered',
      attempt: attempt(200),
    })
    expect(await log.failures.head('sub_f', 'dead')).to.equal(null)
    await log.recordAttempt({
      ...base,
      subscriptionId: 'sub_f',
      eventId: 'ev-r',
      status: 'retrying',
      attempt: attempt(503),
    })
    await log.recordAttempt({
      ...base,
      subscriptionId: 'sub_f',
      eventId: 'ev-r',
      status: 'dead',
      deadReason: 'exhausted',
      attempt: attempt(503),
    })
    await log.markDead({
      ...base,
      subscriptionId: 'sub_f',
      publisherId: null,
      eventId: 'ev-poison',
      reason: 'undecodable',
      source: null,
      deadLetter: { topic: 't', partition: 0, offset: '9', key: null, value: null, headers: {}, deadLetterTopic: null },
    })
    expect((await log.failures.newest('sub_f', 'dead', 10, null)).ids).to.deep.equal([
      deliveryId('sub_f', 'ev-poison'),
      deliveryId('sub_f', 'ev-r'),
    ])
    expect((await log.failures.newest('sub_f', 'retrying', 10, null)).ids).to.deep.equal([deliveryId('sub_f', 'ev-r')])
    // across pages, by another writer (process) continuing the same index
    const other = new DeliveryLog(collections(db))
    const many = Array.from({ length: PAGE_SIZE + 20 }, (_, i) => ({ id: `dlv_many_${i}`, at: new Date() }))
    await other.failures.note('sub_f', 'dead', many)
    expect((await log.failures.head('sub_f', 'dead'))?.pages).to.equal(2)
    const first = await log.failures.newest('sub_f', 'dead', 30, null)
    expect(first.ids.slice(0, 3)).to.deep.equal([
      `dlv_many_${PAGE_SIZE + 19}`,
      `dlv_many_${PAGE_SIZE + 18}`,
      `dlv_many_${PAGE_SIZE + 17}`,
    ])
    const rest: string[] = [...first.ids]
    for (let at = first.next; at;) {
      const p = await log.failures.newest('sub_f', 'dead', 100, at)
      rest.push(...p.ids)
      at = p.next
    }
    expect(rest).to.have.length(PAGE_SIZE + 22)
    expect(rest.slice(-2)).to.deep.equal([deliveryId('sub_f', 'ev-poison'), deliveryId('sub_f', 'ev-r')])
  })
})
