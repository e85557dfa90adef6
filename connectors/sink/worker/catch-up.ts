/**
 * CATCH-UP readers. A subscription that is paused, replaying (offset reset), new with startFrom
 * earliest, taken over behind the shared stream, or slow (more than `maxBuffered` records held) is
 * DETACHED: the shared reader ignores it, and a catch-up reader of its own (a consumer in a unique
 * group, no commits, seeking to its positions) feeds it until, per partition, it reaches the shared
 * reader's position, where it re-attaches. The hand-over is exact because both readers run on one
 * event loop: a partition attaches when the catch-up reader's next offset reaches the shared reader's
 * next offset, and the queue ignores offsets below what it already holds. Catch-up readers are limited
 * to `maxCatchUpReaders` at a time; one pauses when its subscription holds `maxBuffered` records and
 * resumes once half of them are delivered (a paused reader keeps its consumer: starting one, a group of
 * its own to join, took about a second, which a catch-up paid every 1,000 records). The slots are shared
 * in turns: subscriptions waiting for one get it in the order they started waiting, and while any waits,
 * a paused reader gives its slot up first, then a reader that has run for `catchUpSliceMs` yields its
 * slot (its position kept) and queues again.
 */
import { randomUUID } from 'node:crypto'
import { createConsumer, type EachBatchPayload } from '../../../common/kafka/index.ts'
import { DecodedMessage, loadSchemas } from '../records.ts'
import { tpKey } from '../store.ts'
import type { WorkerCore } from './config.ts'
import type { CatchUp, Part, ReaderSlots, Run } from './run.ts'
import { offer, READER_OPTIONS } from './shared-reader.ts'
import type { SnapshotBootstrap } from './snapshots.ts'

export interface CatchUpOptions extends WorkerCore {
  slots: ReaderSlots
  snapshots: SnapshotBootstrap
  unknownSchemas: Set<number>
}

/** A stretch of at least this many unwanted records (a snapshot's or a collapse's losers) is sought over, not read. */
const SKIP_READ_MIN = 2000

export class CatchUpReaders {
  readonly #o: CatchUpOptions
  /** Catch-up readers that yielded their slot to a waiting subscription since the start. */
  yields = 0
  /** Catch-up readers started since the start. */
  started = 0

  constructor(o: CatchUpOptions) {
    this.#o = o
  }

  /** Starts and stops catch-up readers, re-attaches caught-up partitions; shares the slots in turns. */
  pass(): void {
    const { held, settings, slots, log } = this.#o
    const now = Date.now()
    const waiting: Run[] = []
    for (const run of held.behind) {
      if (!this.#wantsReader(run)) {
        run.waitingForReader = 0
        if (run.stopped || (!run.catchUp && !run.snapshot && [...run.parts.values()].every((p) => p.attached)))
          held.behind.delete(run)
        continue
      }
      if (run.waitingForReader === 0) run.waitingForReader = now
      waiting.push(run)
    }
    if (waiting.length === 0) return
    waiting.sort((a, b) => a.waitingForReader - b.waitingForReader)
    let started = 0
    for (const run of waiting) {
      if (!slots.free) break
      run.waitingForReader = 0
      run.throttled = false
      this.#start(run)
      started++
    }
    // Others still wait: readers that had their turn yield their slots (the next pass starts the waiters).
    let yielding = waiting.length - started
    if (yielding <= 0) return
    const turnsOver = [...held.behind]
      .filter(
        (r) =>
          r.catchUp !== null &&
          r.catchUp.stopping === null &&
          (r.catchUp.paused || now - r.catchUp.startedAt >= settings.catchUpSliceMs),
      )
      .sort(
        (a, b) => Number(b.catchUp!.paused) - Number(a.catchUp!.paused) || a.catchUp!.startedAt - b.catchUp!.startedAt,
      )
    for (const run of turnsOver) {
      if (yielding-- <= 0) break
      log.info('catch-up reader yields its slot to a waiting subscription', {
        subscriptionId: run.id,
        ranMs: now - run.catchUp!.startedAt,
      })
      run.waitingForReader = now // back of the line
      this.yields++
      void this.stop(run)
    }
  }

  /**
   * Re-attaches caught-up partitions, stops a reader no longer needed; true when the run needs a catch-up reader it
   * does not have.
   */
  #wantsReader(run: Run): boolean {
    const { queue, settings, positions } = this.#o
    if (run.stopped || run.failure) return false
    if (run.snapshot && this.#o.snapshots.pass(run)) return false
    let detached = 0
    let regained = false
    for (const part of run.parts.values()) {
      if (part.attached) continue
      const shared = positions.sharedNext.get(part.key)
      if (run.desiredState === 'running' && shared !== undefined && part.next >= shared) {
        this.#attach(run, part)
        continue
      }
      detached++
      if (run.catchUp?.handedOver.has(part.key)) regained = true
    }
    if (detached === 0 || run.desiredState !== 'running') {
      if (run.catchUp) void this.stop(run)
      return false
    }
    const buffered = queue.buffered(run.id)
    const cu = run.catchUp
    if (cu) {
      if (cu.stopping !== null) return false
      // It fell behind again while this reader runs: the partitions the reader handed over are detached once more but
      // paused in its consumer. The reader pauses as a whole, and resuming it reads every detached partition again.
      if (regained && !cu.paused) this.#pauseReader(run, cu)
      this.#resumeIfHalfDelivered(run, cu)
      return false
    }
    if (run.throttled && buffered > settings.maxBuffered / 2) return false
    if (queue.stats(run.id).status === 'disabled') return false
    return true
  }

  #attach(run: Run, part: Part): void {
    part.attached = true
    this.#o.held.changed()
    const cu = run.catchUp
    if (!cu) return
    cu.consumer.pause([{ topic: part.topic, partitions: [part.partition] }])
    cu.handedOver.add(part.key)
  }

  #start(run: Run): void {
    const { deps, settings, slots, log } = this.#o
    const consumer = createConsumer(deps.kafka, {
      groupId: `${settings.groupId}.catch-up.${run.id}.${randomUUID().slice(0, 8)}`,
      ...READER_OPTIONS,
    })
    const cu: CatchUp = { consumer, stopping: null, startedAt: Date.now(), paused: false, handedOver: new Set() }
    run.catchUp = cu
    slots.used++
    this.started++
    const begin = async () => {
      await consumer.connect()
      await consumer.subscribe({ topics: run.topics, fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.#batch(run, cu, payload),
      })
      for (const part of run.parts.values()) {
        if (part.attached) {
          consumer.pause([{ topic: part.topic, partitions: [part.partition] }])
          cu.handedOver.add(part.key)
        } else consumer.seek({ topic: part.topic, partition: part.partition, offset: String(this.#skipTo(run, part)) })
      }
    }
    log.info('catch-up reader started', {
      subscriptionId: run.id,
      from: Object.fromEntries([...run.parts.values()].filter((p) => !p.attached).map((p) => [p.key, p.next])),
    })
    begin().catch((err: unknown) => {
      log.warn('catch-up reader failed; it will be started again', { subscriptionId: run.id, error: err })
      void this.stop(run)
    })
  }

  async #batch(run: Run, cu: CatchUp, { batch, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { deps, queue, settings, positions } = this.#o
    if (run.catchUp !== cu || cu.stopping || cu.paused || run.stopped) return // (unresolved: fetched again)
    const { topic, partition } = batch
    const k = tpKey(topic, partition)
    const part = run.parts.get(k)
    if (!part || part.attached) return
    const high = Number(batch.highWatermark)
    if (high > (positions.high.get(k) ?? 0)) positions.high.set(k, high)
    await loadSchemas(deps.serde, batch.messages, this.#o.unknownSchemas)
    if (run.catchUp !== cu || cu.stopping || cu.paused || run.stopped || part.attached) return
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break
      const offset = Number(message.offset)
      if (offset < part.next) {
        resolveOffset(message.offset)
        continue
      }
      // the next offset the snapshot or collapse wants (this one: wanted, or no snapshot)
      const wanted = run.snapshot ? run.snapshot.nextWanted(k, offset) : offset
      if (wanted >= offset + SKIP_READ_MIN) {
        // a long run of records the snapshot or collapse does not want: not read at all
        part.next = offset
        cu.consumer.seek({ topic, partition, offset: String(this.#skipTo(run, part)) })
        break
      }
      const shared = positions.sharedNext.get(k)
      if (shared !== undefined && offset >= shared) {
        this.#attach(run, part)
        break
      }
      // a superseded record (not the latest of its key below the snapshot's high watermark) is skipped as offer()
      // would skip it, without decoding its envelope and key first: half the records a snapshot reads, or more
      if (wanted > offset) queue.skip(run.id, topic, partition, offset)
      else offer(queue, run, new DecodedMessage(deps.serde, topic, partition, message))
      part.next = offset + 1
      resolveOffset(message.offset)
      if (shared !== undefined && part.next >= shared) {
        this.#attach(run, part)
        break
      }
      if (queue.buffered(run.id) >= settings.maxBuffered) {
        run.throttled = true
        this.#pauseReader(run, cu)
        break
      }
    }
  }

  /**
   * A record of the run was delivered: a reader paused for a full buffer resumes as soon as half of it is delivered,
   * not at the next pass (a pass every 250 ms capped a catch-up at about maxBuffered records per pass, which at
   * 5,000 events/s never caught up). Looked at after the queue has counted the record out.
   */
  delivered(run: Run): void {
    const cu = run.catchUp
    if (!cu?.paused || cu.stopping !== null) return
    queueMicrotask(() => {
      if (run.catchUp === cu && cu.stopping === null && !run.stopped && run.desiredState === 'running')
        this.#resumeIfHalfDelivered(run, cu)
    })
  }

  /** A reader paused for a full buffer fetches again once half of the buffer is delivered. */
  #resumeIfHalfDelivered(run: Run, cu: CatchUp): void {
    if (cu.paused && this.#o.queue.buffered(run.id) <= this.#o.settings.maxBuffered / 2) this.#resumeReader(run, cu)
  }

  /** The subscription holds maxBuffered records: its reader fetches nothing until half of them are delivered. */
  #pauseReader(run: Run, cu: CatchUp): void {
    cu.paused = true
    cu.consumer.pause(run.topics.map((topic) => ({ topic })))
  }

  /** Resumes a paused reader's detached partitions, each from where the run's position is. */
  #resumeReader(run: Run, cu: CatchUp): void {
    cu.paused = false
    run.throttled = false
    for (const part of run.parts.values()) {
      if (part.attached) continue
      cu.consumer.seek({ topic: part.topic, partition: part.partition, offset: String(this.#skipTo(run, part)) })
      cu.consumer.resume([{ topic: part.topic, partitions: [part.partition] }])
      cu.handedOver.delete(part.key)
    }
  }

  /**
   * Where the run's reading of the partition may begin: at the next record its snapshot or collapse wants (winners,
   * then everything from the high watermark); the records before it count as skipped (part.next moves there).
   */
  #skipTo(run: Run, part: Part): number {
    const to = run.snapshot?.nextWanted(part.key, part.next) ?? part.next
    if (to > part.next) {
      this.#o.queue.skip(run.id, part.topic, part.partition, to - 1)
      part.next = to
    }
    return to
  }

  /** Stops the run's catch-up reader (its position stays in the run's parts) and frees its slot. */
  stop(run: Run): Promise<void> {
    const cu = run.catchUp
    if (!cu) return Promise.resolve()
    if (!cu.stopping) {
      cu.stopping = cu.consumer
        .disconnect()
        .catch(() => undefined)
        .finally(() => {
          if (run.catchUp === cu) run.catchUp = null
          this.#o.slots.used--
        })
    }
    return cu.stopping
  }
}
