/**
 * Recovery after a crash between the broker's ack and the plug-in's commit: the records of that gap
 * are in Kafka but the stored resume point is older. Every record a runner produces carries its
 * plug-in's position in a header; on start, the runner reads the source's topics from the time of
 * the last stored commit to their current end and returns the positions this source (ce_source)
 * wrote there, so the plug-in can move past them instead of producing them a second time.
 *
 * A produce request can land on some partitions and not on others (each partition, or each broker's
 * request, succeeds or fails alone). A plug-in that moved past the highest position found would then
 * skip the rows whose partition failed. So the position header also names the record's batch (the
 * records encoded for one produce request) and its size: `<position JSON>\n<batch id> <count>`
 * (JSON.stringify never writes a raw line break). A batch counts only when all of its records (by
 * event id) were found, and no batch after the first incomplete one counts (batch ids are UUIDv7,
 * ordered by creation): their rows are produced again rather than lost. Headers without a tag (written
 * before this format) count as found.
 */
import { randomUUID } from 'node:crypto'
import { createAdmin, createConsumer, type Kafka } from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import { RetriableError } from '../../common/errors.ts'
import { HEADER } from '../../schemas/headers.ts'

export const POSITION_HEADER = 'distributary_position'

/** Records are stamped when produced; allow this much clock difference and batching delay. */
const CLOCK_MARGIN_MS = 60_000

/** The position header's value: the position as JSON, and the batch tag (`<batch id> <count>`) when there is one. */
export function positionHeader(position: unknown, tag: string): string {
  const json = JSON.stringify(position)
  return tag === '' ? json : `${json}\n${tag}`
}

interface Batch {
  size: number
  ids: Set<string>
  positions: unknown[]
}

const str = (v: unknown): string | undefined => {
  const one = Array.isArray(v) ? v[v.length - 1] : v
  return one === undefined ? undefined : Buffer.isBuffer(one) ? one.toString('utf8') : String(one)
}

export async function scanPositions(
  kafka: Kafka,
  topics: string[],
  sinceMs: number,
  source: string,
  logger: Logger,
  timeoutMs = 60_000,
): Promise<unknown[]> {
  const admin = createAdmin(kafka)
  await admin.connect()
  // partition ranges to read: [from, high)
  const ranges = new Map<string, { from: number; high: number }>()
  try {
    const existing = new Set(await admin.listTopics())
    for (const topic of topics) {
      if (!existing.has(topic)) continue
      const from = await admin.fetchTopicOffsetsByTimestamp(topic, Math.max(0, sinceMs - CLOCK_MARGIN_MS))
      const high = await admin.fetchTopicOffsets(topic)
      for (const h of high) {
        const f = from.find((x) => x.partition === h.partition)
        const start = f && Number(f.offset) >= 0 ? Number(f.offset) : Number(h.offset)
        if (start < Number(h.offset))
          ranges.set(`${topic}\u0000${h.partition}`, { from: start, high: Number(h.offset) })
      }
    }
  } finally {
    await admin.disconnect()
  }
  if (ranges.size === 0) return []

  const groupId = `distributary-recovery-${randomUUID()}`
  const consumer = createConsumer(kafka, { groupId, maxWaitTimeInMs: 200 })
  const positions: unknown[] = []
  const batches = new Map<string, Batch>()
  const remaining = new Set(ranges.keys())
  try {
    await consumer.connect()
    const wanted = [...new Set([...ranges.keys()].map((k) => k.split('\u0000')[0]!))]
    await consumer.subscribe({ topics: wanted, fromBeginning: false })
    let done!: () => void
    const finished = new Promise<void>((r) => (done = r))
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        const key = `${batch.topic}\u0000${batch.partition}`
        const range = ranges.get(key)
        if (!range) return
        for (const m of batch.messages) {
          const off = Number(m.offset)
          if (off < range.from || off >= range.high) continue
          if (str(m.headers?.[HEADER.source]) !== source) continue
          const p = str(m.headers?.[POSITION_HEADER])
          if (p === undefined) continue
          const nl = p.lastIndexOf('\n')
          if (nl < 0) {
            positions.push(JSON.parse(p))
            continue
          }
          const [batchId, size] = p.slice(nl + 1).split(' ')
          let b = batches.get(batchId!)
          if (!b) batches.set(batchId!, (b = { size: Number(size), ids: new Set(), positions: [] }))
          b.ids.add(str(m.headers?.[HEADER.id]) ?? `${key}\u0000${off}`)
          b.positions.push(JSON.parse(p.slice(0, nl)))
        }
        if (Number(batch.lastOffset()) >= range.high - 1) {
          remaining.delete(key)
          if (remaining.size === 0) done()
        }
      },
    })
    for (const [key, r] of ranges) {
      const [topic, partition] = key.split('\u0000')
      consumer.seek({ topic: topic!, partition: Number(partition), offset: String(r.from) })
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RetriableError(
              `recovery scan did not reach the end of ` +
                `${[...remaining].map((k) => k.replace('\u0000', '/')).join(', ')} within ` +
                `${timeoutMs} ms`,
              undefined,
              { stage: 'recovery' },
            ),
          ),
        timeoutMs,
      )
    })
    try {
      await Promise.race([finished, timeout])
    } finally {
      clearTimeout(timer)
    }
    // complete batches, in creation order, up to the first incomplete one
    const order = [...batches.keys()].sort()
    const cut = order.findIndex((id) => batches.get(id)!.ids.size < batches.get(id)!.size)
    for (const id of cut < 0 ? order : order.slice(0, cut))
      for (const p of batches.get(id)!.positions) positions.push(p)
    if (cut >= 0) {
      const skipped = order.slice(cut)
      const first = batches.get(order[cut]!)!
      logger.warn(
        'a produce request reached Kafka only in part before the crash: its rows and those after it are produced again',
        {
          batch: order[cut],
          found: first.ids.size,
          of: first.size,
          batchesSkipped: skipped.length,
          positionsSkipped: skipped.reduce((n, id) => n + batches.get(id)!.positions.length, 0),
        },
      )
    }
    logger.debug('recovery scan done', { ranges: ranges.size, positions: positions.length })
  } finally {
    await consumer.disconnect().catch(() => undefined)
    const admin2 = createAdmin(kafka)
    await admin2
      .connect()
      .then(() => admin2.deleteGroups([groupId]))
      .catch(() => undefined)
      .finally(() => admin2.disconnect())
  }
  return positions
}
