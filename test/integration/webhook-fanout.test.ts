/**
 * The delivery queue driving real webhook sinks against real receivers on 127.0.0.1: per-key order
 * across retries, dead letters after exhaustion, isolation of a failing and a hanging partner, and
 * the safe commit offsets. Every delivery is verified with the standardwebhooks package.
 */
import { expect } from 'chai'
import { Webhook } from 'standardwebhooks'
import { createLogger } from '../../common/logger.ts'
import { DeliveryQueue, type DeadLetterInfo } from '../../connectors/sink/delivery-queue.ts'
import type { AttemptReport, SinkRecord } from '../../connectors/sink/types.ts'
import type { SchedulePolicy } from '../../connectors/retry.ts'
import { WebhookClient, WebhookSink, generateSecret } from '../../consumers/webhook/index.ts'
import { waitFor } from '../helpers/env.ts'
import {
  loopbackOnlyGuard,
  startReceiver,
  type Received,
  type Receiver,
  type ReceiverHandler,
} from '../helpers/receiver.ts'

const silent = createLogger({ write: () => {} })
const TOPIC = 'inventory.levels'

function rec(offset: number, key: string, partition = 0): SinkRecord {
  return {
    topic: TOPIC,
    partition,
    offset: String(offset),
    key,
    value: { key, seq: offset },
    headers: {},
    eventId: `evt_${partition}_${offset}`,
    eventType: 'inventory.level.changed',
    timestamp: Date.now(),
  }
}

interface Partner {
  id: string
  secret: string
  rx: Receiver
  sink: WebhookSink
  reports: AttemptReport[]
}

function verifiedData(p: Partner, r: Received): { key: string; seq: number } {
  const headers = {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  }
  const payload = new Webhook(p.secret).verify(r.body, headers) as { data: { key: string; seq: number } }
  return payload.data
}

describe('delivery queue + webhook sink against real receivers', function () {
  this.timeout(30_000)
  let client: WebhookClient
  let queue: DeliveryQueue
  let partners: Partner[] = []
  const dead: Array<{ sub: string; record: SinkRecord; info: DeadLetterInfo }> = []
  const delivered = new Map<string, number>()

  const partner = async (
    id: string,
    handler: ReceiverHandler | undefined,
    opts: { policy: SchedulePolicy; timeoutMs?: number; concurrency?: number; parkAfterFailures?: number },
  ) => {
    const secret = generateSecret()
    const rx = await startReceiver(handler)
    const sink = new WebhookSink(client)
    const reports: AttemptReport[] = []
    await sink.start(
      { url: rx.url, secrets: [{ secret }], timeoutMs: opts.timeoutMs ?? 2000 },
      { subscriptionId: id, logger: silent, onAttempt: (r) => reports.push(r) },
    )
    queue.addSubscription({
      id,
      policy: opts.policy,
      concurrency: opts.concurrency ?? 4,
      parkAfterFailures: opts.parkAfterFailures ?? 1000,
      deliver: (record, { signal }) => sink.put([record], { signal }),
    })
    const p = { id, secret, rx, sink, reports }
    partners.push(p)
    return p
  }

  beforeEach(() => {
    client = new WebhookClient({ guard: loopbackOnlyGuard })
    dead.length = 0
    delivered.clear()
    queue = new DeliveryQueue(
      {
        onDeadLetter: (sub, record, info) => {
          dead.push({ sub, record, info })
        },
        onDelivered: (sub) => delivered.set(sub, (delivered.get(sub) ?? 0) + 1),
      },
      { logger: silent },
    )
  })
  afterEach(async () => {
    queue.close()
    await client.close()
    await Promise.all(partners.map((p) => p.rx.close()))
    partners = []
  })

  it('keeps per-key order across HTTP retries; duplicates only with the same webhook-id', async () => {
    // the first two calls carrying key K0's first event fail with 500
    let k0Failures = 0
    const answeredOk = new Set<Received>()
    const p = await partner(
      'order',
      (r, res) => {
        const body = JSON.parse(r.body) as { data: { key: string; seq: number } }
        if (body.data.seq === 0 && k0Failures < 2) {
          k0Failures++
          return res.writeHead(500).end('try later')
        }
        answeredOk.add(r)
        res.writeHead(204).end()
      },
      { policy: { kind: 'schedule', delaysMs: [30, 30, 30, 30], jitter: 0.1, maxRetryAfterMs: 1000 } },
    )
    const N = 60
    for (let i = 0; i < N; i++) queue.enqueue('order', rec(i, `K${i % 4}`))
    await waitFor(() => delivered.get('order') === N, { timeoutMs: 10_000 })
    const ok = p.rx.received.filter((r) => answeredOk.has(r))
    // every request verifies; successful ones are in seq order per key
    const perKey = new Map<string, number[]>()
    for (const r of p.rx.received) verifiedData(p, r)
    for (const r of ok) {
      const d = verifiedData(p, r)
      perKey.set(d.key, [...(perKey.get(d.key) ?? []), d.seq])
    }
    for (const [key, seqs] of perKey) expect(seqs, key).to.deep.equal([...seqs].sort((a, b) => a - b))
    expect(perKey.get('K0')).to.have.length(N / 4)
    // the failed attempts of event 0 reused its webhook-id
    const ids = p.rx.received.map((r) => String(r.headers['webhook-id']))
    expect(ids.filter((id) => id === 'evt_0_0')).to.have.length(3)
    expect(new Set(ids).size).to.equal(N)
    // K0's second event was not sent before its first succeeded
    const firstOk = ids.lastIndexOf('evt_0_0')
    expect(ids.indexOf('evt_0_4')).to.be.above(firstOk)
    expect(queue.safeOffset('order', TOPIC, 0)).to.equal(String(N))
  })

  it(
    'dead-letters an event whose endpoint keeps answering 503, with the attempts ' +
      'in the delivery log, and commits past it',
    async () => {
      const p = await partner(
        'dlq',
        (r, res) => {
          const body = JSON.parse(r.body) as { data: { seq: number } }
          if (body.data.seq === 3) return res.writeHead(503, { 'retry-after': '0' }).end('maintenance')
          res.writeHead(200).end()
        },
        { policy: { kind: 'schedule', delaysMs: [20, 20], jitter: 0, maxRetryAfterMs: 1000 } },
      )
      for (let i = 0; i < 10; i++) queue.enqueue('dlq', rec(i, `K${i % 2}`))
      await waitFor(() => queue.safeOffset('dlq', TOPIC, 0) === '10', { timeoutMs: 10_000 })
      expect(dead).to.have.length(1)
      expect(dead[0]!.record.offset).to.equal('3')
      expect(dead[0]!.info).to.include({ reason: 'exhausted', attempts: 3 })
      const attempts = p.reports.filter((r) => r.eventId === 'evt_0_3')
      expect(attempts.map((a) => a.status)).to.deep.equal([503, 503, 503])
      expect(attempts.every((a) => a.responseExcerpt === 'maintenance')).to.equal(true)
      expect(delivered.get('dlq')).to.equal(9)
      // K1 (odd seqs) stayed in order around the dead letter
      const k1 = p.rx.received
        .map((r) => verifiedData(p, r))
        .filter((d) => d.key === 'K1')
        .map((d) => d.seq)
      expect(k1.filter((s) => s !== 3)).to.deep.equal([1, 5, 7, 9])
    },
  )

  it('isolates partners: one answering 500 and one hanging until timeout while the others keep receiving', async () => {
    const policy: SchedulePolicy = {
      kind: 'schedule',
      delaysMs: [100, 200, 400, 800, 1600, 3200],
      jitter: 0.1,
      maxRetryAfterMs: 1000,
    }
    const failing = await partner('failing', (_r, res) => res.writeHead(500).end(), { policy, parkAfterFailures: 5 })
    const hanging = await partner('hanging', () => {}, { policy, timeoutMs: 1000, parkAfterFailures: 5 })
    const healthy = [
      await partner('healthy-1', undefined, { policy }),
      await partner('healthy-2', undefined, { policy }),
    ]
    const N = 300
    const enqueuedAt = new Map<string, number>()
    // paced input: 10 records every 10 ms (about 1,000/s), fanned out to all four partners
    for (let i = 0; i < N; i += 10) {
      for (let j = i; j < i + 10; j++) {
        const r = rec(j, `K${j % 25}`)
        enqueuedAt.set(r.eventId, Date.now())
        for (const p of partners) queue.enqueue(p.id, r)
      }
      await new Promise((res) => setTimeout(res, 10))
    }
    const lastEnqueue = Date.now()
    await waitFor(() => healthy.every((p) => delivered.get(p.id) === N), { timeoutMs: 10_000, intervalMs: 20 })
    const drainMs = Date.now() - lastEnqueue
    for (const p of healthy) {
      const latencies = p.rx.received.map((r) => {
        verifiedData(p, r)
        return r.at - enqueuedAt.get(String(r.headers['webhook-id']))!
      })
      latencies.sort((a, b) => a - b)
      const p99 = latencies[Math.floor(latencies.length * 0.99)]!
      expect(p.rx.received).to.have.length(N)
      expect(p99, `${p.id} p99 latency ms`).to.be.below(1000)
      expect(queue.safeOffset(p.id, TOPIC, 0)).to.equal(String(N))
    }
    expect(drainMs, 'healthy partners drained within').to.be.below(2000)
    // the bad partners really were failing meanwhile (the hanging one's first timeouts fell within
    // the input window), and hold their position
    await waitFor(() => hanging.reports.length > 0, { timeoutMs: 4000, intervalMs: 20 })
    expect(hanging.reports[0]!.startedAt).to.be.below(lastEnqueue)
    expect(failing.reports.some((r) => r.status === 500)).to.equal(true)
    expect(hanging.reports.some((r) => r.code === 'RETRIABLE' && /timed out/.test(r.message ?? ''))).to.equal(true)
    expect(queue.stats('failing').status).to.equal('parked')
    expect(Number(queue.safeOffset('failing', TOPIC, 0))).to.equal(0)
    expect(Number(queue.safeOffset('hanging', TOPIC, 0))).to.equal(0)
    // parking kept the failing partner from being hammered with all 300 events
    expect(new Set(failing.reports.map((r) => r.eventId)).size).to.be.below(20)
  })
})
