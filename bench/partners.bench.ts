/**
 * `npm run bench -- partners`: bench.partnersSubscriptions (default 1,000) active webhook subscriptions
 * on ONE sink worker at bench.partnersRate (default 1,000) events/s aggregate, for the bounded duration
 * after a warm-up: p99 latency from produce (the event's intended send time, open loop) to the webhook
 * received, and the peak RSS of this process (the worker; the receivers run in a child process, a few
 * servers shared by all subscriptions through different paths; the producer in another child).
 * Goal: p99 <= 100 ms, RSS <= 512 MB (absolute bounds). Raw kafkajs produce -> consume p99 at the same
 * rate is printed as a reference.
 *
 * As partners are served: every subscription wants its own rows (a row filter on the SKU: subscription
 * i takes SKU-i) and the events are spread over them (event n is SKU-(n mod subscriptions)), so each
 * partner receives rate / subscriptions events/s and the worker delivers `rate` events/s in all, each
 * to one partner; the dispatch index (connectors/sink/dispatch.ts) offers a record to its partner only.
 * Successful deliveries are not written to the delivery log (worker.logDelivered false), as in a
 * deployment of this size.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../config/index.ts'
import { ensureTopics } from '../schemas/index.ts'
import { startSinkHarness } from '../test/helpers/sink-runtime.ts'
import { testKafka, uniqueName } from '../test/helpers/env.ts'
import { deleteTopics } from '../test/helpers/registry.ts'
import { withPeakRss } from './sources-common.ts'
import { percentile, rawProduceConsume, startHooks, waitUntil } from './helpers/latency.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const RECEIVER_SERVERS = 8
const WARMUP_MS = 2000
const CREATE_CONCURRENCY = 8
const here = path.dirname(fileURLToPath(import.meta.url))

export const benchmark: Benchmark = {
  name: 'partners',
  description:
    'N active webhook subscriptions, each with its own rows, on one sink worker ' +
    'at an aggregate event rate: p99 produce -> received, peak RSS',
  async run(ctx): Promise<Figure[]> {
    const config = loadConfig()
    const subs = Math.max(1, config.bench.partnersSubscriptions)
    const rate = config.bench.partnersRate
    const intended = new Map<number, number>()
    // seq -> deliveries, and the first one's arrival time (the two children report independently: an
    // arrival may be reported before its send time)
    const arrivals = new Map<number, number>()
    const firstArrival = new Map<number, number>()
    let measureFrom = Number.MAX_SAFE_INTEGER
    let measuredArrived = 0
    let deliveries = 0
    const hooks = await startHooks(RECEIVER_SERVERS, (seq, at) => {
      deliveries++
      arrivals.set(seq, (arrivals.get(seq) ?? 0) + 1)
      if (firstArrival.has(seq)) return
      firstArrival.set(seq, at)
      if (seq >= measureFrom) measuredArrived++
    })
    const h = await startSinkHarness({ partitions: 3 })
    const rawTopic = { ...h.topic, name: uniqueName('partners-raw') }
    try {
      ctx.progress(
        `${subs} subscriptions over ${RECEIVER_SERVERS} receiver servers, ` +
          `subscription i filtered to SKU-i; ${rate} events/s spread over them ` +
          `(${(rate / subs).toFixed(2)} events/s each)`,
      )
      const t0 = Date.now()
      let next = 0
      const creating = ctx.meter('creating subscriptions', { total: subs, unit: 'subscriptions' })
      await Promise.all(
        Array.from({ length: CREATE_CONCURRENCY }, async () => {
          while (next < subs) {
            const i = next++
            await h.subscribe({
              url: `${hooks.bases[i % RECEIVER_SERVERS]}/hooks/${i}`,
              name: `partner-${i}`,
              filter: { sku: { in: [`SKU-${i}`] } },
              deliveryPolicy: { retrySchedule: [1, 5], timeoutMs: 10_000 },
            })
            creating.update(next)
          }
        }),
      )
      creating.finish(`${subs} subscriptions created in ${Date.now() - t0} ms`)

      const { result: run, peakMb } = await withPeakRss(async () => {
        const t1 = Date.now()
        // long leases and calm control passes: 1,000 subscriptions are claimed one by one at start
        const worker = await h.worker({
          logDelivered: false,
          leaseTtlMs: 60_000,
          heartbeatMs: 5000,
          pollMs: 1000,
          cursorFlushMs: 1000,
          statusIntervalMs: 30_000,
        })
        const claiming = ctx.meter('claiming on one worker', { total: subs, unit: 'subscriptions' })
        const running = await waitUntil(
          () => (claiming.update(worker.held().length), worker.held().length >= subs),
          180_000,
        )
        claiming.finish()
        ctx.progress(
          `${worker.held().length} subscriptions running on one worker after ` +
            `${Date.now() - t1} ms${running ? '' : ' (not all: measuring anyway)'}`,
        )
        const rssBefore = process.memoryUsage().rss / 1024 / 1024
        const warmEvents = Math.ceil((rate * WARMUP_MS) / 1000)
        measureFrom = warmEvents
        measuredArrived = [...firstArrival.keys()].filter((seq) => seq >= measureFrom).length
        const held = worker.held().length
        // The producer is a child process (bench/helpers/producer-child.ts), as manufacturers are other machines.
        const producer = fork(path.join(here, 'helpers', 'producer-child.ts'), [], {
          execArgv: ['--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        })
        const produced = await new Promise<{ done: number; failed: number }>((resolve, reject) => {
          producer.on('message', (m) => {
            const msg = m as { sent?: number[]; done?: number; failed?: number }
            if (msg.sent) for (let i = 0; i < msg.sent.length; i += 2) intended.set(msg.sent[i]!, msg.sent[i + 1]!)
            if (msg.done !== undefined) resolve({ done: msg.done, failed: msg.failed ?? 0 })
          })
          producer.once('exit', (code) => reject(new Error(`the producer exited with ${code}`)))
          producer.send({
            topic: h.topic,
            registryUrl: h.registryUrl,
            publisherId: h.publisherId,
            rate,
            ms: WARMUP_MS + ctx.durationMs,
            keys: subs,
            firstSeq: 0,
          })
        })
        producer.disconnect()
        const sent = produced.done
        if (produced.failed > 0) ctx.progress(`${produced.failed} produce requests failed`)
        // each event reaches the one subscription of its SKU (about held / subs of them when not all run here)
        const expected = held >= subs ? sent - warmEvents : Math.floor(((sent - warmEvents) * held) / subs)
        await waitUntil(() => measuredArrived >= expected, 30_000)
        await worker.stop()
        return { sent, expected, held, rssBefore }
      })
      const twice = [...arrivals.values()].filter((n) => n > 1).length
      const latencies: number[] = []
      for (const [seq, at] of firstArrival) {
        const t = intended.get(seq)
        if (seq >= measureFrom && t !== undefined) latencies.push(at - t)
      }
      ctx.progress(
        `${run.sent} events (${run.sent - measureFrom} measured), ` +
          `${latencies.length}/${run.expected} measured deliveries arrived ` +
          `(${deliveries} in all, ${twice} events delivered more than once)`,
      )
      ctx.progress(
        `platform: p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ` +
          `${percentile(latencies, 0.99).toFixed(1)} ms, max ` +
          `${percentile(latencies, 1).toFixed(1)} ms; RSS ${run.rssBefore.toFixed(0)} ` +
          `MB with all running, peak ${peakMb.toFixed(0)} MB`,
      )

      // Reference: raw kafkajs produce -> consume at the aggregate rate.
      const admin = testKafka().admin()
      await admin.connect()
      await ensureTopics(admin, [rawTopic])
      await admin.disconnect()
      const raw = await rawProduceConsume(
        testKafka('bench-partners-raw'),
        rawTopic.name,
        rate,
        WARMUP_MS,
        ctx.durationMs,
        Buffer.alloc(200, 1),
        uniqueName('partners-raw'),
      )
      const rawP99 = percentile(raw.latencies, 0.99)
      ctx.progress(
        `raw kafkajs at ${rate} messages/s: ${raw.latencies.length}/${raw.sent} ` +
          `arrived, p50 ${percentile(raw.latencies, 0.5).toFixed(1)} ms, p99 ` +
          `${rawP99.toFixed(1)} ms (reference)`,
      )
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
