/**
 * What the JSONata mapping sandbox costs: REST-sink body mappings evaluated in the sandbox processes
 * (consumers/rest/mapping-sandbox.ts: one IPC round trip per request, concurrent calls of a
 * subscription batched) beside the same evaluator run in this process (what the REST sink did before:
 * the mapping on the worker's event loop), same run, the arms alternating.
 *
 * Figures: events/s with 4 subscriptions x 32 calls in flight (the delivery queue's default
 * concurrency), the worker thread's CPU per event (the sandbox moves the evaluation to other
 * processes: what is left on the event loop is the envelope's JSON, IPC and bookkeeping), and the
 * latency of one event alone (a round trip).
 */
import type { SinkRecord } from '../connectors/sink/types.ts'
import { inProcessEvaluator, MappingSandbox, mappingInput, type MappingEvaluator } from '../consumers/rest/index.ts'
import { inventoryEvent } from './serde.bench.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const MAPPING =
  '{ "externalId": value.sku, "location": value.locationId, "available": ' +
  'value.available, "incoming": value.incoming.{ "qty": quantity, "ref": ' +
  'reference }, "updatedAt": timestamp, "eventId": eventId }'
const SUBSCRIPTIONS = 4
const IN_FLIGHT = 32

const record = (n: number): SinkRecord => ({
  topic: 'inventory.levels',
  partition: n % 3,
  offset: String(n),
  key: `sku-${n % 1000}`,
  value: { ...inventoryEvent, sku: `sku-${n % 1000}` },
  headers: {},
  eventId: `evt-${n}`,
  eventType: 'inventory.level.changed',
  timestamp: 1_732_000_000_123 + n,
})

interface Arm {
  name: string
  map(owner: string, r: SinkRecord): Promise<string>
}

interface Run {
  events: number
  ms: number
  cpuUs: number
}

/** `SUBSCRIPTIONS` x `IN_FLIGHT` callers mapping events one after the other for `ms`. */
async function throughput(arm: Arm, ms: number): Promise<Run> {
  let n = 0
  const end = performance.now() + ms
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const caller = async (owner: string) => {
    while (performance.now() < end) await arm.map(owner, record(n++))
  }
  await Promise.all([...Array(SUBSCRIPTIONS * IN_FLIGHT).keys()].map((i) => caller(`sub-${i % SUBSCRIPTIONS}`)))
  const cpu = process.cpuUsage(cpu0)
  return { events: n, ms: performance.now() - t0, cpuUs: cpu.user + cpu.system }
}

/** Median latency of one event alone, in µs. */
async function single(arm: Arm, count: number): Promise<number> {
  const xs: number[] = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await arm.map('sub-0', record(i))
    xs.push((performance.now() - t) * 1000)
  }
  return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
}

export const benchmark: Benchmark = {
  description:
    'JSONata body mappings in the sandbox processes vs the same evaluator on the event loop, inventory event, events/s',
  async run(ctx): Promise<Figure[]> {
    const sandbox = new MappingSandbox()
    const evaluate: MappingEvaluator = inProcessEvaluator()
    const arms: Arm[] = [
      { name: 'sandbox', map: (owner, r) => sandbox.map(owner, MAPPING, mappingInput(r), r.eventId) },
      {
        name: 'in-process',
        map: async (_owner, r) => {
          const [result] = await evaluate(MAPPING, [mappingInput(r)])
          if (!result || !('body' in result)) throw new Error(`mapping failed: ${JSON.stringify(result)}`)
          return result.body
        },
      },
    ]
    try {
      // the same body both ways
      const [a, b] = await Promise.all(arms.map((arm) => arm.map('sub-0', record(1))))
      if (a !== b) throw new Error(`the arms map differently: ${a} vs ${b}`)
      ctx.progress(`body: ${a!.length} bytes; ${sandbox.settings.processes} sandbox processes`)
      for (const arm of arms) await throughput(arm, 300) // warm-up
      const rounds = 3
      const per = Math.max(200, Math.floor(ctx.durationMs / rounds / arms.length))
      const best = new Map<string, { rate: number; cpuPerEventUs: number }>()
      for (let round = 0; round < rounds; round++) {
        for (const arm of arms) {
          const r = await throughput(arm, per)
          const rate = r.events / (r.ms / 1000)
          const prev = best.get(arm.name)
          ctx.progress(
            `${arm.name}: ${Math.round(rate)} events/s, ` +
              `${(r.cpuUs / r.events).toFixed(1)} µs CPU per event on this thread`,
          )
          if (!prev || rate > prev.rate) best.set(arm.name, { rate, cpuPerEventUs: r.cpuUs / r.events })
        }
      }
      const latency = new Map<string, number>()
      for (const arm of arms) latency.set(arm.name, await single(arm, 500))
      const s = best.get('sandbox')!
      const p = best.get('in-process')!
      return [
        figure('mapping.sandbox', s.rate, 'events/s', p.rate, null),
        figure('mapping.sandbox.loop-cpu', s.cpuPerEventUs, 'µs/event', p.cpuPerEventUs, null, true),
        figure('mapping.sandbox.single', latency.get('sandbox')!, 'µs', latency.get('in-process')!, null, true),
      ]
    } finally {
      await sandbox.close()
    }
  },
}
