/**
 * `npm run bench -- partners`: bench.partnersSubscriptions (default 1,000) active webhook subscriptions
 * on ONE sink worker at bench.partnersRate (default 1,000) deliveries/s aggregate, for the bounded
 * duration after a warm-up: p99 latency from produce (the event's intended send time, open loop) to
 * the webhook received, and the peak RSS of this process (the worker; the receivers run in a child
 * process, a few servers shared by all subscriptions through different paths). Goal: p99 <= 100 ms,
 * RSS <= 512 MB (absolute bounds). Raw kafkajs produce -> consume p99 at the same aggregate rate is
 * printed as a reference.
 *
 * The worker does not filter rows per subscription yet, so every event goes to every subscription:
 * events are produced at rate / subscriptions per second and each one fans out to all of them (the
 * p99 is then the time to reach the last partner of an event). Successful deliveries are not written
 * to the delivery log (worker.logDelivered false), as in a deployment of this size.
 */
import { loadConfig } from '../config/index.ts'
import { ensureTopics } from '../schemas/index.ts'
import { startSinkHarness } from '../test/helpers/sink-runtime.ts'
import { testKafka, uniqueName } from '../test/helpers/env.ts'
import { deleteTopics } from '../test/helpers/registry.ts'
import { withPeakRss } from './sources-common.ts'
import { openLoop, percentile, rawProduceConsume, startHooks, waitUntil } from './helpers/latency.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const RECEIVER_SERVERS = 8
const WARMUP_MS = 2000
const CREATE_CONCURRENCY = 8

export const benchmark: Benchmark = {
  name: 'partners',
  description: 'N active webhook subscriptions on one sink worker at an aggregate delivery rate: p99 produce -> received, peak RSS',
  async run(ctx): Promise<Figure[]> {
    const config = loadConfig()
    const subs = Math.max(1, config.bench.partnersSubscriptions)
    const rate = config.bench.partnersRate
    const eventRate = rate / subs
    const intended = new Map<number, number>()
    const arrivals = new Map<number, number>()
    const latencies: number[] = []
    let measureFrom = Number.MAX_SAFE_INTEGER
    let deliveries = 0
    const hooks = await startHooks(RECEIVER_SERVERS, (seq, at) => {
      const t = intended.get(seq)
      if (t === undefined) return
      deliveries++
      arrivals.set(seq, (arrivals.get(seq) ?? 0) + 1)
      if (seq >= measureFrom) latencies.push(at - t)
    })
    const h = await startSinkHarness({ partitions: 3 })
    const rawTopic = { ...h.topic, name: uniqueName('partners-raw') }
    try {
      ctx.progress(`${subs} subscriptions over ${RECEIVER_SERVERS} receiver servers; ${rate} deliveries/s = ${eventRate.toFixed(2)} events/s x ${subs}`)
      const t0 = Date.now()
      let next = 0
      const creating = ctx.meter('creating subscriptions', { total: subs, unit: 'subscriptions' })
      await Promise.all(
        Array.from({ length: CREATE_CONCURRENCY }, async () => {
          while (next < subs) {
            const i = next++
            await h.subscribe({ url: `${hooks.bases[i % RECEIVER_SERVERS]}/hooks/${i}`, name: `partner-${i}`, deliveryPolicy: { retrySchedule: [1, 5], timeoutMs: 10_000 } })
            creating.update(next)
          }
        }),
      )
      creating.finish(`${subs} subscriptions created in ${Date.now() - t0} ms`)

      const { result: run, peakMb } = await withPeakRss(async () => {
        const t1 = Date.now()
        // long leases and calm control passes: 1,000 subscriptions are claimed one by one at start
        const worker = await h.worker({ logDelivered: false, leaseTtlMs: 60_000, heartbeatMs: 5000, pollMs: 1000, cursorFlushMs: 1000, statusIntervalMs: 30_000 })
        const claiming = ctx.meter('claiming on one worker', { total: subs, unit: 'subscriptions' })
        const running = await waitUntil(() => (claiming.update(worker.held().length), worker.held().length >= subs), 180_000)
        claiming.finish()
        ctx.progress(`${worker.held().length} subscriptions running on one worker after ${Date.now() - t1} ms${running ? '' : ' (not all: measuring anyway)'}`)
        const rssBefore = process.memoryUsage().rss / 1024 / 1024
        const warmEvents = Math.ceil((eventRate * WARMUP_MS) / 1000)
        measureFrom = warmEvents
        const held = worker.held().length
        const levels: Promise<unknown>[] = []
        const sent = await openLoop(eventRate, WARMUP_MS + Math.max(ctx.durationMs, 1000 / eventRate), (seq, at) => {
          intended.set(seq, at)
          levels.push(h.produce([{ sku: `SKU-${seq % 100}`, seq }]).catch(() => undefined))
        })
        await Promise.all(levels)
        const expected = (sent - warmEvents) * held
        await waitUntil(() => latencies.length >= expected, 30_000)
        await worker.stop()
        return { sent, expected, held, rssBefore }
      })
      const complete = [...arrivals.values()].filter((n) => n >= run.held).length
      ctx.progress(`${run.sent} events (${run.sent - measureFrom} measured), ${latencies.length}/${run.expected} measured deliveries arrived (${deliveries} in all); ${complete} events reached every subscription`)
      ctx.progress(`platform: p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms, max ${percentile(latencies, 1).toFixed(1)} ms; RSS ${run.rssBefore.toFixed(0)} MB with all running, peak ${peakMb.toFixed(0)} MB`)

      // Reference: raw kafkajs produce -> consume at the aggregate rate.
      const admin = testKafka().admin()
      await admin.connect()
      await ensureTopics(admin, [rawTopic])
      await admin.disconnect()
      const raw = await rawProduceConsume(testKafka('bench-partners-raw'), rawTopic.name, rate, WARMUP_MS, ctx.durationMs, Buffer.alloc(200, 1), uniqueName('partners-raw'))
      const rawP99 = percentile(raw.latencies, 0.99)
      ctx.progress(`raw kafkajs at ${rate} messages/s: ${raw.latencies.length}/${raw.sent} arrived, p50 ${percentile(raw.latencies, 0.5).toFixed(1)} ms, p99 ${rawP99.toFixed(1)} ms (reference)`)
      return [
        figure('partners.p99', percentile(latencies, 0.99), 'ms', null, 100, true),
        figure('partners.peak-rss', peakMb, 'MB', null, 512, true),
        figure('partners.raw-kafka.p99', rawP99, 'ms', null, null, true),
      ]
    } finally {
      hooks.close()
      await h.close()
      await deleteTopics(rawTopic.name)
    }
  },
}
