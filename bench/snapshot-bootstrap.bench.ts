/**
 * `npm run bench -- snapshot-bootstrap` (issue #24): a new partner's snapshot bootstrap from
 * bench.snapshotKeys (default 1,000,000) keys to a webhook, against the fan-out rate of the same run.
 *
 * The topic (3 partitions) holds every key twice (2,000,000 records at the default), produced before any
 * clock starts, the two versions of the keys interleaved all along the topic (version 1 of key t, then
 * version 2 of key t - LAG, ...): about every other record of a partition is a key's latest, as in a
 * catalog updated over time, so the delivery pass cannot seek over long runs of superseded records.
 * One sink worker in a child process of its own (as `--role worker`), successful deliveries not logged
 * (as in a deployment of this size, bench/partners.bench.ts), the receivers in child processes
 * (bench/helpers/hooks-child.ts, the same receiver for both arms, one process each), the default
 * per-subscription concurrency (delivery.concurrency) and worker settings for both arms:
 *
 * - baseline, fan-out: a new webhook subscription with startFrom 'earliest' (no snapshot), timed from
 *   its creation until its webhook received as many deliveries as there are keys (then it is paused):
 *   the worker reading the topic and delivering every record, the rate of one subscription's backlog;
 * - measured, snapshot: a new webhook subscription with startFrom 'snapshot', timed from its creation
 *   until its webhook received the latest version of every key (scan included). The run fails, with no
 *   figure, if a key arrives twice or in an older version, or one is missing.
 *
 * Goal: snapshot keys/s >= 0.8 x fan-out deliveries/s. Also the worker process's CPU time and peak RSS per arm
 * (Linux /proc): the arms run one after the other, and their wall clock swings with what else runs on the machine.
 */
import { loadConfig } from '../config/index.ts'
import { registerTopicSchemas } from '../schemas/index.ts'
import { ADMIN, levelMessage, startSinkHarness, type SinkHarness } from '../test/helpers/sink-runtime.ts'
import { waitFor } from '../test/helpers/env.ts'
import { startHooks } from './helpers/latency.ts'
import { cpuMs, rssMb } from './helpers/proc.ts'
import { figure, type BenchContext, type Benchmark, type Figure } from './types.ts'

/** Version 2 of key t - LAG follows version 1 of key t. */
const LAG = 1000
/** Records per produce request (under the broker's 1 MB batch limit per partition). */
const BATCH = 5000
const ARM_TIMEOUT_MS = 60 * 60_000

/** The record order: [sku index, seq] with seq = key for version 1, keys + key for version 2 (the latest). */
function* records(keys: number): Generator<[number, number]> {
  for (let t = 0; t < keys + LAG; t++) {
    if (t < keys) yield [t, t]
    if (t >= LAG) yield [t - LAG, keys + t - LAG]
  }
}

async function produceTopic(h: SinkHarness, keys: number, ctx: BenchContext): Promise<void> {
  const ids = (await registerTopicSchemas(h.serde, [h.topic]))[h.topic.name]!
  const meter = ctx.meter('producing the topic', { total: 2 * keys, unit: 'records' })
  // One request in flight, the next batch encoded meanwhile: concurrent requests may land out of order,
  // and a key's versions must reach its partition in the order written (the latest is the last offset).
  let inFlight: Promise<void> = Promise.resolve()
  let batch: ReturnType<typeof levelMessage>[] = []
  let sent = 0
  const send = async () => {
    const messages = batch
    batch = []
    await inFlight
    inFlight = h.producer.send({ topic: h.topic.name, messages }).then(() => meter.update((sent += messages.length)))
  }
  for (const [k, seq] of records(keys)) {
    batch.push(levelMessage(h.serde, ids, h.topic.name, h.publisherId, { sku: `SKU-${k}`, seq }))
    if (batch.length === BATCH) await send()
  }
  if (batch.length > 0) await send()
  await inFlight
  meter.finish()
}

export const benchmark: Benchmark = {
  description:
    "a new partner's snapshot bootstrap (every key's latest version to a webhook, scan included) " +
    'against the fan-out rate of a subscription from earliest, same worker, same run',
  async run(ctx): Promise<Figure[]> {
    const keys = loadConfig().bench.snapshotKeys
    // per arm: deliveries by data.sequence
    const fanout = { n: 0 }
    const snap = { n: 0, fresh: 0, stale: 0, twice: 0, seen: new Uint8Array(keys) }
    const fanoutHooks = await startHooks(1, () => fanout.n++)
    const snapHooks = await startHooks(1, (seq) => {
      snap.n++
      if (seq < keys || seq >= 2 * keys) return void snap.stale++
      const k = seq - keys
      if (snap.seen[k] === 0) snap.fresh++
      else snap.twice++
      snap.seen[k] = 1
    })
    const h = await startSinkHarness({ partitions: 3 })
    try {
      await produceTopic(h, keys, ctx)
      const worker = await h.childWorker('snapshot-bench-worker', { logDelivered: false })
      const pid = worker.pid!
      ctx.progress(`worker process ${pid} up, RSS ${rssMb(pid).toFixed(0)} MB`)
      const state = async (id: string) => (await h.cp.getConnector(ADMIN, id)).status
      const arm = async (
        label: string,
        startFrom: 'earliest' | 'snapshot',
        url: string,
        count: () => number,
        describe: () => string = () => '',
      ): Promise<{ ms: number; cpuMs: number; id: string; peakMb: number; scanMs: number | null }> => {
        let peak = rssMb(pid)
        const cpu0 = cpuMs(pid)
        const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 250)
        const t0 = performance.now()
        const sub = await h.subscribe({
          name: label,
          url,
          startFrom,
          deliveryPolicy: { retrySchedule: [1, 5], timeoutMs: 10_000 },
        })
        let scanMs: number | null = null
        const m = ctx.meter(label, { total: keys, unit: 'deliveries' })
        let nextStatus = 0
        await waitFor(
          async () => {
            m.update(count())
            if (startFrom === 'snapshot' && scanMs === null && performance.now() >= nextStatus) {
              nextStatus = performance.now() + 500
              const phase = (await state(sub.id))?.snapshot?.phase
              if (phase === 'delivering' || phase === 'live') scanMs = performance.now() - t0
            }
            return count() >= keys
          },
          {
            timeoutMs: ARM_TIMEOUT_MS,
            intervalMs: 50,
            what: async () =>
              `${label}: ${count()} of ${keys} after ${Math.round(performance.now() - t0)} ms (${describe()}), ` +
              `status ${JSON.stringify(await state(sub.id))}`,
          },
        )
        const ms = performance.now() - t0
        clearInterval(sampler)
        m.finish(`${count()} deliveries in ${(ms / 1000).toFixed(1)} s`)
        return { ms, cpuMs: cpuMs(pid) - cpu0, id: sub.id, peakMb: Math.max(peak, rssMb(pid)), scanMs }
      }

      const base = await arm('fan-out from earliest', 'earliest', `${fanoutHooks.bases[0]}/hooks`, () => fanout.n)
      await h.cp.setDesiredState(ADMIN, base.id, 'paused')
      await waitFor(async () => (await state(base.id))?.state === 'paused', { timeoutMs: 60_000 })
      const measured = await arm(
        'snapshot bootstrap',
        'snapshot',
        `${snapHooks.bases[0]}/hooks`,
        () => snap.fresh,
        () => {
          const missing: number[] = []
          for (let k = 0; k < keys && missing.length < 10; k++) if (snap.seen[k] === 0) missing.push(k)
          return (
            `${snap.n} deliveries, ${snap.twice} twice, ${snap.stale} older versions, ` +
            `missing e.g. ${missing.join(' ')}`
          )
        },
      )
      // anything more than one per key would arrive now: a moment to see it
      await new Promise((r) => setTimeout(r, 1000))
      const status = await state(measured.id)
      ctx.progress(
        `snapshot: ${snap.n} deliveries, ${snap.fresh} keys in their latest version, ${snap.twice} twice, ` +
          `${snap.stale} older versions; status ${status?.state}, snapshot ${JSON.stringify(status?.snapshot)}`,
      )
      if (snap.fresh !== keys || snap.twice > 0 || snap.stale > 0)
        throw new Error(
          `the snapshot did not deliver every key once in its latest version: ${snap.fresh} of ${keys} keys, ` +
            `${snap.twice} delivered again, ${snap.stale} older versions`,
        )
      const baseRate = (keys / base.ms) * 1000
      const rate = (keys / measured.ms) * 1000
      ctx.progress(
        `worker CPU: fan-out ${(base.cpuMs / 1000).toFixed(1)} s (${((base.cpuMs * 1000) / keys).toFixed(0)} µs per ` +
          `delivery), snapshot ${(measured.cpuMs / 1000).toFixed(1)} s ` +
          `(${((measured.cpuMs * 1000) / keys).toFixed(0)} µs per key)`,
      )
      ctx.progress(
        `fan-out ${Math.round(baseRate)} deliveries/s (worker peak RSS ${base.peakMb.toFixed(0)} MB); snapshot ` +
          `${Math.round(rate)} keys/s, scan done after ${((measured.scanMs ?? 0) / 1000).toFixed(1)} s of ` +
          `${(measured.ms / 1000).toFixed(1)} s (worker peak RSS ${measured.peakMb.toFixed(0)} MB)`,
      )
      // a clean stop (SIGTERM: the worker stops its runs and exits), not the harness's SIGKILL
      const exited = new Promise((r) => worker.once('exit', r))
      worker.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))])
      return [
        figure('snapshot-bootstrap.rate', rate, 'keys/s', baseRate, 0.8),
        // the same per second of the worker's CPU: steadier than the wall clock on a shared machine
        figure(
          'snapshot-bootstrap.cpu-rate',
          measured.cpuMs > 0 ? (keys / measured.cpuMs) * 1000 : 0,
          'keys/cpu-s',
          base.cpuMs > 0 ? (keys / base.cpuMs) * 1000 : null,
          null,
        ),
        figure('snapshot-bootstrap.time', measured.ms, 'ms', null, null, true),
        ...(measured.scanMs !== null
          ? [figure('snapshot-bootstrap.scan-time', measured.scanMs, 'ms', null, null, true)]
          : []),
        figure('snapshot-bootstrap.fanout-time', base.ms, 'ms', null, null, true),
        figure('snapshot-bootstrap.worker-peak-rss', measured.peakMb, 'MB', base.peakMb, null, true),
      ]
    } finally {
      fanoutHooks.close()
      snapHooks.close()
      await h.close()
    }
  },
}
