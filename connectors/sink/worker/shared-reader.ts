/**
 * The SHARED reader: one kafkajs consumer per worker process reads every partition once (group
 * `<groupId>.<workerId>.<incarnation>`, one per process start: a group shared by processes would
 * spread the partitions over them, while a worker needs every partition of the subscriptions it
 * holds). Each record is decoded once per reader schema and offered to every held subscription that
 * is attached on that partition: enqueued into the DeliveryQueue when it wants the event type,
 * skipped otherwise. The group commits, per partition, the minimum safe offset of the attached
 * subscriptions (never past an undelivered record).
 */
import { type Consumer, createConsumer, type EachBatchPayload } from '../../../common/kafka/index.ts'
import type { DeliveryQueue } from '../delivery-queue.ts'
import { DispatchIndex } from '../dispatch.ts'
import { DecodedMessage, loadSchemas } from '../records.ts'
import { isStateTopic } from '../../../schemas/topics.ts'
import { tpKey, type CursorDoc } from '../store.ts'
import type { WorkerCore } from './config.ts'
import { splitKey, type Run } from './run.ts'

/**
 * The kafkajs options of the shared and catch-up readers, for quick recovery after a broker restart.
 * Each reader is the only member of its group. kafkajs retries a failed fetch or join 5 times by
 * default (300 ms doubling) and then crashes and restarts the consumer as a NEW member, and the
 * coordinator, which reloaded the group with the old member after the restart, waits for that
 * member's session to expire (it was 30 s) before the new one gets partitions: recoveries of 6 to
 * 57 s. Here the reader retries every 2 s at most for about a minute, keeping its member id (it
 * rejoins at once when the broker is back), and a session of 10 s bounds the wait when it does
 * crash. maxWaitTimeInMs only bounds an idle fetch: the broker answers as soon as a record arrives.
 */
export const READER_OPTIONS = {
  maxWaitTimeInMs: 100,
  sessionTimeout: 10_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 1000,
  retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 30 },
} as const

/** Offers one message to a run: enqueue when wanted, skip otherwise. */
export function offer(queue: DeliveryQueue, run: Run, m: DecodedMessage): void {
  const type = m.eventType
  const wanted =
    (run.wanted.has(m.topic) || (type !== undefined && run.wanted.has(type)) || type === undefined) &&
    (!run.snapshot || run.snapshot.wants(tpKey(m.topic, m.partition), Number(m.offset)))
  if (wanted) queue.enqueue(run.id, m.record(run.readers.get(m.topic)))
  else queue.skip(run.id, m.topic, m.partition, m.offset)
}

export interface SharedReaderOptions extends WorkerCore {
  /** Schema ids the registry did not know (records.ts loadSchemas), shared by the worker's readers. */
  unknownSchemas: Set<number>
}

export class SharedReader {
  readonly #o: SharedReaderOptions
  #consumer: Consumer | null = null
  readonly #committed = new Map<string, number>()
  /** Topics without compaction: a gap in their offsets means records skipped (LatestIndex.skipped). */
  #uncompacted = new Set<string>()
  /**
   * Per topic-partition: the attached subscriptions by row filter (dispatch.ts), rebuilt when the dispatch version
   * moved.
   */
  readonly #dispatch = new Map<string, { version: number; index: DispatchIndex<Run> }>()

  constructor(o: SharedReaderOptions) {
    this.#o = o
  }

  /** Starts reading where the held subscriptions' cursors are, so that after a restart they attach at once. */
  async start(cursors: Map<string, CursorDoc>, incarnation: string): Promise<void> {
    const { deps: d, settings: s, positions } = this.#o
    const start = new Map<string, number>()
    for (const t of d.topics) {
      for (const p of positions.partitions.get(t.name) ?? []) {
        const k = tpKey(t.name, p)
        let pos = positions.high.get(k) ?? 0
        for (const c of cursors.values()) {
          const v = c.positions[k]
          if (v !== undefined && Number(v) < pos) pos = Number(v)
        }
        start.set(k, Math.max(pos, positions.low.get(k) ?? 0))
      }
    }
    // A group per process start: a process restarted under the same worker id after kill -9 would
    // otherwise wait for its predecessor's member to time out of the group (sessionTimeout, 10 s)
    // before it reads anything. Nothing depends on the group's offsets: the start is the cursors'.
    const consumer = createConsumer(d.kafka, {
      groupId: `${s.groupId}.${s.workerId}.${incarnation.slice(0, 8)}`,
      ...READER_OPTIONS,
    })
    this.#consumer = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: d.topics.map((t) => t.name), fromBeginning: false })
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.#batch(payload),
    })
    const stateTopics = new Set(d.topics.filter(isStateTopic).map((t) => t.name))
    this.#uncompacted = new Set(d.topics.filter((t) => !t.cleanupPolicy.includes('compact')).map((t) => t.name))
    for (const [k, offset] of start) {
      const [topic, partition] = splitKey(k)
      consumer.seek({ topic, partition, offset: String(offset) })
      positions.sharedNext.set(k, offset)
      if (stateTopics.has(topic)) positions.latest.track(k, offset) // a collapse's winners (latest-index.ts)
    }
    // a re-join resumes from the group's offsets: commit the start at once, never a later default
    await consumer.commitOffsets(
      [...start].map(([k, offset]) => ({ topic: splitKey(k)[0], partition: splitKey(k)[1], offset: String(offset) })),
    )
    for (const [k, offset] of start) this.#committed.set(k, offset)
  }

  async disconnect(): Promise<void> {
    await this.#consumer?.disconnect().catch(() => undefined)
  }

  async #batch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { deps: d, settings, queue, positions, log } = this.#o
    const { topic, partition } = batch
    const k = tpKey(topic, partition)
    if (!positions.sharedNext.has(k)) return // before the start seek: discarded
    positions.high.set(k, Number(batch.highWatermark))
    await loadSchemas(d.serde, batch.messages, this.#o.unknownSchemas)
    const targets: Run[] = []
    const metrics = d.metrics
    const filtered = metrics
      ? (sink: string, count: number) => metrics.deliveries.inc({ sink, outcome: 'filtered' }, count)
      : undefined
    let n = 0
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break
      const offset = Number(message.offset)
      // a gap on a topic without compaction: records skipped (latest-index.ts); compaction's gaps are harmless there
      if (offset > positions.sharedNext.get(k)! && this.#uncompacted.has(topic)) positions.latest.skipped(k, offset)
      positions.sharedNext.set(k, offset + 1)
      positions.times.note(k, offset, Number(message.timestamp))
      positions.latest.note(k, message.key ?? null, offset)
      const index = this.#dispatchIndex(topic, k)
      if (index.all.length > 0) {
        const m = new DecodedMessage(d.serde, topic, partition, message)
        targets.length = 0
        index.select(index.indexed > 0 ? m.record().value : undefined, targets, filtered)
        for (const run of targets) {
          if (!run.parts.get(k)?.attached) continue // detached by an earlier record of this loop
          offer(queue, run, m)
          if (queue.buffered(run.id) >= settings.maxBuffered) {
            log.info('subscription falls behind: leaving the shared stream for a catch-up reader', {
              subscriptionId: run.id,
              buffered: queue.buffered(run.id),
            })
            positions.detachAll(run)
            run.throttled = true
          }
        }
      }
      resolveOffset(message.offset)
      if (++n % 500 === 0) await heartbeat()
    }
  }

  /**
   * The attached subscriptions of a topic-partition, indexed by row filter (rebuilt after any change of who is
   * attached).
   */
  #dispatchIndex(topic: string, k: string): DispatchIndex<Run> {
    const held = this.#o.held
    const cached = this.#dispatch.get(k)
    if (cached?.version === held.dispatchVersion) return cached.index
    const entries = []
    for (const run of held.byTopic.get(topic) ?? []) {
      if (!run.parts.get(k)?.attached) continue
      entries.push({
        run,
        filter: run.sub.filter,
        partnerId: run.sub.partnerId,
        sinkType: run.sub.sink.type,
        indexable: !run.readers.has(topic) && !run.snapshot,
      })
    }
    const index = new DispatchIndex(entries)
    this.#dispatch.set(k, { version: held.dispatchVersion, index })
    return index
  }

  /**
   * Commits the group's offsets: per partition, the minimum safe offset of the attached subscriptions. An
   * attached subscription that holds no record is where the shared reader is: only those holding records
   * are looked at (a few, not the 10,000 a worker may hold).
   */
  async commit(): Promise<void> {
    const consumer = this.#consumer
    if (!consumer) return
    const { queue, held, positions } = this.#o
    const commits: Array<{ topic: string; partition: number; offset: string }> = []
    for (const [k, next] of positions.sharedNext) {
      const [topic, partition] = splitKey(k)
      let min = next
      for (const id of queue.holding()) {
        const part = held.runs.get(id)?.parts.get(k)
        if (!part?.attached) continue
        const safe = Number(queue.safeOffset(id, topic, partition, positions.seen(part)) ?? part.next)
        if (safe < min) min = safe
      }
      if (this.#committed.get(k) !== min) {
        commits.push({ topic, partition, offset: String(min) })
        this.#committed.set(k, min)
      }
    }
    if (commits.length > 0) await consumer.commitOffsets(commits)
  }
}
