/**
 * `npm run bench -- latency`: p50/p99 from POST /v1/events/inventory.level.changed accepted (the
 * ingest answering 202, after acks=all) to the webhook received by a real receiver (a child process
 * on 127.0.0.1), one event per request sent by a publisher in a child process (bench.latencyBatchMs: the events
 * that came due in that many ms in one request), open loop at bench.latencyRate events/s (default 1,000), through
 * Kafka, the sink worker (in its own process, as `start --role worker`) and the Standard Webhooks sink; beside raw
 * kafkajs produce -> consume at the same rate in the same run. Goal: p99 <= 2x the raw p99, and (issue #24) <= 15 ms
 * at 1,000 events/s, <= 50 ms at 5,000 events/s.
 *
 * The baseline counts from the message's intended send time (producer.send, so its figure holds the
 * produce round trip). The platform's goal figures count from the 202 being written (the issue's
 * "accepted"; the publisher tags each request with its sequence); `latency.from-send.p99` counts from
 * the event's intended send time, like the baseline, so it also holds the POST itself (request,
 * validation, acks=all): the stricter figure, reported beside. Everything runs on a topic, a registry
 * and a database of its own.
 */
import { writeFileSync } from 'node:fs'
import { loadConfig } from '../config/index.ts'
import { ensureTopics } from '../schemas/index.ts'
import { startSinkHarness } from '../test/helpers/sink-runtime.ts'
import { testKafka, uniqueName } from '../test/helpers/env.ts'
import { deleteTopics } from '../test/helpers/registry.ts'
import { configuredWorker, publish, serveIngest, type ServedIngest } from './helpers/ingest-arm.ts'
import { cpuMs } from './helpers/proc.ts'
import { levelEvent, percentile, rawProduceConsume, startHooks, waitUntil, type LatencyRun } from './helpers/latency.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

/**
 * At 1,000 events/s the platform's three fresh processes (ingest, worker, receiver) need about 5 s to
 * reach their steady state (JIT compilation, connection pools, the backlog of the first seconds
 * drained): per-event times of a run showed p50 0.4 to 1.2 s in the first 5 s, then 6 to 20 ms. The
 * goal is about the steady state, so both sides warm up this long at the measured rate; the warm-up's
 * own p99 (the cold start) is printed and reported beside it, not hidden.
 */
const WARMUP_MS = 8000
/**
 * A broker fresh from `npm run stack:up` is cold too: its JVM compiles the produce and fetch paths over
 * its first tens of seconds of traffic. On a fresh stack the first run measured 39.9 and 53.3 ms
 * (202 -> received p99), with its 1-s windows falling from 349 ms to 8 ms over 27 s, and the runs after it
 * 12.3 and 13.3 ms (2026-12-06). A production broker has been up for days, and the baseline (which runs
 * second) always met a warm one, so before either arm the broker gets raw kafkajs traffic at the
 * measured rate on a topic of its own for config bench.latencyBrokerWarmupMs (30 s; 0 skips it); its
 * p99 in its first and last sixth is printed, so a cold broker shows.
 */

function summary(name: string, r: LatencyRun): string {
  return (
    `${name}: ${r.latencies.length}/${r.sent} measured events arrived, p50 ` +
    `${percentile(r.latencies, 0.5).toFixed(1)} ms, p99 ` +
    `${percentile(r.latencies, 0.99).toFixed(1)} ms, max ` +
    `${percentile(r.latencies, 1).toFixed(1)} ms`
  )
}

export const benchmark: Benchmark = {
  // 20,000 events at the default rate: a p99 of 5,000 events rests on its 50 slowest, which one ~50 ms
  // stall of a shared 2-core machine decides alone (5-s runs gave 9.7 to 28.8 ms; 20-s runs 9.5 to 16.0)
  defaultDurationMs: 20_000,
  description:
    'POST /v1/events accepted -> webhook received (open loop, one event per ' +
    'request) vs raw kafkajs produce -> consume at the same rate, p50/p99 ms',
  async run(ctx): Promise<Figure[]> {
    const config = loadConfig()
    const rate = config.bench.latencyRate
    const batchMs = config.bench.latencyBatchMs
    // issue #24: p99 <= 15 ms at 1,000 events/s, <= 50 ms at 5,000 events/s
    const goalMs = rate <= 1000 ? 15 : rate <= 5000 ? 50 : null
    const brokerWarmupMs = config.bench.latencyBrokerWarmupMs
    // Times by event sequence: intended send and 202 (from the publisher child), first arrival (from the receivers
    // child).
    const intended = new Map<number, number>()
    const accepted = new Map<number, number>()
    const arrivedAt = new Map<number, number>()
    const warm = Math.floor((rate * WARMUP_MS) / 1000)
    const hooks = await startHooks(1, (seq, at) => {
      if (!arrivedAt.has(seq)) arrivedAt.set(seq, at) // a later one is a duplicate (at least once)
    })
    const h = await startSinkHarness({ partitions: 3 })
    const rawTopic = { ...h.topic, name: uniqueName('latency-raw') }
    const brokerWarmupTopic = { ...h.topic, name: uniqueName('latency-broker-warmup') }
    let served: ServedIngest | undefined
    try {
      ctx.progress(
        `${rate} events/s for ${ctx.durationMs} ms after a ${WARMUP_MS} ms warm-up, ` +
          (batchMs > 0 ? `the events due every ${batchMs} ms in one request` : 'one event per request') +
          `; topic ${h.topic.name}`,
      )
      const admin = testKafka().admin()
      await admin.connect()
      await ensureTopics(admin, [rawTopic, ...(brokerWarmupMs > 0 ? [brokerWarmupTopic] : [])])
      await admin.disconnect()
      const value = Buffer.from(JSON.stringify(levelEvent(0)))
      if (brokerWarmupMs > 0) {
        ctx.progress(`broker warm-up: raw kafkajs at ${rate} events/s for ${brokerWarmupMs} ms`)
        const bw = await rawProduceConsume(
          testKafka('bench-latency-broker-warmup'),
          brokerWarmupTopic.name,
          rate,
          0,
          brokerWarmupMs,
          value,
          uniqueName('latency-broker-warmup'),
        )
        const sixth = Math.max(1, Math.floor(bw.latencies.length / 6))
        ctx.progress(
          `broker warm-up: produce -> consume p99 ` +
            `${percentile(bw.latencies.slice(0, sixth), 0.99).toFixed(1)} ms in its ` +
            `first sixth, ${percentile(bw.latencies.slice(-sixth), 0.99).toFixed(1)} ms ` +
            `in its last`,
        )
      }
      await h.subscribe({ url: `${hooks.bases[0]}/hooks`, name: 'latency' })
      // The sink worker in its own process, as `distributary start --role worker` runs it beside the api
      // process (here: this one, with the ingest), with the worker settings of the configuration.
      const worker = await h.childWorker('bench-latency-worker', configuredWorker(config))
      ctx.progress(`sink worker: process ${worker.pid} (successful deliveries logged: ${config.worker.logDelivered})`)

      // With the configured per-key ingestion limit, as an api process has it (one key: the publisher).
      const limit = { perSecond: config.ingest.rateLimit.eventsPerSecond, burst: config.ingest.rateLimit.burst }
      served = await serveIngest(h, 'bench-latency-ingest', limit)
      const acceptedAt = served.acceptedAt

      // Platform: the publisher is a child process, as publishers are other machines.
      let failed = 0
      let answered = 0
      ctx.progress('platform: warm-up and measuring')
      const run = {
        url: served.url,
        rate,
        ms: WARMUP_MS + ctx.durationMs,
        manufacturerId: h.publisherId,
        firstSeq: 0,
        batchMs,
      }
      const workerCpu0 = cpuMs(worker.pid!)
      const apiCpu0 = process.cpuUsage()
      const sent = await publish(run, (r) => {
        if (r.sent) for (let i = 0; i < r.sent.length; i += 2) intended.set(r.sent[i]!, r.sent[i + 1]!)
        if (r.answered) {
          for (let i = 0; i < r.answered.length; i += 3) {
            answered++
            if (r.answered[i + 2] === 202) accepted.set(r.answered[i]!, r.answered[i + 1]!)
            else failed++
          }
        }
      })
      await waitUntil(() => answered >= sent && arrivedAt.size + failed >= sent, 20_000)
      // CPU per event sent (warm-up included) of the worker process and of this one (the ingest, with the bench's
      // bookkeeping): where a rate runs out of machine, not a goal
      const workerCpuUs = ((cpuMs(worker.pid!) - workerCpu0) * 1000) / Math.max(1, sent)
      const apiCpu = process.cpuUsage(apiCpu0)
      const apiCpuUs = (apiCpu.user + apiCpu.system) / Math.max(1, sent)
      ctx.progress(`CPU per event: sink worker ${workerCpuUs.toFixed(0)} µs, ingest process ${apiCpuUs.toFixed(0)} µs`)
      // fromAccepted: the measure, from the ingest answering 202 to the webhook received (0 when
      // the webhook was there first); fromSend: from the event's intended send time, so it also holds
      // the POST itself (the publisher's request, validation, acks=all).
      const fromAccepted: number[] = []
      const fromSend: number[] = []
      const coldStart: number[] = []
      const coldStartFromSend: number[] = []
      let beforeAccept = 0
      for (const [seq, t] of intended) {
        const at = arrivedAt.get(seq)
        if (at === undefined) continue
        const a = acceptedAt.get(seq)
        if (seq < warm) {
          if (a !== undefined) coldStart.push(Math.max(0, at - a))
          coldStartFromSend.push(at - t)
          continue
        }
        fromSend.push(at - t)
        if (a === undefined) continue
        if (a > at) beforeAccept++
        fromAccepted.push(Math.max(0, at - a))
      }
      const platform: LatencyRun = {
        latencies: fromAccepted,
        sent: sent - warm,
        missing: sent - warm - fromAccepted.length,
      }
      const dump = config.bench.latencyDump
      if (dump) {
        // one line per event: seq, intended send, 202 received, webhook received (ms since the epoch), to find where
        // the tail comes from
        const rows = [...intended].map(([seq, t]) =>
          [seq, t, acceptedAt.get(seq) ?? null, accepted.get(seq) ?? null, arrivedAt.get(seq) ?? null].join(','),
        )
        writeFileSync(dump, ['seq,intended,accepted,answer-received,arrived', ...rows].join('\n') + '\n')
        ctx.progress(`per-event times written to ${dump}`)
      }
      ctx.progress(
        summary('platform, 202 -> received', platform) +
          (failed > 0 ? `, ${failed} requests not accepted` : '') +
          ` (${beforeAccept} webhooks arrived before the 202 was written)`,
      )
      ctx.progress(
        `platform, from the POST being sent: p50 ` +
          `${percentile(fromSend, 0.5).toFixed(1)} ms, p99 ` +
          `${percentile(fromSend, 0.99).toFixed(1)} ms, max ` +
          `${percentile(fromSend, 1).toFixed(1)} ms`,
      )
      ctx.progress(
        `platform cold start (the ${WARMUP_MS} ms warm-up, fresh processes): 202 -> ` +
          `received p99 ${percentile(coldStart, 0.99).toFixed(1)} ms, from the POST ` +
          `being sent p99 ${percentile(coldStartFromSend, 0.99).toFixed(1)} ms`,
      )
      ctx.progress('platform: stopping')
      await served.close()
      served = undefined
      await new Promise<void>((resolve) => {
        worker.once('exit', () => resolve())
        worker.kill('SIGTERM')
      })
      ctx.progress('platform: stopped')

      // Baseline: raw kafkajs on a topic of the same shape, the same value bytes.
      ctx.progress('raw kafkajs: warm-up and measuring')
      const raw = await rawProduceConsume(
        testKafka('bench-latency-raw'),
        rawTopic.name,
        rate,
        WARMUP_MS,
        ctx.durationMs,
        value,
        uniqueName('latency-raw'),
        batchMs,
      )
      ctx.progress(summary('raw kafkajs', raw))

      const p99 = percentile(platform.latencies, 0.99)
      return [
        figure('latency.p50', percentile(platform.latencies, 0.5), 'ms', percentile(raw.latencies, 0.5), null, true),
        figure('latency.p99', p99, 'ms', percentile(raw.latencies, 0.99), 2, true),
        figure('latency.p99.abs', p99, 'ms', null, goalMs, true),
        figure('latency.worker-cpu-per-event', workerCpuUs, 'µs', null, null, true),
        figure('latency.from-send.p99', percentile(fromSend, 0.99), 'ms', percentile(raw.latencies, 0.99), null, true),
        figure(
          'latency.cold-start.p99',
          percentile(coldStart, 0.99),
          'ms',
          percentile(raw.warmup ?? [], 0.99),
          null,
          true,
        ),
      ]
    } finally {
      await served?.close()
      hooks.close()
      await h.close()
      await deleteTopics(rawTopic.name, ...(brokerWarmupMs > 0 ? [brokerWarmupTopic.name] : []))
    }
  },
}
