/**
 * A control-plane store outage is not a partner failure: a worker whose control plane is reached
 * through a TCP proxy in front of the real MongoDB-compatible server loses it for about 15 s (every
 * message cut, every new connection too). Delivery holds (no attempt, no retry schedule consumed,
 * nothing parked or dead-lettered) and resumes within seconds of the store's return; a call in flight
 * is aborted before the leases could expire (another worker could take them over then) and sent again
 * afterwards.
 */
import { expect } from 'chai'
import { MongoClient } from 'mongodb'
import type { SinkWorker, SinkWorkerSettings } from '../../connectors/sink/worker.ts'
import type { DeliveryDefaults } from '../../connectors/sink/settings.ts'
import { parseConnectionString } from '../../consumers/mongodb/connection.ts'
import { mongoUri } from '../../config/index.ts'
import { testConfig, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver, type ReceiverHandler } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { expectPerKeyOrder, levels, verified } from '../helpers/sink-assertions.ts'
import { startWireProxy, type WireProxy } from '../helpers/wire-proxy.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('sink worker: a control-plane store outage', function () {
  this.timeout(120_000)
  let h: SinkHarness
  let rx: Receiver
  let proxy: WireProxy
  let client: MongoClient
  let down = false
  /** While set, delivery-log writes wait at the proxy until it resolves (a store too slow for them). */
  let stallLog: Promise<void> | null = null
  /** While set, every delivery-log write cuts its connection (the store refuses them). */
  let cutLog = false

  afterEach(async () => {
    down = false // a failed test must not leave the worker's store away
    stallLog = null
    cutLog = false
    await h?.close()
    await client?.close().catch(() => undefined)
    await proxy?.close()
    await rx?.close()
  })

  /** A subscription to a receiver, and a worker whose control-plane store is behind the proxy. */
  const setup = async (
    handler?: ReceiverHandler,
    timeoutMs = 2000,
    settings: Partial<SinkWorkerSettings> = {},
    defaults: Partial<DeliveryDefaults> = {},
    retrySchedule = [0.05, 0.1, 0.2],
  ) => {
    h = await startSinkHarness({ partitions: 1 })
    rx = await startReceiver(handler)
    const sub = await h.subscribe({ name: 'outage', url: rx.url, deliveryPolicy: { retrySchedule, timeoutMs } })
    proxy = await startWireProxy(parseConnectionString(mongoUri(testConfig())).hosts[0]!, async (message) => {
      if (stallLog && message.includes('deliveries')) await stallLog
      return down || (cutLog && message.includes('deliveries')) ? 'cut' : 'forward'
    })
    client = new MongoClient(`mongodb://${proxy.host}:${proxy.port}/`, {
      directConnection: true,
      serverSelectionTimeoutMS: 60_000,
    })
    await client.connect()
    const db = client.db(h.dbName)
    const worker: SinkWorker = await h.worker(settings, defaults, undefined, { cp: await h.controlPlane(db), db })
    await waitFor(async () => (await h.cp.getConnector(ADMIN, sub.id)).status?.state === 'running', { what: 'running' })
    return { sub, worker }
  }

  it("holds delivery without charging the partner, and resumes within seconds of the store's return", async () => {
    const { sub, worker } = await setup()
    const ids = await h.produce(levels(5, 5))
    const got = () => new Set(verified(sub.secret, rx).map((g) => g.id))
    await waitFor(() => got().size === 5, { what: 'the first events' })

    down = true
    const downAt = Date.now()
    await sleep(6000) // the leases are no longer surely this worker's (0.8 x 3 s)
    const held = await h.produce(levels(5, 5, 5))
    await sleep(6000) // and now the grants are older than they may be (10 s) too
    const late = await h.produce(levels(5, 5, 10))
    await sleep(Math.max(0, 15_000 - (Date.now() - downAt)))
    expect(
      [...held, ...late].filter((id) => got().has(id)),
      'delivered while the store was away',
    ).to.deep.equal([])
    down = false
    const upAt = Date.now()
    await waitFor(() => got().size === 15, { what: 'every event after the store returned', timeoutMs: 30_000 })
    const resumedMs = Date.now() - upAt
    console.log(`      (store away ${upAt - downAt} ms; every held event delivered ${resumedMs} ms after it returned)`)
    expect(resumedMs, "resumed within seconds of the store's return").to.be.below(5000)
    expectPerKeyOrder(verified(sub.secret, rx))
    expect(rx.received, 'each event once').to.have.length(15)

    // Nothing was charged to the partner: no failed attempt, nothing parked, nothing dead.
    const stats = worker.queue.stats(sub.id)
    expect(stats.status).to.equal('active')
    expect(stats.consecutiveFailures).to.equal(0)
    const log = await waitFor(
      async () => {
        const docs = await h.cp.cols.deliveries.find({ subscriptionId: sub.id }).toArray()
        return docs.length === 15 && docs.every((d) => d.status === 'delivered') ? docs : null
      },
      { what: 'every delivery logged as delivered' },
    )
    for (const d of log) {
      expect(d.attemptCount, `attempts of ${d.eventId}`).to.equal(1)
      expect(
        d.attempts.every((a) => a.error == null),
        `failed attempts of ${d.eventId}`,
      ).to.equal(true)
    }
    expect(new Set(log.map((d) => d.eventId))).to.deep.equal(new Set([...ids, ...held, ...late]))
    const status = await waitFor(
      async () => {
        const st = (await h.cp.getConnector(ADMIN, sub.id)).status
        return st && st.reportedAt.getTime() > upAt ? st : null
      },
      { what: 'a status report after the outage' },
    )
    expect(status.state).to.equal('running')
    expect(status.lastError).to.equal(null)
  })

  it(
    'aborts a call in flight before the leases could expire, and sends it again ' +
      'once the store is back: one attempt, no failure',
    async () => {
      let hold = true
      let closedAt = 0
      const { sub } = await setup((_r, res) => {
        if (!hold) return res.writeHead(204).end()
        res.on('close', () => {
          if (!res.writableEnded) closedAt = Date.now()
        })
      }, 60_000)
      const [id] = await h.produce(levels(1, 1))
      await waitFor(() => rx.received.length === 1, { what: 'the call in flight' })
      down = true
      const downAt = Date.now()
      await waitFor(() => closedAt > 0, { what: 'the call aborted', timeoutMs: 10_000 })
      console.log(
        `      (the call in flight was aborted ${closedAt - downAt} ms after the store went away; lease TTL 3000 ms)`,
      )
      expect(closedAt - downAt, 'aborted before the leases could expire').to.be.below(3000)
      await sleep(2000)
      expect(rx.received, 'nothing sent while the store is away').to.have.length(1)
      hold = false
      down = false
      await waitFor(() => rx.received.length === 2, { what: 'sent again once the store is back', timeoutMs: 20_000 })
      const doc = await waitFor(
        async () => {
          const d = await h.cp.deliveries.get(sub.id, id!)
          return d?.status === 'delivered' ? d : null
        },
        { what: 'logged as delivered' },
      )
      expect(doc.attemptCount, 'the aborted call is no attempt').to.equal(1)
      expect(doc.attempts.every((a) => a.error == null)).to.equal(true)
    },
  )

  it(
    'while the delivery log cannot be written, its backlog stays bounded: no ' +
      'partner call starts once it is full, and every failed attempt is logged ' +
      'afterwards',
    async () => {
      let answer = 503
      let failedCalls = 0
      const delivered = new Set<string>()
      const { sub, worker } = await setup(
        (r, res) => {
          if (answer === 503) failedCalls++
          else delivered.add(String(r.headers['webhook-id']))
          res.writeHead(answer).end()
        },
        2000,
        { logBacklogMax: 20 },
        { parkAfterFailures: 10_000 },
        Array(100).fill(0.05),
      )
      let release!: () => void
      stallLog = new Promise<void>((r) => (release = r))
      await h.produce(levels(10, 10)) // 10 keys, each failing every 50 ms
      await waitFor(() => worker.logBacklog() >= 20, { what: 'the backlog full' })
      await sleep(500)
      const held = rx.received.length
      await sleep(1500)
      const most = worker.logBacklog()
      console.log(`      (delivery log stalled: ${held} calls, then none; backlog ${most} writes, bound 20)`)
      expect(rx.received.length, 'no partner call while the backlog is full').to.equal(held)
      expect(most, 'the backlog: the bound, plus the calls that were in flight').to.be.at.most(20 + 10)
      answer = 204
      stallLog = null
      release()
      await waitFor(() => delivered.size === 10, { what: 'every event delivered', timeoutMs: 30_000 })
      await waitFor(() => worker.logBacklog() === 0, { what: 'the backlog written' })
      // Failed attempts are never dropped (successes may be, while the backlog is over half full).
      const docs = await h.cp.cols.deliveries.find({ subscriptionId: sub.id }).toArray()
      const loggedFailures = docs.reduce((n, d) => n + d.attemptCount - (d.status === 'delivered' ? 1 : 0), 0)
      expect(loggedFailures, 'every failed call is in the delivery log').to.equal(failedCalls)
    },
  )

  it(
    'a delivery-log write the store refused for seconds is written once it takes ' + 'writes again: no attempt is lost',
    async () => {
      let answer = 503
      const delivered = new Set<string>()
      const { sub, worker } = await setup(
        (r, res) => {
          if (answer === 204) delivered.add(String(r.headers['webhook-id']))
          res.writeHead(answer).end()
        },
        2000,
        {},
        { parkAfterFailures: 10_000 },
        Array(100).fill(0.2),
      )
      cutLog = true
      await h.produce(levels(5, 5))
      await sleep(4000)
      expect(rx.received.length, 'calls while the log was refused').to.be.greaterThan(10)
      cutLog = false
      answer = 204
      await waitFor(() => delivered.size === 5, { what: 'every event delivered' })
      await waitFor(() => worker.logBacklog() === 0, { what: 'the backlog written', timeoutMs: 30_000 })
      const docs = await h.cp.cols.deliveries.find({ subscriptionId: sub.id }).toArray()
      expect(
        docs.reduce((n, d) => n + d.attemptCount, 0),
        'every call is in the delivery log',
      ).to.equal(rx.received.length)
      expect(docs.every((d) => d.status === 'delivered')).to.equal(true)
    },
  )
})
