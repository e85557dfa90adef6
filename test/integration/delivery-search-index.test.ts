/**
 * The management API's search of failed deliveries (`?status=dead`, `?status=retrying`, `/dead-letters`)
 * read through the failures index (control-plane/delivery-failures.ts) when it holds the subscription's
 * whole life: the same items, order and cursors as the search of the whole delivery log, which answers
 * instead when the index may miss failures (a subscription older than its index).
 */
import { expect } from 'chai'
import { DeliveryLog, deliveryId } from '../../control-plane/deliveries.ts'
import type { DeliveryDoc } from '../../control-plane/types.ts'
import { PAGE_SIZE } from '../../control-plane/delivery-failures.ts'
import { newId } from '../../control-plane/store.ts'
import { buildFixture, type Fixture } from './management-fixture.ts'

describe('delivery search through the failures index', function () {
  this.timeout(120_000)
  let f: Fixture
  let sub: string
  before(async () => {
    f = await buildFixture()
    sub = await subscription('dlsearch')
    await fill(sub)
  })
  after(async () => {
    await f?.h.close()
  })

  /** A subscription of A's, as created through the API (the answer). */
  const create = (name: string) =>
    f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        name,
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' },
      },
    })

  async function subscription(name: string): Promise<string> {
    const s = await create(name)
    expect(s.status, s.text).to.equal(201)
    return s.body.id as string
  }

  const attempt = (statusCode: number) => ({
    at: new Date(),
    durationMs: 5,
    statusCode,
    error: statusCode < 300 ? null : `HTTP ${statusCode}`,
    responseExcerpt: null,
  })

  /**
   * As the sink runtime writes it (DeliveryLog.recordAttempt, markDead): delivered events, events retrying,
   * retried until dead, dead letters of another process (it reads their creation time), dead letters retried
   * and delivered since (in the index, no longer dead), many written together (creation times shared), and a
   * few dead deliveries whose index entries lack their creation time (noted by an earlier version).
   */
  async function fill(id: string): Promise<void> {
    const log = f.h.cp.deliveries
    const base = (i: number) => ({
      subscriptionId: id,
      partnerId: f.orgs.A,
      publisherId: i % 7 === 0 ? f.orgs.Q : f.orgs.P,
      eventId: `ev-${i}`,
      eventType: 'inventory.level.changed',
      key: `sku-${i % 5}`,
    })
    const kind = (i: number) => ['delivered', 'retrying', 'dead', 'dead', 'redelivered', 'dead-elsewhere'][i % 6]!
    for (let round = 0; round < 4; round++) {
      const range = Array.from({ length: 60 }, (_, j) => round * 60 + j)
      await Promise.all(
        range.map((i) =>
          kind(i) === 'delivered'
            ? log.recordAttempt({ ...base(i), status: 'delivered', attempt: attempt(200) })
            : log.recordAttempt({ ...base(i), status: 'retrying', attempt: attempt(503) }),
        ),
      )
      await Promise.all(
        range
          .filter((i) => kind(i) === 'dead' || kind(i) === 'redelivered')
          .map((i) =>
            log.recordAttempt({ ...base(i), status: 'dead', deadReason: 'retries exhausted', attempt: attempt(503) }),
          ),
      )
      const elsewhere = new DeliveryLog(f.h.cp.cols)
      for (const i of range.filter((i) => kind(i) === 'dead-elsewhere'))
        await elsewhere.markDead({ ...base(i), reason: 'rejected', source: null, deadLetter: null })
      await Promise.all(
        range
          .filter((i) => kind(i) === 'redelivered')
          .map((i) => log.recordAttempt({ ...base(i), status: 'delivered', attempt: attempt(200) })),
      )
    }
    const old = new Date(Date.now() - 60_000)
    const legacy: DeliveryDoc[] = [0, 1, 2].map((i) => ({
      ...base(1000 + i),
      _id: deliveryId(id, `ev-${1000 + i}`),
      publisherId: f.orgs.P,
      status: 'dead',
      attempts: [],
      attemptCount: 0,
      source: null,
      createdAt: old, // the same time: ordered by _id
      updatedAt: old,
      deliveredAt: null,
      deadAt: old,
      deadReason: 'retries exhausted',
      retryRequestedAt: null,
    }))
    // and one an earlier version wrote under a random _id (found by (subscription, event), not by its derived _id)
    legacy.push({ ...legacy[0]!, ...base(2000), _id: newId('dlv'), eventId: 'ev-legacy', publisherId: f.orgs.P })
    await f.h.cp.cols.deliveries.insertMany(legacy)
    await log.failures.note(
      id,
      'dead',
      legacy.map((d) => ({ id: d._id, at: old })),
    )
  }

  /** Every page of a list, `limit` at a time: the bodies as answered. */
  async function pages(
    path: string,
    key: string,
    limit: number,
  ): Promise<Array<{ items: any[]; nextCursor: string | null }>> {
    const out = []
    let cursor: string | null = null
    do {
      const sep = path.includes('?') ? '&' : '?'
      const r = await f.h.call('GET', `${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, { key })
      expect(r.status, r.text).to.equal(200)
      out.push(r.body)
      cursor = r.body.nextCursor
    } while (cursor && out.length < 100)
    return out
  }

  /** The index's head of (subscription, status) moved after the subscription's creation, then back. */
  async function withoutIndex<T>(id: string, status: 'dead' | 'retrying', fn: () => Promise<T>): Promise<T> {
    const heads = f.h.cp.cols.deliveryFailures
    const head = (await heads.findOne({ _id: `${id}|${status}` }))!
    const created = (await f.h.cp.cols.subscriptions.findOne({ _id: id }))!.createdAt
    expect(head.since!.getTime(), 'the index holds the whole life of a new subscription').to.be.at.most(
      created.getTime(),
    )
    await heads.updateOne({ _id: head._id }, { $set: { since: new Date(created.getTime() + 1) } })
    try {
      return await fn()
    } finally {
      await heads.updateOne({ _id: head._id }, { $set: { since: head.since! } })
    }
  }

  const searches: Array<[string, 'dead' | 'retrying', number, 'A' | 'P']> = [
    ['/deliveries?status=dead', 'dead', 7, 'A'],
    ['/dead-letters', 'dead', 50, 'A'],
    ['/dead-letters', 'dead', 1, 'A'],
    ['/deliveries?status=retrying', 'retrying', 9, 'A'],
    ['/deliveries?status=dead&key=sku-3', 'dead', 4, 'A'],
    ['/deliveries?status=dead&eventId=ev-2', 'dead', 5, 'A'],
    ['/deliveries?status=dead&eventId=ev-2', 'dead', 1, 'P'],
    ['/deliveries?status=retrying&eventId=ev-1', 'retrying', 5, 'A'],
    ['/deliveries?status=dead&eventId=ev-legacy', 'dead', 5, 'A'], // no document under its derived _id
    ['/deliveries?status=dead', 'dead', 6, 'P'], // a publisher sees its own events' deliveries
  ]
  for (const [path, status, limit, who] of searches)
    it(`GET ${path} (limit ${limit}, ${who}'s key): from the index what the whole log's search answers`, async () => {
      const at = `/v1/subscriptions/${sub}${path}`
      const key = f.keys[who]
      const indexed = await pages(at, key, limit)
      const full = await withoutIndex(sub, status, () => pages(at, key, limit))
      expect(indexed).to.deep.equal(full)
      const items = full.flatMap((p) => p.items)
      expect(items.length, 'something to compare').to.be.greaterThan(0)
      expect(items.every((d) => d.status === status)).to.equal(true)
    })

  it('pages within a time window alike', async () => {
    const all = (await pages(`/v1/subscriptions/${sub}/dead-letters`, f.keys.A, 200)).flatMap((p) => p.items)
    const times = [...new Set(all.map((d) => d.createdAt as string))].sort()
    expect(times.length).to.be.greaterThan(3)
    const window = `since=${encodeURIComponent(times[1]!)}&until=${encodeURIComponent(times.at(-2)!)}`
    const at = `/v1/subscriptions/${sub}/deliveries?status=dead&${window}`
    const indexed = await pages(at, f.keys.A, 5)
    expect(indexed).to.deep.equal(await withoutIndex(sub, 'dead', () => pages(at, f.keys.A, 5)))
    expect(indexed.flatMap((p) => p.items).length).to.be.within(1, all.length - 2)
  })

  it('reads the index when it holds the subscription (a dead delivery it lacks is not found)', async () => {
    const stray = { ...(await f.h.cp.cols.deliveries.findOne({ _id: deliveryId(sub, 'ev-2') }))! }
    stray._id = deliveryId(sub, 'ev-stray')
    stray.eventId = 'ev-stray'
    stray.createdAt = new Date()
    await f.h.cp.cols.deliveries.insertOne(stray)
    try {
      const first = (r: { items: any[] }[]) => r[0]!.items[0]?.eventId
      const at = `/v1/subscriptions/${sub}/dead-letters`
      expect(first(await pages(at, f.keys.A, 3))).to.not.equal('ev-stray')
      expect(first(await withoutIndex(sub, 'dead', () => pages(at, f.keys.A, 3)))).to.equal('ev-stray')
      // a head that does not say since when it holds failures is not taken to hold the subscription's whole life
      const heads = f.h.cp.cols.deliveryFailures
      const head = (await heads.findOne({ _id: `${sub}|dead` }))!
      await heads.updateOne({ _id: head._id }, { $unset: { since: '' } })
      try {
        expect(first(await pages(at, f.keys.A, 3)), 'a head without since: the whole log').to.equal('ev-stray')
      } finally {
        await heads.updateOne({ _id: head._id }, { $set: { since: head.since! } })
      }
    } finally {
      await f.h.cp.cols.deliveries.deleteOne({ _id: stray._id })
    }
  })

  it("reads an event's one delivery by its _id: what the whole log's search answers, whatever the index", async () => {
    const cols = f.h.cp.cols
    // a dead delivery the index lacks: the index's search would not find it, the event's _id does
    const stray = { ...(await cols.deliveries.findOne({ _id: deliveryId(sub, 'ev-2') }))! }
    await cols.deliveries.insertOne({ ...stray, _id: deliveryId(sub, 'ev-stray'), eventId: 'ev-stray' })
    try {
      const searches: Array<[string, 'dead' | 'retrying', 'A' | 'P', string[]]> = [
        ['/deliveries?status=dead&eventId=ev-stray', 'dead', 'A', ['ev-stray']],
        ['/deliveries?status=dead&eventId=ev-stray&key=sku-2', 'dead', 'A', ['ev-stray']],
        ['/deliveries?status=dead&eventId=ev-stray&key=sku-1', 'dead', 'A', []],
        ['/deliveries?status=retrying&eventId=ev-stray', 'retrying', 'A', []],
        ['/deliveries?status=dead&eventId=ev-0', 'dead', 'A', []], // delivered
        ['/deliveries?status=dead&eventId=ev-7', 'dead', 'P', []], // another publisher's event
        ['/deliveries?status=dead&eventId=no-such-event', 'dead', 'A', []],
        ['/deliveries?status=dead&eventId=ev-legacy', 'dead', 'P', ['ev-legacy']],
      ]
      for (const [path, status, who, want] of searches) {
        const at = `/v1/subscriptions/${sub}${path}`
        const indexed = await pages(at, f.keys[who], 3)
        expect(
          indexed.flatMap((p) => p.items.map((d) => d.eventId)),
          path,
        ).to.deep.equal(want)
        expect(indexed, path).to.deep.equal(await withoutIndex(sub, status, () => pages(at, f.keys[who], 3)))
      }
      const since = (await cols.deliveries.findOne({ _id: deliveryId(sub, 'ev-stray') }))!.createdAt.getTime()
      for (const [window, want] of [
        [`since=${encodeURIComponent(new Date(since).toISOString())}`, 1],
        [`since=${encodeURIComponent(new Date(since + 1).toISOString())}`, 0],
        [`until=${encodeURIComponent(new Date(since - 1).toISOString())}`, 0],
      ] as const) {
        const at = `/v1/subscriptions/${sub}/deliveries?status=dead&eventId=ev-stray&${window}`
        const indexed = await pages(at, f.keys.A, 3)
        expect(indexed.flatMap((p) => p.items).length, window).to.equal(want)
        expect(indexed, window).to.deep.equal(await withoutIndex(sub, 'dead', () => pages(at, f.keys.A, 3)))
      }
      // a cursor of another list is refused alike
      const bad = `/v1/subscriptions/${sub}/deliveries?status=dead&eventId=ev-stray&cursor=${'x'.repeat(8)}`
      const r = await f.h.call('GET', bad, { key: f.keys.A })
      expect([r.status, r.body.errors?.[0]?.field]).to.deep.equal([422, 'cursor'])
    } finally {
      await cols.deliveries.deleteOne({ _id: deliveryId(sub, 'ev-stray') })
    }
  })

  it('searches the whole log for a subscription older than its index', async () => {
    const older = await subscription('dlsearch-older')
    // as before the index: no heads; the first failure noted starts them (`since`: then)
    await f.h.cp.cols.deliveryFailures.deleteMany({ _id: { $in: [`${older}|dead`, `${older}|retrying`] } })
    const before = await f.h.cp.cols.deliveries.findOne({ _id: deliveryId(sub, 'ev-2') })
    await f.h.cp.cols.deliveries.insertOne({
      ...before!,
      _id: deliveryId(older, 'ev-before'),
      subscriptionId: older,
      eventId: 'ev-before',
      createdAt: new Date(Date.now() - 1000),
    })
    await f.h.cp.deliveries.recordAttempt({
      subscriptionId: older,
      partnerId: f.orgs.A,
      publisherId: f.orgs.P,
      eventId: 'ev-after',
      eventType: 'inventory.level.changed',
      key: 'sku-1',
      status: 'dead',
      deadReason: 'rejected',
      attempt: attempt(400),
    })
    const head = await f.h.cp.deliveries.failures.head(older, 'dead')
    const created = (await f.h.cp.cols.subscriptions.findOne({ _id: older }))!.createdAt
    expect(head!.since!.getTime()).to.be.greaterThan(created.getTime())
    const r = await f.h.call('GET', `/v1/subscriptions/${older}/dead-letters`, { key: f.keys.A })
    expect(r.body.items.map((d: any) => d.eventId)).to.deep.equal(['ev-after', 'ev-before'])
  })

  it('retries every dead letter through the index as the whole log would, test events aside', async () => {
    const log = f.h.cp.deliveries
    const cols = f.h.cp.cols
    const dead = { partnerId: f.orgs.A, publisherId: null, eventType: 'inventory.level.changed', key: 'sku-0' }
    // dead test events (no dead letter): in the index, never retried
    for (const eventId of ['ev-test-1', 'ev-test-2'])
      await log.markDead({
        ...dead,
        subscriptionId: sub,
        eventId,
        reason: 'test',
        source: null,
        deadLetter: null,
        test: true,
      })
    // a dead delivery the index lacks: only the whole log's search finds it (evidence of the path taken)
    const stray = { ...(await cols.deliveries.findOne({ _id: deliveryId(sub, 'ev-2') }))! }
    await cols.deliveries.insertOne({ ...stray, _id: deliveryId(sub, 'ev-stray'), eventId: 'ev-stray' })
    const eventIds = (docs: DeliveryDoc[]) => docs.map((d) => d.eventId)
    try {
      /** Every page of what a retry of every dead letter takes, `limit` at a time, and the number of pages. */
      const retryable = async (limit: number) => {
        const docs: DeliveryDoc[] = []
        let pages = 0
        for (let cursor: string | undefined; pages === 0 || cursor; pages++) {
          const p = await log.retryableDeadLetters(sub, { limit, cursor })
          docs.push(...p.items)
          cursor = p.nextCursor ?? undefined
        }
        return { docs, pages }
      }
      const indexed = (await retryable(10_000)).docs
      const full = (await withoutIndex(sub, 'dead', () => retryable(10_000))).docs
      expect(eventIds(indexed).length, 'something to retry').to.be.greaterThan(50)
      expect([...eventIds(indexed), 'ev-stray'].sort()).to.deep.equal(eventIds(full).sort())
      expect(indexed.every((d) => d.status === 'dead' && !d.test)).to.equal(true)
      // oldest first on both paths, and a page takes the oldest after the one before: page by page, the same list
      const order = (d: DeliveryDoc) => `${d.createdAt.toISOString()} ${d._id}`
      expect(indexed.map(order)).to.deep.equal(indexed.map(order).sort())
      expect(full.map(order)).to.deep.equal(full.map(order).sort())
      const paged = await retryable(7)
      expect(paged.pages).to.equal(Math.ceil(indexed.length / 7))
      expect(eventIds(paged.docs)).to.deep.equal(eventIds(indexed))
      const fullPaged = await withoutIndex(sub, 'dead', () => retryable(7))
      expect(eventIds(fullPaged.docs)).to.deep.equal(eventIds(full))
      // the request marks the deliveries the worker then retries
      const marked = async (fn: () => Promise<unknown>) => {
        await cols.deliveries.updateMany({ subscriptionId: sub }, { $set: { retryRequestedAt: null } })
        const r = (await fn()) as { status: number; text: string }
        expect(r.status, r.text).to.equal(202)
        const docs = await cols.deliveries.find({ subscriptionId: sub, retryRequestedAt: { $ne: null } }).toArray()
        return eventIds(docs).sort()
      }
      const retry = () => f.h.call('POST', `/v1/subscriptions/${sub}/dead-letters/retry`, { key: f.keys.A })
      expect(await marked(retry)).to.deep.equal(eventIds(indexed).sort())
      expect(await marked(() => withoutIndex(sub, 'dead', retry))).to.deep.equal(eventIds(full).sort())
    } finally {
      await cols.deliveries.updateMany({ subscriptionId: sub }, { $set: { retryRequestedAt: null } })
      await cols.deliveries.deleteOne({ _id: deliveryId(sub, 'ev-stray') })
    }
  })

  it('a subscription refused (its name taken) leaves no failures index; a deleted one, no delivery log', async () => {
    const cols = f.h.cp.cols
    const indexIds = async () =>
      (await cols.deliveryFailures.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort()
    const before = await indexIds()
    const dup = await create('dlsearch')
    expect(dup.status, dup.text).to.equal(409)
    expect(await indexIds(), 'no heads of the refused subscription').to.deep.equal(before)
    // a subscription with deliveries of every kind and two pages of dead letters' index
    const gone = await subscription('dlsearch-gone')
    const log = f.h.cp.deliveries
    const delivery = (i: number) => ({
      subscriptionId: gone,
      partnerId: f.orgs.A,
      publisherId: f.orgs.P,
      eventId: `ev-${i}`,
      eventType: 'inventory.level.changed',
      key: `sku-${i}`,
    })
    await log.recordAttempt({ ...delivery(0), status: 'delivered', attempt: attempt(200) })
    await log.recordAttempt({ ...delivery(1), status: 'retrying', attempt: attempt(503) })
    const many = Array.from({ length: PAGE_SIZE + 1 }, (_, i) => ({ id: deliveryId(gone, `ev-${i}`), at: new Date() }))
    await log.failures.note(gone, 'dead', many)
    await log.markDead({ ...delivery(2), reason: 'rejected', source: null, deadLetter: null })
    const ofGone = async () => ({
      deliveries: await cols.deliveries.countDocuments({ subscriptionId: gone }),
      index: (await indexIds()).filter((id) => id.startsWith(`${gone}|`)).sort(),
    })
    expect(await ofGone()).to.deep.equal({
      deliveries: 3,
      index: [`${gone}|dead`, `${gone}|dead|1`, `${gone}|dead|2`, `${gone}|retrying`, `${gone}|retrying|1`],
    })
    // the answer does not wait for the log's removal (a scan of the whole log on FerretDB v1): held back here, the
    // DELETE still answers, the subscription is gone and its removal is recorded; then it runs
    const removals = f.h.cp.logRemovals
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const forget = log.forget.bind(log)
    log.forget = async (id: string) => {
      await held
      return forget(id)
    }
    try {
      const r = await f.h.call('DELETE', `/v1/subscriptions/${gone}`, { key: f.keys.A })
      expect(r.status, r.text).to.equal(204)
      expect((await f.h.call('GET', `/v1/subscriptions/${gone}`, { key: f.keys.A })).status).to.equal(404)
      expect(await removals.pending()).to.equal(1)
      expect((await ofGone()).deliveries).to.equal(3)
    } finally {
      release()
      log.forget = forget
    }
    await removals.run()
    expect(await removals.pending()).to.equal(0)
    expect(await ofGone()).to.deep.equal({ deliveries: 0, index: [] })
    expect(await indexIds(), "nothing but the deleted subscription's").to.deep.equal(before)
  })

  it('removes a log whose removal a process left undone (recorded, then a crash) in the periodic sweep', async () => {
    const left = await subscription('dlsearch-left')
    const log = f.h.cp.deliveries
    await log.recordAttempt({
      subscriptionId: left,
      partnerId: f.orgs.A,
      publisherId: f.orgs.P,
      eventId: 'ev-left',
      eventType: 'inventory.level.changed',
      key: 'sku-left',
      status: 'retrying',
      attempt: attempt(503),
    })
    await log.failures.note(left, 'retrying', [{ id: deliveryId(left, 'ev-left'), at: new Date() }])
    // what a DELETE does before anything else, then the process dies (the subscription's own documents aside)
    await f.h.cp.logRemovals.request(left)
    await f.h.cp.logRemovals.request(left) // recorded twice (a retried DELETE): one record
    expect(await f.h.cp.logRemovals.pending()).to.equal(1)
    await f.h.cp.sweep()
    expect(await f.h.cp.logRemovals.pending()).to.equal(0)
    expect(await f.h.cp.cols.deliveries.countDocuments({ subscriptionId: left })).to.equal(0)
    const heads = await f.h.cp.cols.deliveryFailures.find({}, { projection: { _id: 1 } }).toArray()
    expect(heads.map((d) => d._id).filter((id) => id.startsWith(`${left}|`))).to.deep.equal([])
  })

  it("is another organization's 404", async () => {
    for (const path of ['/dead-letters', '/deliveries?status=dead', '/deliveries?status=retrying']) {
      const r = await f.h.call('GET', `/v1/subscriptions/${sub}${path}`, { key: f.keys.B })
      expect(r.status, path).to.equal(404)
    }
  })

  it('refuses a cursor of another list', async () => {
    const r = await f.h.call('GET', `/v1/subscriptions/${sub}/dead-letters?cursor=${'x'.repeat(8)}`, { key: f.keys.A })
    expect([r.status, r.body.errors?.[0]?.field]).to.deep.equal([422, 'cursor'])
  })
})
