/**
 * `npm run bench -- fanout`: deliveries/s to 100 webhook subscriptions (receivers in a child
 * process on 127.0.0.1) through the delivery queue and the Standard Webhooks sink (signing, URL
 * guard, classification, excerpts, bookkeeping), beside raw undici.request posting the same bodies
 * to the same receivers at the same concurrency, in the same run. Goal: >= 0.7 x raw.
 *
 * Not yet through Kafka: the records are fed to the queue in memory (the Kafka reader is the next step).
 */
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { createLogger } from '../common/logger.ts'
import { createUrlGuard } from '../common/url-guard.ts'
import { DeliveryQueue } from '../connectors/sink/delivery-queue.ts'
import type { SinkRecord } from '../connectors/sink/types.ts'
import { WebhookClient, WebhookSink, generateSecret, webhookBody } from '../consumers/webhook/index.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const SUBSCRIPTIONS = 100
const CONCURRENCY = 4 // per subscription (and per endpoint for the baseline)
const KEYS = 1000
const WARMUP_MS = 1000
/** Events kept buffered per subscription (on average) so that no subscription starves. */
const BUFFER = 512
const here = path.dirname(fileURLToPath(import.meta.url))

/** CPU time of this process (the sender) per delivery in the last measured phase, in µs. */
let lastCpuUsPerDelivery = 0
function cpuPer(since: NodeJS.CpuUsage, deliveries: number): number {
  const c = process.cpuUsage(since)
  return (c.user + c.system) / Math.max(1, deliveries)
}

/** After the warm-up, how fast `delivered()` grows per second over `durationMs` (CPU cost: lastCpuUsPerDelivery). */
async function measure(delivered: () => number, durationMs: number): Promise<number> {
  await new Promise((r) => setTimeout(r, WARMUP_MS))
  const start = delivered()
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  await new Promise((r) => setTimeout(r, durationMs))
  const n = delivered() - start
  const rate = (n * 1000) / (performance.now() - t0)
  lastCpuUsPerDelivery = cpuPer(c0, n)
  return rate
}

async function startReceivers(n: number): Promise<{ child: ChildProcess; urls: string[] }> {
  const child = fork(path.join(here, 'helpers', 'receivers-child.ts'), [String(n)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { ports: number[] }).ports))
    child.once('exit', (code) => reject(new Error(`receivers exited with ${code}`)))
  })
  return { child, urls: ports.map((p) => `http://127.0.0.1:${p}/hooks`) }
}

function record(seq: number): SinkRecord {
  return {
    topic: 'inventory.levels',
    partition: 0,
    offset: String(seq),
    key: `SKU-${seq % KEYS}`,
    value: {
      sku: `SKU-${seq % KEYS}`,
      warehouse: 'DC-01',
      onHand: seq % 500,
      reserved: 3,
      updatedAt: '2025-03-01T12:00:00Z',
    },
    headers: {},
    eventId: `evt_${seq}`,
    eventType: 'inventory.level.changed',
    timestamp: 1_740_830_400_000 + seq,
  }
}

/** Platform: the delivery queue feeding one webhook sink per subscription. */
async function platform(urls: string[], durationMs: number): Promise<number> {
  const client = new WebhookClient({
    guard: createUrlGuard({ allowlist: '127.0.0.1' }),
    connectionsPerOrigin: CONCURRENCY,
  })
  let delivered = 0
  let seq = 0
  const ids: string[] = []
  // keep every subscription's buffer topped up (a bounded in-memory stage, as the Kafka reader will be),
  // driven by the deliveries themselves rather than a polling loop
  const top = () => {
    while (seq - delivered / SUBSCRIPTIONS < BUFFER) {
      const r = record(seq++)
      for (const id of ids) queue.enqueue(id, r)
    }
  }
  const queue = new DeliveryQueue(
    {
      onDelivered: () => {
        if (++delivered % SUBSCRIPTIONS === 0) top()
      },
      onDeadLetter: () => {},
    },
    { logger: createLogger({ write: () => {} }) },
  )
  for (let i = 0; i < urls.length; i++) {
    const id = `sub-${i}`
    const sink = new WebhookSink(client)
    await sink.start(
      { url: urls[i]!, secrets: [{ secret: generateSecret() }], timeoutMs: 10_000 },
      { subscriptionId: id, logger: createLogger({ write: () => {} }) },
    )
    queue.addSubscription({ id, concurrency: CONCURRENCY, deliver: (r, { signal }) => sink.put([r], { signal }) })
    ids.push(id)
  }
  top()
  const rate = await measure(() => delivered, durationMs)
  queue.close()
  await client.close()
  return rate
}

/** Baseline: raw undici.request, the same body, the same receivers, the same concurrency. */
async function raw(urls: string[], durationMs: number): Promise<number> {
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000 })
  const body = webhookBody(record(1))
  let done = 0
  let stop = false
  const worker = async (url: string) => {
    while (!stop) {
      const res = await request(url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        dispatcher: agent,
      })
      await res.body.dump()
      done++
    }
  }
  const workers = urls.flatMap((u) => Array.from({ length: CONCURRENCY }, () => worker(u)))
  const rate = await measure(() => done, durationMs)
  stop = true
  await Promise.all(workers)
  await agent.close()
  return rate
}

export const benchmark: Benchmark = {
  description:
    `deliveries/s to ${SUBSCRIPTIONS} webhook subscriptions (delivery queue + ` +
    `Standard Webhooks sink) vs raw undici.request, ${CONCURRENCY} in flight per ` +
    `endpoint`,
  async run(ctx): Promise<Figure[]> {
    const { child, urls } = await startReceivers(SUBSCRIPTIONS)
    try {
      ctx.progress(`${urls.length} receivers up in a child process`)
      // two rounds each, interleaved, so that a change in machine load hits both sides alike
      const half = Math.max(500, Math.round(ctx.durationMs / 2))
      let baseline = 0
      let value = 0
      let rawCpu = 0
      let cpu = 0
      for (let round = 0; round < 2; round++) {
        baseline += (await raw(urls, half)) / 2
        rawCpu += lastCpuUsPerDelivery / 2
        value += (await platform(urls, half)) / 2
        cpu += lastCpuUsPerDelivery / 2
      }
      ctx.progress(`raw undici: ${Math.round(baseline)} deliveries/s, ${rawCpu.toFixed(1)} µs CPU per delivery`)
      ctx.progress(`platform: ${Math.round(value)} deliveries/s, ${cpu.toFixed(1)} µs CPU per delivery`)
      return [
        figure('fanout.deliveries', value, 'deliv/s', baseline, 0.7),
        figure('fanout.sender-cpu', cpu, 'µs/deliv', rawCpu, null, true),
      ]
    } finally {
      child.disconnect()
      child.kill()
    }
  },
}
