/**
 * Entitlements in the data plane, end to end (real Kafka, FerretDB, webhook receivers on 127.0.0.1):
 * whatever a subscription asks, a row outside its partner's grant or a field projected out never
 * reaches the receiver, live, after a replay from the earliest offset, and on a dead-letter retry;
 * a revoked grant stops delivery within seconds, also of records already queued.
 */
import { expect } from 'chai'
import type { SinkWorker } from '../../connectors/sink/worker.ts'
import { waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver, type ReceiverHandler } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { levels, verified } from '../helpers/sink-assertions.ts'

interface Body {
  type: string
  data: Record<string, unknown>
}

const bodies = (r: Receiver): Body[] => r.received.map((x) => JSON.parse(x.body) as Body)

describe('sink entitlements: grants enforced at delivery', function () {
  this.timeout(90_000)
  let h: SinkHarness
  let worker: SinkWorker
  const receivers: Receiver[] = []
  const rx = async (handler?: ReceiverHandler) => {
    const r = await startReceiver(handler)
    receivers.push(r)
    return r
  }
  const status = async (id: string) => (await h.cp.getConnector(ADMIN, id)).status
  const done = async (id: string, n: number) =>
    (await status(id))?.positions.reduce((s, p) => s + Number(p.offset), 0) === n
  const grantId = async () =>
    (await h.cp.cols.grants.findOne({ partnerId: h.partnerId, publisherId: h.publisherId }))!._id

  beforeEach(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  it(
    'never delivers a filtered-out row or a projected-out field, whatever the ' +
      'subscription asks: live, after a replay from earliest, and on a dead-letter ' +
      'retry',
    async () => {
      let reject = true
      const a = await rx((r, res) => {
        const b = JSON.parse(r.body) as Body
        // the last version of SKU-1: a dead letter that no newer record of its key supersedes
        if (reject && b.data.sku === 'SKU-1' && b.data.sequence === 28) return res.writeHead(400).end('no')
        res.writeHead(204).end()
      })
      // Subscribed while the grant was wide: it asks for onHand and every SKU.
      const sa = await h.subscribe({
        name: 'a',
        url: a.url,
        fields: ['sku', 'locationId', 'onHand', 'available', 'sequence'],
        filter: { sku: { in: ['SKU-0', 'SKU-1', 'SKU-2'] } },
      })
      // The publisher narrows the grant afterwards: SKU-0 and SKU-1 only, without onHand.
      await h.cp.updateGrant(ADMIN, await grantId(), {
        entitlements: [
          {
            eventType: 'inventory.level.changed',
            filter: { sku: { in: ['SKU-0', 'SKU-1'] } },
            fields: ['sku', 'locationId', 'available', 'sequence', 'reserved'],
          },
        ],
      })
      worker = await h.worker()
      await waitFor(async () => (await status(sa.id))?.state === 'running', { what: 'running' })
      await h.produce(levels(30, 3)) // SKU-0, SKU-1, SKU-2 x 10
      await waitFor(() => done(sa.id, 30), { what: 'every record done (delivered, dead or filtered)' })
      const expectEntitled = (bs: Body[]) => {
        for (const b of bs) {
          expect(b.data.sku, 'row filter').to.be.oneOf(['SKU-0', 'SKU-1'])
          // grant fields AND subscription fields: reserved (grant only) and onHand (subscription only) are out
          expect(Object.keys(b.data).sort(), 'projection').to.deep.equal(['available', 'locationId', 'sequence', 'sku'])
        }
      }
      const live = bodies(a)
      expectEntitled(live)
      expect(
        new Set(live.map((b) => b.data.sequence)).size,
        'the 20 rows of SKU-0 and SKU-1 (seq 28 received, refused, dead)',
      ).to.equal(20)
      expect(verified(sa.secret, a).length, 'signatures verify over the projected bodies').to.equal(live.length)
      const dead = await waitFor(
        async () => (await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 10 })).items[0],
        { what: 'the dead letter' },
      )
      // nothing filtered is in the delivery log
      const logged = await h.cp.cols.deliveries.find({ subscriptionId: sa.id }).toArray()
      expect(
        logged.every((d) => d.key.includes('SKU-0') || d.key.includes('SKU-1')),
        'filtered records are not logged as deliveries',
      ).to.equal(true)
      const metrics = (await h.metrics.render()).body
      expect(
        Number(/^distributary_deliveries_total\{sink="webhook",outcome="filtered"\} (\d+)$/m.exec(metrics)?.[1]),
      ).to.be.at.least(10)

      // Replay from earliest: the same 20 rows, the same projection.
      a.received.length = 0
      await h.cp.resetConnector(ADMIN, sa.id, 'earliest', null)
      await waitFor(() => new Set(bodies(a).map((b) => b.data.sequence)).size === 20, { what: 'replay' })
      await new Promise((r) => setTimeout(r, 500))
      expectEntitled(bodies(a))

      // Dead-letter retry: re-delivered projected.
      reject = false
      a.received.length = 0
      await h.cp.requestRetry(ADMIN, sa.id, dead.eventId)
      await waitFor(async () => (await h.cp.deliveries.get(sa.id, dead.eventId))?.status === 'delivered', {
        what: 'retried delivery',
      })
      expect(bodies(a)).to.have.length(1)
      expectEntitled(bodies(a))
    },
  )

  it(
    'many subscriptions of one topic, each with its own rows: each gets exactly ' +
      'its rows in order, the others never see them, and every position (also of a ' +
      'subscription that matched nothing) reaches the end and survives a restart',
    async () => {
      // 25 subscriptions of one SKU each, one of two SKUs (and a second condition), one without a filter,
      // one whose filter matches nothing; SKU-25 to SKU-29 have no subscription of their own.
      const specs: Array<{ name: string; filter?: Record<string, { in: string[] }>; skus: string[] | 'all' }> = [
        ...Array.from({ length: 25 }, (_, i) => ({
          name: `one-${i}`,
          filter: { sku: { in: [`SKU-${i}`] } },
          skus: [`SKU-${i}`],
        })),
        {
          name: 'two',
          filter: { sku: { in: ['SKU-0', 'SKU-1'] }, locationId: { in: ['WH1'] } },
          skus: ['SKU-0', 'SKU-1'],
        },
        { name: 'all', skus: 'all' },
        { name: 'none', filter: { locationId: { in: ['WH2'] } }, skus: [] },
      ]
      const subs: Array<(typeof specs)[number] & { id: string; r: Receiver }> = []
      for (const spec of specs) {
        const r = await rx()
        const { id } = await h.subscribe({
          name: spec.name,
          url: r.url,
          ...(spec.filter ? { filter: spec.filter } : {}),
        })
        subs.push({ ...spec, id, r })
      }
      worker = await h.worker()
      await waitFor(
        async () => (await Promise.all(subs.map((s) => status(s.id)))).every((st) => st?.state === 'running'),
        { what: 'all running' },
      )
      await h.produce(levels(300, 30)) // SKU-0 .. SKU-29, 10 each
      await waitFor(async () => (await Promise.all(subs.map((s) => done(s.id, 300)))).every(Boolean), {
        what: 'every position at the end',
        timeoutMs: 30_000,
      })
      const expectRows = (perSku: number) => {
        for (const s of subs) {
          const got = bodies(s.r).map((b) => `${b.data.sku as string}#${b.data.sequence as number}`)
          const want = levels(30 * perSku, 30)
            .filter((l) => s.skus === 'all' || s.skus.includes(l.sku))
            .map((l) => `${l.sku}#${l.seq}`)
          // per key in order; across keys in any order
          const bySku = (xs: string[]) =>
            xs.reduce(
              (m, x) => m.set(x.split('#')[0]!, [...(m.get(x.split('#')[0]!) ?? []), x]),
              new Map<string, string[]>(),
            )
          expect(Object.fromEntries(bySku(got)), `${s.name}: exactly its rows, in order per key`).to.deep.equal(
            Object.fromEntries(bySku(want)),
          )
        }
      }
      expectRows(10)
      // Every subscription was offered or left out of every record, and each left-out one counts as filtered:
      // 28 subscriptions x 300 records, minus the 250 + 20 + 300 delivered.
      const text = (await h.metrics.render()).body
      expect(
        Number(/^distributary_deliveries_total\{sink="webhook",outcome="filtered"\} (\d+)$/m.exec(text)?.[1]),
        'filtered count',
      ).to.equal(28 * 300 - 570)

      // Restart: the positions were stored (none of them behind), so only the new rows arrive, once.
      await worker.stop()
      await h.produce(levels(30, 30, 300))
      worker = await h.worker()
      await waitFor(async () => (await Promise.all(subs.map((s) => done(s.id, 330)))).every(Boolean), {
        what: 'every position at the end after the restart',
        timeoutMs: 30_000,
      })
      expectRows(11)
    },
  )

  it('a dead letter whose row the grant no longer covers is not re-delivered on retry', async () => {
    const a = await rx((r, res) => {
      const b = JSON.parse(r.body) as Body
      res.writeHead(b.data.sku === 'SKU-1' ? 400 : 204).end()
    })
    const sa = await h.subscribe({ name: 'a', url: a.url })
    worker = await h.worker()
    await waitFor(async () => (await status(sa.id))?.state === 'running', { what: 'running' })
    await h.produce(levels(4, 2))
    await waitFor(() => done(sa.id, 4), { what: 'done' })
    const dead = (await h.cp.deliveries.search({ subscriptionId: sa.id, status: 'dead' }, { limit: 10 })).items
    expect(dead.map((d) => d.key).every((k) => k.includes('SKU-1'))).to.equal(true)
    expect(dead).to.have.length(2)
    await h.cp.updateGrant(ADMIN, await grantId(), {
      entitlements: [{ eventType: 'inventory.level.changed', filter: { sku: { in: ['SKU-0'] } } }],
    })
    await new Promise((r) => setTimeout(r, 1000)) // more than pollMs: the worker holds the new grant
    a.setHandler((_r, res) => res.writeHead(204).end())
    a.received.length = 0
    await h.cp.requestRetry(ADMIN, sa.id, null)
    await waitFor(
      async () => (await h.cp.cols.retryRequests.countDocuments({ subscriptionId: sa.id, status: 'done' })) === 1,
      { what: 'retry request done' },
    )
    expect(a.received, 'nothing re-delivered').to.have.length(0)
    for (const d of dead) {
      const doc = await h.cp.deliveries.get(sa.id, d.eventId)
      expect(doc?.status).to.equal('dead')
      expect(doc?.deadReason).to.match(/not entitled/)
    }
  })

  it('revoking the grant stops delivery within seconds, also of records already queued for retry', async () => {
    let ok = true
    const accepted: number[] = []
    const a = await rx((_r, res) => {
      if (ok) {
        accepted.push(Date.now())
        return res.writeHead(204).end()
      }
      res.writeHead(503).end()
    })
    const sa = await h.subscribe({
      name: 'a',
      url: a.url,
      deliveryPolicy: {
        retrySchedule: [
          0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
        ],
        timeoutMs: 2000,
      },
    })
    worker = await h.worker()
    await waitFor(async () => (await status(sa.id))?.state === 'running', { what: 'running' })
    await h.produce(levels(3, 3))
    await waitFor(() => done(sa.id, 3), { what: 'first records delivered' })
    expect(accepted).to.have.length(3)
    // The receiver fails: the next records wait in the queue for a retry.
    ok = false
    await h.produce(levels(6, 3, 3))
    await waitFor(() => a.received.length >= 5, { what: 'failing attempts' })
    const revokedAt = Date.now()
    await h.cp.deleteGrant(ADMIN, await grantId())
    // Once the worker noticed the deletion, the queued records are dropped at their next attempt.
    await waitFor(() => done(sa.id, 9), { what: 'queued records dropped', timeoutMs: 10_000 })
    const droppedAfterMs = Date.now() - revokedAt
    ok = true
    await h.produce(levels(3, 3, 9))
    await waitFor(() => done(sa.id, 12), { what: 'records after the revocation dropped', timeoutMs: 10_000 })
    await new Promise((r) => setTimeout(r, 500))
    expect(accepted, 'nothing delivered after the revocation').to.have.length(3)
    expect(droppedAfterMs, 'revocation took effect within seconds').to.be.below(5000)
    const delivered = await h.cp.cols.deliveries.countDocuments({ subscriptionId: sa.id, status: 'delivered' })
    expect(delivered).to.equal(3)
  })
})
