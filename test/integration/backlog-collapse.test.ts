/**
 * Backlog collapse (issue 24): a subscription with deliveryPolicy.collapseBacklog, resumed with records
 * waiting, is sent only the latest record of each key among them (a tombstone too), in order per key
 * and never older than what it already has, then goes on live. Real Kafka, real store, real webhooks.
 */
import { expect } from 'chai'
import { Webhook } from 'standardwebhooks'
import { verifyDelivery } from '../../chaos/deliveries.ts'
import { RequestInvalidError } from '../../control-plane/index.ts'
import { sleep } from '../../common/timers.ts'
import { waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { levels } from '../helpers/sink-assertions.ts'

interface Seen {
  id: string
  sku: string | null
  seq: number | null
}

describe('backlog collapse: the latest of each key after a pause', function () {
  this.timeout(120_000)
  let h: SinkHarness
  const receivers: Receiver[] = []

  beforeEach(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  const seen = (secret: string, rx: Receiver): Seen[] => {
    const wh = new Webhook(secret)
    return rx.received.map((r) => {
      const { id, payload } = verifyDelivery<{ data: { sku: string; sequence: number } | null }>(wh, r)
      return { id, sku: payload.data?.sku ?? null, seq: payload.data ? Number(payload.data.sequence) : null }
    })
  }
  const status = async (id: string) => (await h.cp.getConnector(ADMIN, id)).status

  for (const [how, settings] of [
    ["from the shared reader's index", {}],
    ['by a scan (no index: worker.collapseIndexMaxKeys 0)', { collapseIndexMaxKeys: 0 }],
  ] as const)
    it(`sends the latest record of each key waiting, a tombstone as its key's latest, then live: ${how}`, async () => {
      const rx = await startReceiver()
      const plain = await startReceiver()
      receivers.push(rx, plain)
      const policy = { retrySchedule: [0.05, 0.1, 0.2], timeoutMs: 2000 }
      const s = await h.subscribe({
        name: 'collapsing',
        url: rx.url,
        deliveryPolicy: { ...policy, collapseBacklog: true },
      })
      const p = await h.subscribe({ name: 'every-record', url: plain.url, deliveryPolicy: policy })
      const worker = await h.worker(settings)
      await waitFor(async () => (await status(s.id))?.state === 'running', { what: 'running' })

      // before the pause: 10 records over 5 keys, all delivered
      await h.produce(levels(10, 5, 0))
      await waitFor(() => rx.received.length === 10, { what: 'the first 10' })
      const before = seen(s.secret, rx)
      const had = new Map<string, number>()
      for (const g of before) had.set(g.sku!, Math.max(had.get(g.sku!) ?? -1, g.seq!))

      await h.cp.setDesiredState(ADMIN, s.id, 'paused')
      await waitFor(async () => (await status(s.id))?.state === 'paused', { what: 'paused' })
      // 6,000 records over the 5 keys wait (long stretches without a key's latest: sought over, not read), then SKU-4
      // is deleted
      for (let from = 10; from < 6010; from += 1000) await h.produce(levels(1000, 5, from))
      const [tombstoneId] = await h.produceTombstones(['SKU-4'])
      // (a webhook cannot carry a deletion: the tombstone is a dead letter of each subscription, "nothing to deliver")
      const deadTombstone = async (subscriptionId: string) =>
        (await h.cp.deliveries.search({ subscriptionId, eventId: tombstoneId! }, { limit: 1 })).items[0]?.status ===
        'dead'
      await waitFor(async () => plain.received.length === 6010 && (await deadTombstone(p.id)), {
        what: () => `the other partner got every record (${plain.received.length})`,
      })

      await h.cp.setDesiredState(ADMIN, s.id, 'running')
      // the latest of SKU-0..3 (seq 6005..6008), and for SKU-4 its tombstone: nothing older of any key
      await waitFor(async () => rx.received.length >= 14 && (await deadTombstone(s.id)), {
        what: 'the collapsed backlog',
      })
      await sleep(2000)
      const after = seen(s.secret, rx).slice(10)
      expect(after.map((g) => `${g.sku}@${g.seq}`).sort(), 'one delivery per key, its latest').to.deep.equal([
        'SKU-0@6005',
        'SKU-1@6006',
        'SKU-2@6007',
        'SKU-3@6008',
      ])
      // never older than what it had
      for (const g of after) expect(g.seq).to.be.greaterThan(had.get(g.sku!)!)

      // live again: every new record, in order
      await h.produce(levels(5, 5, 7000))
      await waitFor(() => rx.received.length === 19, { what: 'live records after the collapse' })
      expect(
        seen(s.secret, rx)
          .slice(14)
          .map((g) => g.seq),
      ).to.have.members([7000, 7001, 7002, 7003, 7004])
      await waitFor(async () => (await status(s.id))?.lag === 0, { what: 'caught up' })
      expect(worker.collapsesWithoutScan, 'collapses without a scan').to.equal(
        'collapseIndexMaxKeys' in settings ? 0 : 1,
      )
    })

  it('a collapse interrupted by kill -9 resumes: each key ends at its latest, never going back', async () => {
    // one key at a time, 150 ms each: the collapse is still delivering when its worker is killed
    const rx = await startReceiver((_r, res) => setTimeout(() => res.writeHead(204).end(), 150))
    receivers.push(rx)
    const s = await h.subscribe({
      name: 'collapse-crash',
      url: rx.url,
      deliveryPolicy: { retrySchedule: [0.05, 0.1], timeoutMs: 5000, concurrency: 1, collapseBacklog: true },
    })
    let child = await h.childWorker('collapse-1')
    await waitFor(async () => (await status(s.id))?.state === 'running', { what: 'running' })
    await h.cp.setDesiredState(ADMIN, s.id, 'paused')
    await waitFor(async () => (await status(s.id))?.state === 'paused', { what: 'paused' })
    await h.produce(levels(600, 40, 0)) // 40 keys, 15 versions each: the latest is seq 560..599
    await h.cp.setDesiredState(ADMIN, s.id, 'running')
    await waitFor(() => rx.received.length >= 8, { what: 'the collapse delivering', timeoutMs: 60_000 })
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    child = await h.childWorker('collapse-2')
    const latest = (g: Seen[]) => {
      const m = new Map<string, number>()
      for (const x of g) m.set(x.sku!, x.seq!)
      return m
    }
    await waitFor(() => latest(seen(s.secret, rx)).size === 40, { what: 'every key delivered', timeoutMs: 90_000 })
    await sleep(1500)
    const got = seen(s.secret, rx)
    // each key's last delivery is its latest version, and no key ever went back to an older one
    for (const [sku, seq] of latest(got)) expect(seq, sku).to.equal(560 + Number(sku.slice(4)))
    const lastSeq = new Map<string, number>()
    for (const g of got) {
      expect(g.seq, `${g.sku} went back`).to.be.at.least(lastSeq.get(g.sku!) ?? -1)
      lastSeq.set(g.sku!, g.seq!)
    }
    // the latest of each key, plus at most what was in flight at the kill sent again: not 600
    expect(got.length, 'deliveries').to.be.within(40, 45)
    expect((await status(s.id))?.workerId).to.equal('collapse-2')
  })

  it('collapses the backlog of a partner whose endpoint was down (parked) once it answers again', async () => {
    let up = true
    const ok: Seen[] = []
    const wh = () => new Webhook(s.secret)
    const rx = await startReceiver((r, res) => {
      if (!up) return res.writeHead(503).end()
      const { id, payload } = verifyDelivery<{ data: { sku: string; sequence: number } }>(wh(), r)
      ok.push({ id, sku: payload.data.sku, seq: Number(payload.data.sequence) })
      res.writeHead(204).end()
    })
    receivers.push(rx)
    // retries spaced over a minute: the outage parks the subscription, nothing is dead-lettered
    const retrySchedule = Array.from({ length: 60 }, () => 1)
    const s = await h.subscribe({
      name: 'parked',
      url: rx.url,
      deliveryPolicy: { retrySchedule, timeoutMs: 2000, collapseBacklog: true },
    })
    await h.worker({}, { parkAfterFailures: 3 })
    await waitFor(async () => (await status(s.id))?.state === 'running', { what: 'running' })
    await h.produce(levels(10, 5, 0))
    await waitFor(() => ok.length === 10, { what: 'the first 10' })

    up = false
    await h.produce(levels(300, 5, 10))
    await waitFor(() => rx.received.length >= ok.length + 3, { what: 'failed attempts' })
    await sleep(1500)
    const downTo = ok.length
    up = true
    await waitFor(
      () => {
        const last = new Map<string, number>()
        for (const g of ok) last.set(g.sku!, g.seq!)
        return [0, 1, 2, 3, 4].every((k) => last.get(`SKU-${k}`) === 305 + k)
      },
      { what: 'every key at its latest', timeoutMs: 60_000 },
    )
    await sleep(1500)
    const after = ok.slice(downTo)
    // a handful of records was under way when the endpoint came back; the rest of the 300 is collapsed
    expect(after.length, 'deliveries after the outage').to.be.within(5, 30)
    const lastSeq = new Map<string, number>()
    for (const g of ok) {
      expect(g.seq, `${g.sku} went back`).to.be.at.least(lastSeq.get(g.sku!) ?? -1)
      lastSeq.set(g.sku!, g.seq!)
    }
  })

  it('is refused on an event topic, naming deliveryPolicy.collapseBacklog', async () => {
    const err = await h.cp
      .createSubscription(ADMIN, {
        partnerId: h.partnerId,
        name: 'deals-collapsed',
        eventTypes: ['deal.registered'],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' },
        deliveryPolicy: { collapseBacklog: true },
      })
      .then(
        () => null,
        (e: unknown) => e,
      )
    expect(err).to.be.instanceOf(RequestInvalidError)
    expect((err as RequestInvalidError).errors[0]?.field).to.equal('deliveryPolicy.collapseBacklog')
  })
})
