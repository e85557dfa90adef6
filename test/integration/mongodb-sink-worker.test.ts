/**
 * The MongoDB projection sink end to end: records produced to a real Kafka topic, run by the sink
 * worker through a control-plane subscription, projected into a database of the real
 * MongoDB-compatible server; replays through the control plane (offset reset to earliest).
 */
import { expect } from 'chai'
import type { Document } from 'mongodb'
import { createUrlGuard } from '../../common/url-guard.ts'
import { mongoUri } from '../../config/index.ts'
import { sinkFactoryByType } from '../../consumers/index.ts'
import { MongoClientPool, mongoSinkFactory } from '../../consumers/mongodb/index.ts'
import { dropDatabaseLater, testConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { levels } from '../helpers/sink-assertions.ts'
import { ADMIN, startSinkHarness, type Level, type SinkHarness } from '../helpers/sink-runtime.ts'

describe('MongoDB projection sink: Kafka to a partner collection through the sink worker', function () {
  this.timeout(120_000)
  let h: SinkHarness
  let pool: MongoClientPool
  let partnerDb: string

  beforeEach(async () => {
    h = await startSinkHarness()
    pool = new MongoClientPool({
      guard: createUrlGuard({ allowlist: '127.0.0.1' }),
      logger: h.logger,
      settings: { serverSelectionTimeoutMs: 3000 },
    })
    partnerDb = uniqueName('partner').slice(0, 40)
    dropDatabaseLater(partnerDb)
  })
  afterEach(async () => {
    await h.close() // stops the workers (and so the sinks) before their clients close
    await pool.close()
  })

  /** A projected document's _id: the key's text, which carries its owner (the harness publisher). */
  const keyOf = (sku: string) => JSON.stringify({ manufacturerId: h.publisherId, sku, locationId: 'WH1' })
  const delivered = async () =>
    Number(
      /^distributary_deliveries_total\{sink="mongodb",outcome="delivered"\} (\d+)$/m.exec(
        (await h.metrics.render()).body,
      )?.[1] ?? 0,
    )
  const docs = () => h.mongo.db(partnerDb).collection('levels').find({}).sort({ _id: 1 }).toArray()
  const subscribeMongo = async (name = 'mirror') => {
    const r = await h.cp.createSubscription(ADMIN, {
      partnerId: h.partnerId,
      name,
      eventTypes: ['inventory.level.changed'],
      sink: { type: 'mongodb', connectionString: mongoUri(testConfig()), database: partnerDb, collection: 'levels' },
      deliveryPolicy: { retrySchedule: [0.05, 0.1, 0.2], timeoutMs: 2000 },
    })
    return r.subscription._id
  }
  const startWorker = () => h.worker({}, {}, sinkFactoryByType({ mongodb: mongoSinkFactory(pool, h.cp, [h.topic]) }))
  const running = (id: string) =>
    waitFor(async () => (await h.cp.getConnector(ADMIN, id)).status?.state === 'running', { what: 'running status' })

  /** The latest state per key of what was produced, in order: null for a tombstone. */
  const latest = (steps: Array<Level[] | { tombstones: string[] }>) => {
    const state = new Map<string, number | null>()
    for (const step of steps) {
      if (Array.isArray(step)) for (const l of step) state.set(l.sku, l.seq)
      else for (const sku of step.tombstones) state.set(sku, null)
    }
    return [...state]
      .filter(([, seq]) => seq !== null)
      .map(([sku, seq]) => ({ _id: keyOf(sku), sku, onHand: seq, sequence: seq }))
  }
  const projection = (all: Document[]) =>
    all.map((d) => ({ _id: d._id, sku: d.sku, onHand: d.onHand, sequence: d.sequence }))

  it(
    'replayed twice from the earliest offset, the collection equals the latest ' +
      'state per key, and no older version overwrote a newer one',
    async () => {
      const id = await subscribeMongo()
      await startWorker()
      await running(id)
      const first = levels(60, 6)
      await h.produce(first)
      await h.produceTombstones(['SKU-3', 'SKU-4', 'SKU-5'])
      const again = levels(4, 4, 60) // SKU-0..3 again: SKU-3 comes back after its tombstone
      await h.produce(again)
      const total = first.length + 3 + again.length
      await waitFor(async () => (await delivered()) === total, { what: 'every record projected', timeoutMs: 60_000 })
      const expected = latest([first, { tombstones: ['SKU-3', 'SKU-4', 'SKU-5'] }, again]).sort((a, b) =>
        a._id.localeCompare(b._id),
      )
      const live = await docs()
      expect(projection(live)).to.deep.equal(expected)
      // metadata: the event and the version (the offset) of the state stored
      for (const d of live) {
        expect(d._meta).to.include({ topic: h.topic.name, eventType: 'inventory.level.changed' })
        expect(d._meta.version).to.be.a('number')
        expect(d._meta.occurredAt).to.be.instanceOf(Date)
      }

      for (const round of [1, 2]) {
        await h.cp.resetConnector(ADMIN, id, 'earliest', null)
        await waitFor(async () => (await delivered()) === total * (1 + round), {
          what: `replay ${round} projected`,
          timeoutMs: 60_000,
        })
        // the same documents, down to when they were written: every replayed older version was skipped
        expect(await docs(), `after replay ${round}`).to.deep.equal(live)
      }
      const st = (await h.cp.getConnector(ADMIN, id)).status
      expect(st?.lastError ?? null).to.equal(null)
      // nothing was dead-lettered: tombstones reached the sink (the webhook sink dead-letters them)
      expect(
        (await h.cp.deliveries.search({ subscriptionId: id, status: 'dead' }, { limit: 10 })).items,
      ).to.have.length(0)
    },
  )

  it('a tombstone deletes the key, and a later state creates it again', async () => {
    const id = await subscribeMongo()
    await startWorker()
    await running(id)
    await h.produce([
      { sku: 'A', seq: 1 },
      { sku: 'B', seq: 2 },
    ])
    await waitFor(async () => (await docs()).length === 2, { what: 'two documents' })
    await h.produceTombstones(['A'])
    await waitFor(async () => (await docs()).length === 1, { what: 'A deleted' })
    expect((await docs()).map((d) => d._id)).to.deep.equal([keyOf('B')])
    await h.produce([{ sku: 'A', seq: 3 }])
    await waitFor(async () => (await docs()).length === 2, { what: 'A again' })
    expect(projection(await docs())).to.deep.equal(
      latest([
        [
          { sku: 'A', seq: 3 },
          { sku: 'B', seq: 2 },
        ],
      ]).sort((a, b) => a._id.localeCompare(b._id)),
    )
  })
})
