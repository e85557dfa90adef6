/**
 * The sink worker end to end: records produced to a real Kafka topic reach real webhook receivers on
 * 127.0.0.1 through the control plane's subscriptions, verified with the standardwebhooks package;
 * per-key order, pause and resume, replays, poison and dead letters, retry requests, isolation.
 */
import type { ServerResponse } from 'node:http'
import { expect } from 'chai'
import { DEAD_LETTER_HEADER, HEADER } from '../../schemas/index.ts'
import { deliveryId } from '../../control-plane/deliveries.ts'
import { retryRequestView } from '../../api/management/http.ts'
import type { SinkWorker } from '../../connectors/sink/worker.ts'
import { testKafka, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver, type ReceiverHandler } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { expectPerKeyOrder, levels, verified, type Got } from '../helpers/sink-assertions.ts'

const distinct = (got: Got[]) => new Set(got.map((g) => g.id)).size

describe('sink worker: Kafka to webhooks', function () {
  this.timeout(60_000)
  let h: SinkHarness
  let worker: SinkWorker
  const receivers: Receiver[] = []
  const rx = async (handler?: ReceiverHandler) => {
    const r = await startReceiver(handler)
    receivers.push(r)
    return r
  }
  const status = async (id: string) => (await h.cp.getConnector(ADMIN, id)).status

  beforeEach(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  it('delivers every event to every subscription, signed, in order per key, and reports status', async () => {
    const a = await rx()
    const b = await rx()
    const sa = await h.subscribe({ name: 'a', url: a.url })
    const sb = await h.subscribe({ name: 'b', url: b.url })
    worker = await h.worker()
    await waitFor(
      async () => (await status(sa.id))?.state === 'running' && (await status(sb.id))?.state === 'running',
      { what: 'running status' },
    )
    const ids = await h.produce(levels(90, 9))
    await waitFor(() => distinct(verified(sa.secret, a)) === 90 && distinct(verified(sb.secret, b)) === 90, {
      what: 'all deliveries',
    })
    for (const [s, r] of [
      [sa, a],
      [sb, b],
    ] as const) {
      const got = verified(s.secret, r)
      expect(new Set(got.map((g) => g.id))).to.deep.equal(new Set(ids))
      expectPerKeyOrder(got)
    }
    // positions advance to the end and lag drops to 0 in the reported status
    await waitFor(
      async () =>
        (await status(sa.id))?.lag === 0 &&
        (await status(sa.id))?.positions.reduce((n, p) => n + Number(p.offset), 0) === 90,
      { what: 'status at the end' },
    )
    const st = (await status(sa.id))!
    expect(st.workerId).to.equal(worker.workerId)
    // successes are in the delivery log
    const log = await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'delivered' }, { limit: 100 })
    expect(log.items.length).to.be.greaterThan(0)
    // and in the metrics: every delivery counted, lag 0 per subscription
    const text = (await h.metrics.render()).body
    const delivered = Number(
      /^distributary_deliveries_total\{sink="webhook",outcome="delivered"\} (\d+)$/m.exec(text)?.[1],
    )
    expect(delivered).to.be.at.least(180)
    expect(text).to.match(new RegExp(`^distributary_subscription_lag_records\\{subscription="${sa.id}"\\} 0$`, 'm'))
  })

  it('pauses (nothing delivered) and resumes (everything after), without restarting the worker', async () => {
    const a = await rx()
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker()
    await waitFor(async () => (await status(sa.id))?.state === 'running')
    await h.produce(levels(10, 5))
    await waitFor(() => a.received.length >= 10)
    await h.cp.setDesiredState(ADMIN, sa.id, 'paused')
    await waitFor(async () => (await status(sa.id))?.state === 'paused', { what: 'paused status' })
    const before = a.received.length
    const ids = await h.produce(levels(20, 5, 10))
    await new Promise((r) => setTimeout(r, 1500))
    expect(a.received.length, 'delivered while paused').to.equal(before)
    await h.cp.setDesiredState(ADMIN, sa.id, 'running')
    await waitFor(() => new Set(verified(sa.secret, a).map((g) => g.id)).size === 30, {
      what: 'deliveries after resume',
    })
    const got = verified(sa.secret, a)
    for (const id of ids) expect(got.some((g) => g.id === id)).to.equal(true)
    expectPerKeyOrder(got)
    expect(worker.catchUpReaders()).to.be.at.most(1)
  })

  it('catches up a backlog larger than maxBuffered with one reader, paused while the buffer is full', async () => {
    const a = await rx()
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker({ maxBuffered: 40 })
    await waitFor(async () => (await status(sa.id))?.state === 'running')
    const ids = await h.produce(levels(400, 7))
    await waitFor(() => distinct(verified(sa.secret, a)) === 400)
    a.received.length = 0
    const startsBefore = worker.catchUpStarts
    await h.cp.resetConnector(ADMIN, sa.id, 'earliest', null)
    await waitFor(() => distinct(verified(sa.secret, a)) === 400, { what: 'the replay of 400 records' })
    const got = verified(sa.secret, a)
    expect(new Set(got.map((g) => g.id))).to.deep.equal(new Set(ids))
    expectPerKeyOrder(got)
    // ten buffers' worth: the reader paused and resumed (one reader), it was not started again for each
    expect(worker.catchUpStarts - startsBefore).to.equal(1)
  })

  it('falls behind in waves of live traffic and catches up again every time, losing nothing', async () => {
    // Live traffic to a partner that slows down and recovers in waves: the subscription leaves the shared stream, its
    // catch-up reader runs, re-attaches partitions and falls behind again. The reader resumes as soon as half of its
    // buffer is delivered: resumed only by the 250-ms pass, it read about one buffer per pass and this partner
    // (maxBuffered 20) was still minutes behind when the test gave up.
    let slow = true
    const a = await rx((_r, res) => {
      if (slow) setTimeout(() => res.writeHead(204).end(), 15)
      else res.writeHead(204).end()
    })
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker({ maxBuffered: 20 })
    await waitFor(async () => (await status(sa.id))?.state === 'running')
    const ids: string[] = []
    for (let wave = 0; wave < 16; wave++) {
      slow = wave % 2 === 0
      for (let i = 0; i < 4; i++) {
        ids.push(...(await h.produce(levels(40, 12, ids.length))))
        await new Promise((r) => setTimeout(r, 40))
      }
    }
    slow = false
    await waitFor(() => distinct(verified(sa.secret, a)) === ids.length, {
      what: async () =>
        `every record: got ${distinct(verified(sa.secret, a))} of ${ids.length}; status ` +
        JSON.stringify(await status(sa.id)),
      timeoutMs: 20_000,
    })
    expectPerKeyOrder(verified(sa.secret, a))
    expect(worker.catchUpStarts, 'the subscription fell behind and caught up').to.be.greaterThan(0)
  })

  it('replays from the earliest offset and from a timestamp', async () => {
    const a = await rx()
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker()
    await waitFor(async () => (await status(sa.id))?.state === 'running')
    const first = await h.produce(levels(15, 3))
    await waitFor(() => a.received.length >= 15)
    await new Promise((r) => setTimeout(r, 50))
    const t = new Date()
    await new Promise((r) => setTimeout(r, 50))
    const second = await h.produce(levels(15, 3, 15))
    await waitFor(() => distinct(verified(sa.secret, a)) === 30)
    a.received.length = 0
    await h.cp.resetConnector(ADMIN, sa.id, 'earliest', null)
    await waitFor(() => distinct(verified(sa.secret, a)) === 30, { what: 'replay from earliest' })
    expectPerKeyOrder(verified(sa.secret, a))
    await waitFor(async () => (await status(sa.id))?.appliedResetId !== null)
    a.received.length = 0
    await h.cp.resetConnector(ADMIN, sa.id, 'timestamp', t)
    await waitFor(() => distinct(verified(sa.secret, a)) === 15, { what: 'replay from the timestamp' })
    await new Promise((r) => setTimeout(r, 500))
    const got = verified(sa.secret, a)
    expect(new Set(got.map((g) => g.id))).to.deep.equal(new Set(second))
    expect(got.some((g) => first.includes(g.id))).to.equal(false)
  })

  it(
    'sends poison to the dead-letter topic and the delivery log at once, keeps ' +
      'delivering, and re-delivers a dead letter on request',
    async () => {
      let reject = true
      const a = await rx((r, res) => {
        const body = JSON.parse(r.body) as { data: { sequence: number } }
        if (reject && body.data.sequence === 4) return res.writeHead(400).end('bad sku')
        res.writeHead(204).end()
      })
      const sa = await h.subscribe({ name: 'a', url: a.url })
      worker = await h.worker()
      await waitFor(async () => (await status(sa.id))?.state === 'running')
      await h.produce(levels(2, 1))
      // poison of the granted publisher (stamped, as the platform's producers stamp) is the partner's dead letter;
      // unstamped poison belongs to no publisher, so no partner hears of it (docs/tenancy.md)
      await h.produceRaw(Buffer.from('not-avro-key'), Buffer.from([0, 0, 0, 0, 99, 1, 2, 3]), {
        [HEADER.publisherId]: h.publisherId,
      })
      await h.produceRaw(Buffer.from('not-avro-key'), Buffer.from([0, 0, 0, 0, 98, 1, 2, 3]))
      await h.produce(levels(3, 1, 2))
      // 0,1,2,3 delivered; 4, the latest of its key, rejected (400) -> dead; the stamped poison -> dead; the unstamped
      // one: dropped
      await waitFor(
        () =>
          new Set(
            verified(sa.secret, a)
              .filter((g) => g.seq !== 4)
              .map((g) => g.id),
          ).size === 4,
        { what: 'good deliveries' },
      )
      const dead = await waitFor(
        async () => {
          const page = await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 10 })
          return page.items.length === 2 ? page.items : null
        },
        { what: 'two dead deliveries in the log' },
      )
      const poison = dead.find((d) => d.deadReason?.startsWith('poison'))!
      expect(poison, 'poison delivery').to.exist
      expect(poison.attemptCount).to.equal(0)
      expect(poison.deadLetter?.value).to.equal(Buffer.from([0, 0, 0, 0, 99, 1, 2, 3]).toString('base64'))
      const rejected = dead.find((d) => d.deadReason?.startsWith('rejected'))!
      expect(rejected.attempts[0]!.statusCode).to.equal(400)
      expect(rejected.attempts[0]!.responseExcerpt).to.equal('bad sku')
      // the dead-letter topic holds both, keyed by subscription, with the reason and origin in headers
      const consumer = testKafka().consumer({ groupId: uniqueName('dlq-reader') })
      const dl: Array<{ key: string; headers: Record<string, string>; value: Buffer | null }> = []
      await consumer.connect()
      await consumer.subscribe({ topics: [h.deadLetterTopic], fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ message }) => {
          const headers: Record<string, string> = {}
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v)
          dl.push({ key: String(message.key), headers, value: message.value })
        },
      })
      try {
        await waitFor(() => dl.length >= 2, { what: 'dead-letter topic' })
      } finally {
        await consumer.disconnect()
      }
      expect(dl.every((m) => m.key === sa.id)).to.equal(true)
      const p = dl.find((m) => m.headers[DEAD_LETTER_HEADER.reason]!.startsWith('poison'))!
      expect(p.headers[DEAD_LETTER_HEADER.topic]).to.equal(h.topic.name)
      expect(p.headers[DEAD_LETTER_HEADER.offset]).to.match(/^\d+$/)
      expect(p.value).to.deep.equal(Buffer.from([0, 0, 0, 0, 99, 1, 2, 3]))
      // the partner fixes its side; a retry request re-delivers the rejected one (the poison stays dead)
      reject = false
      await h.cp.requestRetry(ADMIN, sa.id, null)
      await waitFor(async () => (await h.cp.deliveries.get(sa.id, rejected.eventId))?.status === 'delivered', {
        what: 'retried delivery',
      })
      expect((await h.cp.deliveries.get(sa.id, poison.eventId))?.status).to.equal('dead')
      expect(verified(sa.secret, a).filter((g) => g.id === rejected.eventId).length).to.equal(2)
    },
  )

  it("re-delivers a dead letter in its key's lane, and never after a newer version of its key", async () => {
    const rejected = new Set([0, 1])
    const a = await rx((r, res) => {
      const body = JSON.parse(r.body) as { data: { sequence: number } }
      res.writeHead(rejected.has(body.data.sequence) ? 400 : 204).end()
    })
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker()
    await waitFor(async () => (await status(sa.id))?.state === 'running')
    // v1 of SKU-0 and the only version of SKU-1 are rejected: dead letters
    const [v1, only] = await h.produce([
      { sku: 'SKU-0', seq: 0 },
      { sku: 'SKU-1', seq: 1 },
    ])
    await waitFor(
      async () =>
        (await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 10 })).items.length === 2,
      { what: 'two dead letters' },
    )
    // the partner fixes its side; v2 of SKU-0 is delivered
    rejected.clear()
    const [v2] = await h.produce([{ sku: 'SKU-0', seq: 2 }])
    await waitFor(() => verified(sa.secret, a).some((g) => g.id === v2), { what: 'v2 delivered' })
    const req = await h.cp.requestRetry(ADMIN, sa.id, null)
    const done = await waitFor(
      async () => {
        const r = await h.cp.cols.retryRequests.findOne({ _id: req._id })
        return r?.status === 'done' ? r : null
      },
      { what: 'the retry request done' },
    )
    await new Promise((r) => setTimeout(r, 300))
    const ids = verified(sa.secret, a).map((g) => g.id)
    expect(ids.lastIndexOf(v1!), 'v1 of SKU-0 never after its v2').to.be.below(ids.indexOf(v2!))
    expect(
      ids.filter((id) => id === only),
      'SKU-1 rejected once, then re-delivered',
    ).to.have.length(2)
    expect((await h.cp.deliveries.get(sa.id, only!))?.status).to.equal('delivered')
    const stale = await h.cp.deliveries.get(sa.id, v1!)
    expect(stale?.status).to.equal('dead')
    expect(stale?.deadReason).to.match(/^not re-delivered: a newer record of its key was read since/)
    expect(done.outcome).to.equal('re-delivered 1 of 2; 1 superseded by a newer record of their key')
  })

  it(
    'a retry of every dead letter re-delivers exactly the dead ones (test events and delivered ones ' +
      'aside), through the failures index and through the whole log alike',
    async () => {
      let reject = true
      const handler: ReceiverHandler = (r, res) => {
        const body = JSON.parse(r.body) as { test?: boolean; data: { sku: string } }
        const refused = body.test === true || ['SKU-1', 'SKU-2'].includes(body.data.sku)
        res.writeHead(reject && refused ? 400 : 204).end()
      }
      const [a, b] = [await rx(handler), await rx(handler)]
      const indexed = await h.subscribe({ name: 'indexed', url: a.url })
      const full = await h.subscribe({ name: 'full', url: b.url })
      const subs = [
        { ...indexed, rx: a },
        { ...full, rx: b },
      ]
      worker = await h.worker()
      for (const s of subs) await waitFor(async () => (await status(s.id))?.state === 'running')
      // SKU-0 and SKU-3 delivered, SKU-1 and SKU-2 rejected: dead letters
      const [, sku1, sku2] = await h.produce(levels(4, 4))
      const cols = h.cp.cols
      for (const s of subs) {
        await waitFor(
          async () => (await h.cp.deliveries.search({ subscriptionId: s.id }, { limit: 10 })).items.length === 4,
          { what: 'four deliveries logged' },
        )
        // a test event rejected: dead, without a dead letter
        const probe = await h.cp.requestTestEvent(ADMIN, s.id, {})
        await waitFor(async () => (await cols.retryRequests.findOne({ _id: probe._id }))?.status === 'done', {
          what: 'the test event sent',
        })
        expect((await h.cp.deliveries.get(s.id, probe.eventId!))?.status).to.equal('dead')
        // a dead delivery the failures index does not name (as if written before it): only the whole log's
        // search finds it (it has no dead letter to deliver, so it only counts), evidence of the path taken
        const stray = { ...(await h.cp.deliveries.get(s.id, sku1!))!, eventId: 'ev-stray', deadLetter: null }
        await cols.deliveries.insertOne({ ...stray, _id: deliveryId(s.id, 'ev-stray') })
      }
      // the other subscription's index as if it began after the subscription: the whole log is searched
      const created = (await cols.subscriptions.findOne({ _id: full.id }))!.createdAt
      await cols.deliveryFailures.updateOne(
        { _id: `${full.id}|dead` },
        { $set: { since: new Date(created.getTime() + 1) } },
      )
      reject = false
      const before = subs.map((s) => s.rx.received.length)
      const reqs = []
      for (const s of subs) reqs.push(await h.cp.requestRetry(ADMIN, s.id, null))
      const marked = async (id: string) =>
        (await cols.deliveries.find({ subscriptionId: id, retryRequestedAt: { $ne: null } }).toArray())
          .map((d) => d.eventId)
          .sort()
      expect(await marked(indexed.id), 'marked for retry').to.deep.equal([sku1, sku2].sort())
      expect(await marked(full.id), 'marked for retry').to.deep.equal([sku1, sku2, 'ev-stray'].sort())
      const outcomes = []
      for (const req of reqs)
        outcomes.push(
          await waitFor(
            async () => {
              const r = await cols.retryRequests.findOne({ _id: req._id })
              return r?.status === 'done' ? r.outcome : null
            },
            { what: 'the retry request done' },
          ),
        )
      expect(outcomes).to.deep.equal(['re-delivered 2 of 2', 're-delivered 2 of 3'])
      await new Promise((r) => setTimeout(r, 300))
      subs.forEach((s, i) => {
        const again = verified(s.secret, s.rx).slice(before[i])
        expect(again.map((g) => g.id).sort(), 're-delivered').to.deep.equal([sku1, sku2].sort())
      })
      for (const s of subs)
        for (const id of [sku1!, sku2!]) expect((await h.cp.deliveries.get(s.id, id))?.status).to.equal('delivered')
    },
  )

  it(
    'a retry of every dead letter takes them all, a page at a time; a worker stopped in the middle of a page is ' +
      'followed by one that goes on from there (the pages done are not delivered again, the cut one is)',
    async () => {
      // reject: every delivery is refused (dead letters); cut: past the first page, a dead letter fails once (it is
      // retrying) and its next attempt hangs until the worker stops (one at a time); open: every delivery is taken
      let mode: 'reject' | 'cut' | 'open' = 'reject'
      let first = new Set<string>()
      const tried = new Map<string, number>()
      const hanging: ServerResponse[] = []
      const a = await rx((r, res) => {
        const id = String(r.headers['webhook-id'])
        if (mode === 'reject') return void res.writeHead(400).end()
        tried.set(id, (tried.get(id) ?? 0) + 1)
        if (mode === 'open' || first.has(id)) return void res.writeHead(204).end()
        if (tried.get(id) === 1) return void res.writeHead(503).end()
        hanging.push(res)
      })
      // a long timeout: an attempt hangs until the worker stops, however long that takes
      const deliveryPolicy = { retrySchedule: [0.05, 0.1, 0.2], timeoutMs: 60_000 }
      const sa = await h.subscribe({ name: 'a', url: a.url, deliveryPolicy })
      worker = await h.worker({ retryPageSize: 5 })
      await waitFor(async () => (await status(sa.id))?.state === 'running')
      const ids = await h.produce(levels(12, 12)) // twelve keys: none supersedes another
      const dead = async () =>
        (await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 50 })).items.length
      await waitFor(async () => (await dead()) === 12, { what: 'twelve dead letters' })
      // the order the retry takes them in: three pages of 5, 5 and 2
      const order: string[] = []
      for (let cursor: string | undefined, more = true; more;) {
        const p = await h.cp.deliveries.retryableDeadLetters(sa.id, { limit: 5, cursor })
        order.push(...p.items.map((d) => d.eventId))
        cursor = p.nextCursor ?? undefined
        more = cursor !== undefined
      }
      expect([...order].sort()).to.deep.equal([...ids].sort())
      first = new Set(order.slice(0, 5))
      const cut = order.slice(5, 10)
      mode = 'cut'
      const req = await h.cp.requestRetry(ADMIN, sa.id, null)
      const request = async () => (await h.cp.cols.retryRequests.findOne({ _id: req._id }))!
      const statuses = async (eventIds: string[]) =>
        Promise.all(eventIds.map(async (id) => (await h.cp.deliveries.get(sa.id, id))?.status))
      await waitFor(
        async () =>
          hanging.length > 0 && (await statuses(cut)).every((s) => s === 'retrying') && !!(await request()).progress,
        { what: 'the first page done, the second one cut off (retrying, one hanging)' },
      )
      await worker.stop()
      const stopped = await request()
      expect(stopped.status).to.equal('pending')
      expect(stopped.progress).to.include({ taken: 5, redelivered: 5, superseded: 0, failed: 0 })
      expect(stopped.progress!.cursor).to.be.a('string')
      expect(stopped.progress!.through?._id).to.equal(deliveryId(sa.id, cut[4]!))
      // what the API shows of it (GET /v1/subscriptions/{id}/retry-requests/{requestId}): the counts, not the cursor
      expect(retryRequestView(stopped).progress).to.deep.equal({ taken: 5, redelivered: 5, superseded: 0, failed: 0 })
      expect(await statuses(order.slice(0, 5))).to.deep.equal(Array(5).fill('delivered'))
      expect(await statuses(cut), 'cut off while delivered again').to.deep.equal(Array(5).fill('retrying'))
      mode = 'open'
      for (const res of hanging.splice(0)) res.destroy()
      worker = await h.worker({ retryPageSize: 5 })
      await waitFor(async () => (await request()).status === 'done', { what: 'the retry request done' })
      expect((await request()).outcome).to.equal('re-delivered 12 of 12')
      expect(retryRequestView(await request()).progress).to.deep.equal({
        taken: 12,
        redelivered: 12,
        superseded: 0,
        failed: 0,
      })
      expect(await statuses(order)).to.deep.equal(Array(12).fill('delivered'))
      expect(await dead()).to.equal(0)
      // the first page once (not again after the restart), the cut one again, the last one once
      const times = order.map((id) => tried.get(id) ?? 0)
      expect(times.slice(0, 5)).to.deep.equal([1, 1, 1, 1, 1])
      expect(times.slice(5, 10).every((n) => n >= 2)).to.equal(true)
      expect(times.slice(10)).to.deep.equal([1, 1])
    },
  )

  it("a deleted subscription's delivery log goes with it, writes landing after the API removed it too", async () => {
    const a = await rx((_r, res) => res.writeHead(400).end())
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker()
    await waitFor(async () => (await status(sa.id))?.state === 'running')
    await h.produce(levels(3, 3))
    const cols = h.cp.cols
    const left = async () => ({
      deliveries: await cols.deliveries.countDocuments({ subscriptionId: sa.id }),
      index: (await cols.deliveryFailures.find({}, { projection: { _id: 1 } }).toArray()).filter((d) =>
        d._id.startsWith(`${sa.id}|`),
      ).length,
    })
    const dead = async () =>
      (await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 10 })).items
    await waitFor(async () => (await dead()).length === 3, { what: 'three dead letters' })
    const [one] = await dead()
    expect((await left()).index).to.be.greaterThan(2)
    await h.cp.deleteSubscription(ADMIN, sa.id)
    await h.cp.logRemovals.run() // the removal the deletion started in the background
    expect(await left(), 'removed with the subscription').to.deep.equal({ deliveries: 0, index: 0 })
    // what a write of the worker in flight at the deletion leaves when it lands after that: its delivery and a
    // page of the index; the worker removes them once it has stopped the subscription
    await Promise.all([
      cols.deliveries.insertOne({ ...one!, _id: deliveryId(sa.id, 'ev-late'), eventId: 'ev-late' }),
      cols.deliveryFailures.insertOne({ _id: `${sa.id}|dead|1`, entries: [], count: 0 }),
    ])
    await waitFor(async () => (await left()).deliveries + (await left()).index === 0, {
      what: 'the late writes removed by the worker',
    })
    expect(worker.held()).to.not.include(sa.id)
  })

  it(
    'a paused subscription re-delivers a dead letter when resumed, before the ' + 'versions of its key read since',
    async () => {
      let reject = true
      const a = await rx((_r, res) => res.writeHead(reject ? 400 : 204).end())
      const sa = await h.subscribe({ name: 'a', url: a.url })
      worker = await h.worker()
      await waitFor(async () => (await status(sa.id))?.state === 'running')
      const [v1] = await h.produce([{ sku: 'SKU-0', seq: 0 }])
      await waitFor(async () => (await h.cp.deliveries.get(sa.id, v1!))?.status === 'dead', { what: 'v1 dead' })
      reject = false
      await h.cp.setDesiredState(ADMIN, sa.id, 'paused')
      await waitFor(async () => (await status(sa.id))?.state === 'paused', { what: 'paused' })
      const req = await h.cp.requestRetry(ADMIN, sa.id, null)
      await new Promise((r) => setTimeout(r, 1500)) // the request is taken up; the paused lane holds it
      const [v2] = await h.produce([{ sku: 'SKU-0', seq: 1 }])
      await new Promise((r) => setTimeout(r, 500))
      expect(a.received, 'nothing delivered while paused').to.have.length(1)
      await h.cp.setDesiredState(ADMIN, sa.id, 'running')
      await waitFor(async () => (await h.cp.cols.retryRequests.findOne({ _id: req._id }))?.status === 'done', {
        what: 'the retry request done',
      })
      await waitFor(() => verified(sa.secret, a).some((g) => g.id === v2), { what: 'v2 delivered' })
      expect(
        verified(sa.secret, a).map((g) => g.id),
        'v1 rejected, v1 re-delivered, then v2',
      ).to.deep.equal([v1, v1, v2])
    },
  )

  it(
    'performs a retry request of a held subscription behind 150 older ones of ' +
      "stopped and deleted subscriptions; completes the deleted ones' and keeps the " +
      "stopped one's until it runs",
    async () => {
      let reject = true
      const a = await rx((r, res) => {
        const body = JSON.parse(r.body) as { data: { sku: string } }
        res.writeHead(reject && body.data.sku === 'SKU-1' ? 400 : 204).end()
      })
      const sa = await h.subscribe({ name: 'held', url: a.url })
      const stopped = await h.subscribe({ name: 'stopped', url: a.url })
      await h.cp.setDesiredState(ADMIN, stopped.id, 'stopped')
      // 150 requests older than any other: 110 of the stopped subscription, 40 of subscriptions deleted since
      const old = Array.from({ length: 150 }, (_, i) => ({
        _id: `rtr_${String(i).padStart(24, '0')}`,
        subscriptionId: i < 110 ? stopped.id : `sub_deleted_${i % 7}`,
        partnerId: h.partnerId,
        kind: 'dead-letters' as const,
        eventId: null,
        status: 'pending' as const,
        requestedAt: new Date(Date.now() - 3600_000),
        requestedBy: 'test',
        completedAt: null,
      }))
      await h.cp.cols.retryRequests.insertMany(old)
      worker = await h.worker()
      await waitFor(async () => (await status(sa.id))?.state === 'running')
      await h.produce(levels(2, 2)) // SKU-0 delivered, SKU-1 rejected: dead
      const dead = await waitFor(
        async () => (await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 10 })).items[0],
      )
      reject = false
      const req = await h.cp.requestRetry(ADMIN, sa.id, null)
      const t0 = Date.now()
      await waitFor(async () => (await h.cp.cols.retryRequests.findOne({ _id: req._id }))?.status === 'done', {
        what: 'the fresh request done',
        timeoutMs: 15_000,
      })
      console.log(`      (the fresh request behind 150 stale ones was done in ${Date.now() - t0} ms)`)
      expect((await h.cp.deliveries.get(sa.id, dead.eventId))?.status).to.equal('delivered')
      expect((await h.cp.cols.retryRequests.findOne({ _id: req._id }))?.outcome).to.equal('re-delivered 1 of 1')
      await waitFor(
        async () =>
          (await h.cp.cols.retryRequests.countDocuments({
            subscriptionId: { $regex: '^sub_deleted_' },
            status: 'done',
          })) === 40,
        { what: "the deleted subscriptions' requests done" },
      )
      const gone = await h.cp.cols.retryRequests.findOne({ subscriptionId: 'sub_deleted_3' })
      expect(gone?.outcome).to.equal('not performed: the subscription was deleted')
      expect(
        await h.cp.cols.retryRequests.countDocuments({ subscriptionId: stopped.id, status: 'pending' }),
        "the stopped subscription's requests wait",
      ).to.equal(110)
      // started again, its requests are performed, one after the other
      await h.cp.setDesiredState(ADMIN, stopped.id, 'running')
      await waitFor(
        async () =>
          (await h.cp.cols.retryRequests.countDocuments({ subscriptionId: stopped.id, status: 'done' })) === 110,
        { what: "the restarted subscription's requests done", timeoutMs: 30_000 },
      )
    },
  )

  it(
    'shares catch-up reader slots in turns: a long replay yields its slot to a ' +
      'waiting subscription, and both get everything in order',
    async function () {
      this.timeout(300_000)
      // One slot, and a backlog that takes a reader several turns to read: 50,000 records, of which
      // each subscription's filter keeps 1 % (the reader reads them all; the rest are passed over at
      // delivery, without a call), so reading, not delivering, is what takes the time. Before turns,
      // the second subscription's reader waited until the first had read all of it.
      const a = await rx()
      const b = await rx()
      const all: string[] = []
      for (let i = 0; i < 25; i++) all.push(...(await h.produce(levels(2000, 100, i * 2000))))
      const mine = all.filter((_, i) => i % 100 === 0) // SKU-0
      // a loaded test machine is not a failing partner
      const policy = { retrySchedule: [0.05, 0.1, 0.2], timeoutMs: 30_000 }
      const filter = { sku: { in: ['SKU-0'] } }
      const sa = await h.subscribe({
        name: 'replay-a',
        url: a.url,
        startFrom: 'earliest',
        filter,
        deliveryPolicy: policy,
      })
      const sb = await h.subscribe({
        name: 'replay-b',
        url: b.url,
        startFrom: 'earliest',
        filter,
        deliveryPolicy: policy,
      })
      worker = await h.worker(
        { maxCatchUpReaders: 1, catchUpSliceMs: 300, maxBuffered: 100_000 },
        { parkAfterFailures: 1000 },
      )
      await waitFor(
        () => distinct(verified(sa.secret, a)) === mine.length && distinct(verified(sb.secret, b)) === mine.length,
        {
          timeoutMs: 240_000,
          what: () =>
            `both replays delivered: ${distinct(verified(sa.secret, a))} and ` +
            `${distinct(verified(sb.secret, b))} of ${mine.length}, ` +
            `${worker.catchUpYields} yields`,
        },
      )
      expect(worker.catchUpYields, 'readers yielded their slot while the other subscription waited').to.be.greaterThan(
        0,
      )
      for (const [s, r] of [
        [sa, a],
        [sb, b],
      ] as const) {
        const got = verified(s.secret, r)
        expect(new Set(got.map((g) => g.id))).to.deep.equal(new Set(mine))
        expectPerKeyOrder(got)
      }
    },
  )

  it(
    'keeps at most deliveryPolicy.concurrency keys in flight per subscription, ' +
      'and the platform default without one',
    async () => {
      // each receiver holds every request 150 ms and records how many it held at once
      const holding = async () => {
        const seen = { now: 0, max: 0 }
        const r = await rx((_r, res) => {
          seen.max = Math.max(seen.max, ++seen.now)
          setTimeout(() => {
            seen.now--
            res.writeHead(204).end()
          }, 150)
        })
        return { r, seen }
      }
      const two = await holding()
      const dflt = await holding()
      const s2 = await h.subscribe({
        name: 'two',
        url: two.r.url,
        deliveryPolicy: { retrySchedule: [0.05], timeoutMs: 2000, concurrency: 2 },
      })
      const sd = await h.subscribe({ name: 'default', url: dflt.r.url })
      worker = await h.worker({}, { concurrency: 5 })
      await waitFor(
        async () => (await status(s2.id))?.state === 'running' && (await status(sd.id))?.state === 'running',
        { what: 'running status' },
      )
      await h.produce(levels(40, 20)) // 20 keys, 2 events each
      await waitFor(() => distinct(verified(s2.secret, two.r)) === 40 && distinct(verified(sd.secret, dflt.r)) === 40, {
        what: 'all deliveries',
        timeoutMs: 20_000,
      })
      expect(two.seen.max, "the subscription's own limit").to.equal(2)
      expect(dflt.seen.max, 'the platform default').to.equal(5)
      expectPerKeyOrder(verified(s2.secret, two.r))
    },
  )

  it('isolates partners: one answering 500 and one hanging while another keeps receiving', async () => {
    const failing = await rx((_r, res) => res.writeHead(500).end('down'))
    const hanging = await rx(() => {})
    const healthy = await rx()
    await h.subscribe({
      name: 'failing',
      url: failing.url,
      deliveryPolicy: { retrySchedule: [0.2, 0.5, 1, 2, 5], timeoutMs: 1000 },
    })
    await h.subscribe({
      name: 'hanging',
      url: hanging.url,
      deliveryPolicy: { retrySchedule: [0.2, 0.5, 1, 2, 5], timeoutMs: 1000 },
    })
    const ok = await h.subscribe({ name: 'healthy', url: healthy.url })
    worker = await h.worker({ maxBuffered: 50 })
    await waitFor(async () => (await status(ok.id))?.state === 'running')
    const t0 = Date.now()
    for (let i = 0; i < 10; i++) {
      await h.produce(levels(30, 10, i * 30))
      await new Promise((r) => setTimeout(r, 50))
    }
    await waitFor(() => distinct(verified(ok.secret, healthy)) === 300, {
      what: async () =>
        `healthy partner receives everything: got ` +
        `${distinct(verified(ok.secret, healthy))} of 300; its status ` +
        `${JSON.stringify(await status(ok.id))}`,
      timeoutMs: 15_000,
    })
    const elapsed = Date.now() - t0
    expect(elapsed, 'healthy partner drained within').to.be.below(8000)
    expectPerKeyOrder(verified(ok.secret, healthy))
    expect(failing.received.length).to.be.greaterThan(0)
  })
})
