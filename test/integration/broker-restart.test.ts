/**
 * The broker stops and starts again mid-stream (through the stack tooling, so only on the local
 * stack): the sink worker delivers every event to the subscription once the broker is back, in
 * order per key, duplicates only with the same webhook-id; event ingestion answers 503 with
 * Retry-After while the broker is down (nothing stored) and 202 again after it is back.
 */
import { expect } from 'chai'
import express from 'express'
import { loadConfig } from '../../config/index.ts'
import { createHttpIngest, type HttpIngest } from '../../producers/http-ingest/index.ts'
import { stackDown, stackSettings, stackUp } from '../../stack/index.ts'
import { testKafka, waitFor } from '../helpers/env.ts'
import { listenLocal } from '../helpers/http.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { expectPerKeyOrder, levels, verified } from '../helpers/sink-assertions.ts'
import { FAST, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'

const settings = stackSettings(loadConfig())
const kafkaOnly = { ...settings, services: ['kafka' as const] }

async function restartBroker(downMs: number, whileDown?: () => Promise<void>): Promise<void> {
  await stackDown(kafkaOnly)
  await whileDown?.()
  await new Promise((r) => setTimeout(r, downMs))
  await stackUp(kafkaOnly)
}

describe('broker restart mid-stream (local stack)', function () {
  this.timeout(240_000)
  let h: SinkHarness | undefined
  let rx: Receiver | undefined

  before(function () {
    if (!settings.services.includes('kafka')) this.skip() // an external broker is not ours to stop
  })
  afterEach(async () => {
    await stackUp(kafkaOnly) // whatever happened, leave the broker running for the next tests
    await h?.close()
    await rx?.close()
    h = undefined
    rx = undefined
  })

  it('sink worker: every event reaches the subscription after the broker restarts, in order per key', async () => {
    h = await startSinkHarness()
    rx = await startReceiver()
    const sub = await h.subscribe({ name: 'a', url: rx.url })
    await h.worker(FAST)
    const first = await h.produce(levels(60, 6))
    await waitFor(() => rx!.received.length >= 10, { what: 'deliveries under way' })
    await restartBroker(1000)
    const second = await waitFor(async () => h!.produce(levels(60, 6, 60)), {
      timeoutMs: 60_000,
      what: 'producing after the restart',
    })
    await waitFor(() => new Set(verified(sub.secret, rx!).map((g) => g.id)).size >= 120, {
      timeoutMs: 120_000,
      what: 'all 120 events delivered',
    })
    const got = verified(sub.secret, rx!)
    expect(new Set(got.map((g) => g.id))).to.deep.equal(new Set([...first, ...second]))
    const bodies = new Map<string, string>()
    for (const r of rx.received) {
      const id = String(r.headers['webhook-id'])
      const data = JSON.stringify(JSON.parse(r.body).data)
      if (bodies.has(id)) expect(bodies.get(id), `duplicate ${id} carries the same event`).to.equal(data)
      bodies.set(id, data)
    }
    expectPerKeyOrder(got)
  })

  it('ingestion: 503 with Retry-After while the broker is down, nothing stored; 202 once it is back', async () => {
    h = await startSinkHarness()
    const ingest: HttpIngest = createHttpIngest({
      kafka: testKafka(),
      serde: h.serde,
      logger: h.logger,
      topics: [h.topic],
      authenticate: async () => ({ organizationId: 'acme' }),
      producerRetry: { retries: 1, maxRetryTime: 2000, initialRetryTime: 200 },
    })
    await ingest.start()
    const app = express()
    app.use(ingest.router)
    const server = await listenLocal(app)
    const url = `${server.url}/v1/events/inventory.level.changed`
    const event = (seq: number) => ({
      manufacturerId: 'acme',
      sku: 'SKU-R',
      locationId: 'L1',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: seq,
      reserved: 0,
      available: seq,
      incoming: [],
      sequence: seq,
      occurredAt: '2026-11-24T10:00:00.000Z',
    })
    const post = async (seq: number) => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([event(seq)]),
      })
      return {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: (await res.json()) as { eventIds?: string[] },
      }
    }
    const count = async () => {
      const admin = testKafka().admin()
      await admin.connect()
      try {
        return (await admin.fetchTopicOffsets(h!.topic.name)).reduce((n, o) => n + Number(o.high), 0)
      } finally {
        await admin.disconnect()
      }
    }
    try {
      expect((await post(1)).status).to.equal(202)
      await restartBroker(500, async () => {
        const down = await post(2)
        expect(down.status).to.equal(503)
        expect(Number(down.retryAfter), 'Retry-After seconds').to.be.greaterThan(0)
      })
      const back = await waitFor(
        async () => {
          const r = await post(3)
          return r.status === 202 ? r : undefined
        },
        { timeoutMs: 60_000, what: '202 after the restart' },
      )
      expect(back.body.eventIds).to.have.length(1)
      expect(await count(), 'the 503 stored nothing').to.equal(2)
    } finally {
      await server.close()
      await ingest.stop()
    }
  })
})
