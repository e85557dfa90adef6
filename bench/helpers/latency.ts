/**
 * Shared parts of the latency and partners benchmarks: an open-loop sender (latency counted from each
 * event's intended send time, so a stalled sender cannot hide queueing), webhook receivers in a child
 * process that report arrival times, percentiles, and the raw kafkajs produce -> consume baseline.
 */
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Kafka } from 'kafkajs'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Milliseconds since the epoch, sub-millisecond, comparable across processes of this machine. */
export function now(): number {
  return performance.timeOrigin + performance.now()
}

/** The inventory event of the latency benchmarks; `data.sequence` identifies it at the receiver. */
export function levelEvent(seq: number, manufacturerId = 'acme') {
  return {
    manufacturerId,
    sku: `SKU-${seq % 100}`,
    locationId: 'WH1',
    locationType: 'WAREHOUSE',
    unitOfMeasure: 'EA',
    onHand: 100,
    reserved: 10,
    available: 90,
    incoming: [],
    sequence: seq,
    occurredAt: '2026-11-20T10:00:00.000Z',
  }
}

export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/**
 * Calls `send(seq, intendedAt)` at `rate` per second for `durationMs` (bursts catch up when the
 * event loop was late; `intendedAt` is the schedule, not the call time). Returns how many were sent.
 */
export async function openLoop(
  rate: number,
  durationMs: number,
  send: (seq: number, intendedAt: number) => void,
  firstSeq = 0,
): Promise<number> {
  const t0 = now()
  const total = Math.floor((rate * durationMs) / 1000)
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000) + 1)
    while (sent < due) {
      send(firstSeq + sent, t0 + (sent * 1000) / rate)
      sent++
    }
    await new Promise((r) => setTimeout(r, 1))
  }
  return sent
}

/**
 * openLoop in requests: `request(seqs)` gets each event on its own at its time (batchMs 0), or every batchMs the
 * events that came due since (the rest at the end); `onDue(seq, intendedAt)` is called for every event as it comes
 * due. Returns how many were sent.
 */
export async function openLoopBatches(
  rate: number,
  durationMs: number,
  batchMs: number,
  onDue: (seq: number, intendedAt: number) => void,
  request: (seqs: number[]) => void,
  firstSeq = 0,
): Promise<number> {
  let due: number[] = []
  const flush = () => {
    if (due.length === 0) return
    request(due)
    due = []
  }
  const timer = batchMs > 0 ? setInterval(flush, batchMs) : undefined
  try {
    return await openLoop(
      rate,
      durationMs,
      (seq, at) => {
        onDue(seq, at)
        if (batchMs > 0) due.push(seq)
        else request([seq])
      },
      firstSeq,
    )
  } finally {
    clearInterval(timer)
    flush()
  }
}

export interface Hooks {
  child: ChildProcess
  /** One base URL per receiver server (http://127.0.0.1:<port>). */
  bases: string[]
  close(): void
}

/** Receivers in a child process; `onHit(seq, at)` for every delivery that carried data.sequence. */
export async function startHooks(servers: number, onHit: (seq: number, at: number) => void): Promise<Hooks> {
  const child = fork(path.join(here, 'hooks-child.ts'), [String(servers)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.on('message', (m) => {
      const msg = m as { ports?: number[]; hits?: number[] }
      if (msg.ports) resolve(msg.ports)
      if (msg.hits) for (let i = 0; i < msg.hits.length; i += 2) onHit(msg.hits[i]!, msg.hits[i + 1]!)
    })
    child.once('exit', (code) => reject(new Error(`receivers exited with ${code}`)))
  })
  return {
    child,
    bases: ports.map((p) => `http://127.0.0.1:${p}`),
    close() {
      if (child.connected) child.disconnect()
      child.kill()
    },
  }
}

export async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 50))
  }
  return true
}

export interface LatencyRun {
  /** Latencies (ms) of the measured events (after the warm-up). */
  latencies: number[]
  sent: number
  /** Measured events that never arrived within the drain time. */
  missing: number
  /** Latencies (ms) of the warm-up's events, when recorded. */
  warmup?: number[]
}

/**
 * Raw kafkajs: one producer.send (acks=all, one message) per event at `rate`, one consumer
 * (maxWaitTimeInMs 100, as the sink worker's reader) on `topic`, latency from the intended send time to
 * eachMessage. The first `warmupMs` are not counted.
 */
export async function rawProduceConsume(
  kafka: Kafka,
  topic: string,
  rate: number,
  warmupMs: number,
  durationMs: number,
  value: Buffer,
  groupId: string,
  /** As the publisher's batchMs: 0 sends each message on its own, more sends what came due in one request. */
  batchMs = 0,
): Promise<LatencyRun> {
  const intended = new Map<number, number>()
  const latencies: number[] = []
  const warmup: number[] = []
  const warm = Math.floor((rate * warmupMs) / 1000)
  let received = 0
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
  const producer = kafka.producer()
  await Promise.all([consumer.connect(), producer.connect()])
  try {
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()))
    await consumer.subscribe({ topics: [topic], fromBeginning: false })
    await consumer.run({
      eachMessage: async ({ message }) => {
        const at = now()
        const seq = Number(message.headers?.['bench-seq']?.toString())
        const t = intended.get(seq)
        if (t === undefined) return
        intended.delete(seq)
        received++
        if (seq >= warm) latencies.push(at - t)
        else warmup.push(at - t)
      },
    })
    await joined
    await new Promise((r) => setTimeout(r, 500)) // the fetch sessions are up
    let failed = 0
    const send = (seqs: number[]) =>
      producer
        .send({
          topic,
          acks: -1,
          messages: seqs.map((seq) => ({ key: `k-${seq % 100}`, value, headers: { 'bench-seq': String(seq) } })),
        })
        .catch(() => (failed += seqs.length))
    const sent = await openLoopBatches(
      rate,
      warmupMs + durationMs,
      batchMs,
      (seq, at) => intended.set(seq, at),
      (seqs) => void send(seqs),
    )
    await waitUntil(() => received + failed >= sent, 15_000)
    return { latencies, sent: sent - warm, missing: sent - warm - latencies.length, warmup }
  } finally {
    await consumer.disconnect().catch(() => undefined)
    await producer.disconnect().catch(() => undefined)
  }
}
