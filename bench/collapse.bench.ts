/**
 * `npm run bench -- collapse` (issue 24): bench.collapseEvents (default 1,000,000) stock-level events
 * over bench.collapseKeys (default 10,000) keys accumulate while two webhook subscriptions of one
 * partner are paused; then each is resumed in turn and timed until its webhook received what it is owed:
 *
 * - baseline: a subscription without collapse catches up on every event;
 * - measured: a subscription with deliveryPolicy.collapseBacklog catches up on the latest event of
 *   each key (from the shared reader's index of the state topic's keys, or with
 *   WORKER_COLLAPSE_INDEX_MAX_KEYS=0 by a scan from its cursor; then one delivery per key).
 *
 * Goal: the collapsed catch-up takes at most 1/20 of the full one (ratio ≤ 0.05) and delivers one event
 * per key. Real Kafka (the local stack), one sink worker in this process, a receiver on 127.0.0.1.
 */
import { loadConfig } from '../config/index.ts'
import { ADMIN, startSinkHarness } from '../test/helpers/sink-runtime.ts'
import { startReceiver } from '../test/helpers/receiver.ts'
import { levels } from '../test/helpers/sink-assertions.ts'
import { waitFor } from '../test/helpers/env.ts'
import { configuredWorker } from './helpers/ingest-arm.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const BATCH = 5000

export const benchmark: Benchmark = {
  description: 'a paused partner’s backlog collapsed to the latest of each key, against a full catch-up',
  async run(ctx): Promise<Figure[]> {
    const config = loadConfig()
    const events = Math.max(1, config.bench.collapseEvents)
    const keys = Math.max(1, Math.min(events, config.bench.collapseKeys))
    const h = await startSinkHarness({ partitions: 3 })
    const counted = { full: 0, collapsed: 0 }
    const full = await startReceiver((_r, res) => (counted.full++, res.writeHead(204).end()), { keep: false })
    const collapsed = await startReceiver((_r, res) => (counted.collapsed++, res.writeHead(204).end()), {
      keep: false,
    })
    try {
      const policy = { retrySchedule: [0.1, 0.5, 1], timeoutMs: 10_000 }
      const sFull = await h.subscribe({ name: 'full', url: full.url, deliveryPolicy: policy })
      const sCollapsed = await h.subscribe({
        name: 'collapsed',
        url: collapsed.url,
        deliveryPolicy: { ...policy, collapseBacklog: true },
      })
      // the configured worker settings (WORKER_COLLAPSE_INDEX_MAX_KEYS=0: a collapse always scans)
      const worker = await h.worker(configuredWorker(config))
      const state = async (id: string) => (await h.cp.getConnector(ADMIN, id)).status?.state
      await waitFor(async () => (await state(sFull.id)) === 'running' && (await state(sCollapsed.id)) === 'running', {
        timeoutMs: 60_000,
      })
      for (const s of [sFull, sCollapsed]) await h.cp.setDesiredState(ADMIN, s.id, 'paused')
      await waitFor(async () => (await state(sFull.id)) === 'paused' && (await state(sCollapsed.id)) === 'paused', {
        timeoutMs: 60_000,
      })

      const meter = ctx.meter('producing the backlog', { total: events, unit: 'events' })
      for (let from = 0; from < events; from += BATCH * 4) {
        const sends: Array<Promise<string[]>> = []
        for (let b = from; b < Math.min(events, from + BATCH * 4); b += BATCH)
          sends.push(h.produce(levels(Math.min(BATCH, events - b), keys, b)))
        await Promise.all(sends)
        meter.update(Math.min(events, from + BATCH * 4))
      }
      meter.finish()

      const catchUp = async (id: string, count: () => number, owed: number, label: string) => {
        const t0 = performance.now()
        await h.cp.setDesiredState(ADMIN, id, 'running')
        const m = ctx.meter(label, { total: owed, unit: 'deliveries' })
        await waitFor(
          () => {
            m.update(count())
            return count() >= owed
          },
          { timeoutMs: 30 * 60_000, intervalMs: 50, what: label },
        )
        m.finish()
        return performance.now() - t0
      }
      const collapsedMs = await catchUp(sCollapsed.id, () => counted.collapsed, keys, 'collapsed catch-up')
      ctx.progress(
        worker.collapsesWithoutScan > 0
          ? "the collapse took the latest of each key from the shared reader's index (no scan)"
          : 'the collapse scanned the backlog',
      )
      // anything more than one per key would arrive now: a moment to see it
      await new Promise((r) => setTimeout(r, 1000))
      const collapsedDelivered = counted.collapsed
      const fullMs = await catchUp(sFull.id, () => counted.full, events, 'full catch-up')
      return [
        figure('collapse.catch-up', collapsedMs, 'ms', fullMs, 0.05, true),
        figure('collapse.delivered', collapsedDelivered, 'events', null, keys, true),
        figure('collapse.full-catch-up.rate', (events / fullMs) * 1000, 'events/s', null, null),
      ]
    } finally {
      await full.close()
      await collapsed.close()
      await h.close()
    }
  },
}
