/**
 * How sink workers share subscriptions (connectors/sink/worker/ownership.ts): a lease lasts as long as
 * its holder's heartbeat, so an idle worker writes its heartbeat and no lease; claiming runs when the
 * connectors' change token moves (a subscription created or deleted is picked up within a heartbeat or
 * two, not at the next full pass a minute later) or a worker comes or goes; the live workers split the
 * subscriptions evenly, also when one joins after the other claimed everything, and take a leaving
 * worker's share back.
 */
import { expect } from 'chai'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { waitFor } from '../helpers/env.ts'
import {
  HELD_WHILE_HOLDER_LIVES,
  SINK_COLLECTIONS,
  type LeaseDoc,
  type WorkerDoc,
} from '../../connectors/sink/store.ts'
import { FULL_CLAIM_MS } from '../../connectors/sink/worker/ownership.ts'

describe('sink workers: sharing subscriptions', function () {
  this.timeout(120_000)
  let h: SinkHarness
  let rx: Receiver

  beforeEach(async () => {
    h = await startSinkHarness()
    rx = await startReceiver()
  })
  afterEach(async () => {
    await h.close()
    await rx.close()
  })

  const subscribe = async (n: number, from = 0) => {
    const ids: string[] = []
    for (let i = from; i < from + n; i++) ids.push((await h.subscribe({ name: `share-${i}`, url: rx.url })).id)
    return ids
  }
  const leases = () => h.db.collection<LeaseDoc>(SINK_COLLECTIONS.leases)

  it(
    'an idle worker renews its heartbeat and writes no lease; a subscription created or deleted while it ' +
      'runs is picked up within seconds',
    async () => {
      const ids = await subscribe(20)
      const w = await h.worker() // heartbeat every 500 ms, leases of 3 s (FAST)
      await waitFor(() => w.held().length === 20, { what: () => `held ${w.held().length} of 20` })
      const before = await leases().find({}).sort({ _id: 1 }).toArray()
      expect(before.map((l) => l._id)).to.deep.equal([...ids].sort())
      for (const l of before) expect(l.expiresAt.getTime()).to.equal(HELD_WHILE_HOLDER_LIVES.getTime())
      const heartbeat = async () =>
        (await h.db.collection<WorkerDoc>(SINK_COLLECTIONS.workers).findOne({ _id: w.workerId }))!.expiresAt.getTime()
      const beat = await heartbeat()
      await new Promise((r) => setTimeout(r, 4000)) // eight heartbeats, past a lease TTL
      expect(await leases().find({}).sort({ _id: 1 }).toArray(), 'the leases as claimed').to.deep.equal(before)
      expect(await heartbeat(), 'the heartbeat renewed').to.be.above(beat)
      expect(w.held()).to.have.length(20)

      const t0 = Date.now()
      const [added] = await subscribe(1, 20)
      await waitFor(() => w.held().includes(added!), { what: 'the new subscription held' })
      await h.cp.deleteSubscription(ADMIN, ids[0]!)
      await waitFor(() => !w.held().includes(ids[0]!), { what: 'the deleted subscription stopped' })
      const ms = Date.now() - t0
      console.log(`      (created and deleted subscriptions picked up within ${ms} ms)`)
      expect(ms, 'before the next full claim pass').to.be.below(FULL_CLAIM_MS / 4)
    },
  )

  it(
    'two workers split the subscriptions evenly, also when the second joins after the first claimed them ' +
      'all; the first takes them back when the second stops',
    async () => {
      await subscribe(30)
      const w1 = await h.worker()
      await waitFor(() => w1.held().length === 30, { what: () => `w1 held ${w1.held().length} of 30` })
      const w2 = await h.worker()
      const split = () => `${w1.held().length} + ${w2.held().length} (${w2.starting().length} starting)`
      await waitFor(() => w1.held().length === 15 && w2.held().length === 15 && w2.starting().length === 0, {
        timeoutMs: 30_000,
        what: split,
      })
      const held = await leases().find({}).toArray()
      expect(new Set(held.map((l) => l.workerId))).to.deep.equal(new Set([w1.workerId, w2.workerId]))
      for (const id of w2.held()) {
        const st = (await h.cp.getConnector(ADMIN, id)).status
        expect(st?.workerId, `${id} reported by the worker holding it`).to.equal(w2.workerId)
      }
      await w2.stop()
      await waitFor(() => w1.held().length === 30, { timeoutMs: 30_000, what: split })
    },
  )
})
