/**
 * The source runner: one per source instance. It drives a SourceConnector (poll → encode → produce →
 * commit), and owns everything the plug-ins share:
 *
 * - batching: each poll's records go out as one produce request (up to `maxBatch`);
 * - encoding (encoder.ts): Avro in the Confluent wire format through the serde, key and value
 *   schemas of the topic's contracts (TopicNameStrategy subjects), registered or found once per
 *   topic; keys and CloudEvents envelope headers (event id UUIDv7, type, source, time, traceparent);
 * - with tracing on, a `send` span per produce request (docs/tracing.md), linked to the trace
 *   contexts its records carry and the trace context of those that carry none;
 * - a kafkajs idempotent producer, acks=all, one request in flight (per-key order survives retries),
 *   the next batch polled and encoded while the previous one waits for its ack (see run), and
 *   replaced by a fresh one (a new producer id) after any failed produce (see sendOnce);
 * - `commit(records)` only after the broker acked them; a failed commit is retried, never produced
 *   again; a failed produce is retried for pull sources and reported with `fail` for push sources;
 * - start / pause / resume / stop, and recovery after a crash (see SourceConnector.recovery).
 */
import { createProducer, type Kafka, type Producer, type TopicMessages } from '../../common/kafka/index.ts'
import { idle as sleep } from '../../common/timers.ts'
import type { Logger } from '../../common/logger.ts'
import { endSpan } from '../../common/tracing.ts'
import { DataError, RetriableError } from '../../common/errors.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import type { TopicSpec } from '../../schemas/topics.ts'
import { backoffDelay, type Backoff } from '../retry.ts'
import { RecordEncoder, type TopicIds } from './encoder.ts'
import { scanPositions } from './recovery.ts'
import type { SourceConnector, SourceContext, SourceRecord, SourceState } from './types.ts'

export interface SourceRunnerOptions {
  /** Unique name of the source instance. */
  name: string
  /** ce_source of its events; default /sources/<name>. */
  source?: string
  kafka: Kafka
  serde: AvroSerde
  /** The topics this source may write (their key/value contracts). */
  topics: readonly TopicSpec[]
  /**
   * The organization this source publishes for (a source's owner). Stamped on every record as
   * ce_publisherid whatever the plug-in says; a record whose publisherId, value or key names another
   * manufacturer is refused with a DataError (the plug-ins refuse such rows first, with the reason, in
   * their own way: a reject file, a skipped document). Absent: each record names its own (HTTP
   * ingestion, where the authenticated caller is the publisher).
   */
  publisherId?: string
  logger: Logger
  /** Records per produce request at most (a longer poll is split). Default 2000. */
  maxBatch?: number
  /** Pause after an empty poll, in ms. Default 100. */
  idleMs?: number
  /** Retry delays of a pull source's failed produce. Default PRODUCE_BACKOFF. */
  produceBackoff?: Backoff
  /**
   * kafkajs producer retries before a produce counts as failed (then `fail` or our own retry).
   * Bounded so that a push source can answer 503 in seconds rather than hang while Kafka is down.
   */
  producerRetry?: { retries: number; maxRetryTime: number; initialRetryTime?: number }
  /**
   * Poll the next batch while the previous one is in flight. Default: yes for pull sources (a file or
   * a collection is read and encoded during the broker's round trip); no for push sources (those with
   * `fail`): requests that arrive during the round trip are worth more merged into the next produce
   * request than drained one by one (their validation already ran in the request handlers).
   */
  overlapPoll?: boolean
}

/** A pull source's failed produce is retried after 500 ms, doubling up to 10 s. */
const PRODUCE_BACKOFF: Backoff = { initialDelayMs: 500, maxDelayMs: 10_000 }
/** A failed commit (the records are in Kafka) is retried after 200 ms, doubling up to 5 s. */
const COMMIT_BACKOFF: Backoff = { initialDelayMs: 200, maxDelayMs: 5000 }

export class SourceRunner<C = unknown, V = unknown> {
  readonly name: string
  readonly source: string
  private readonly log: Logger
  private readonly encoder: RecordEncoder<V>
  private readonly maxBatch: number
  private readonly idleMs: number
  private readonly overlapPoll: boolean
  private producer: Producer | undefined
  private connected = false
  private abort = new AbortController()
  private loop: Promise<void> | undefined
  private resumeWaiter: { promise: Promise<void>; resolve: () => void } | undefined
  private _state: SourceState = 'created'
  private _error: Error | undefined
  /** Counters for status and tests. */
  readonly stats = { produced: 0, batches: 0, failedBatches: 0, commitRetries: 0 }

  constructor(
    readonly connector: SourceConnector<C, V>,
    readonly config: C,
    private readonly opts: SourceRunnerOptions,
  ) {
    this.name = opts.name
    this.source = opts.source ?? `/sources/${opts.name}`
    this.log = opts.logger.child({ component: 'source-runner', connector: opts.name })
    this.encoder = new RecordEncoder({
      name: opts.name,
      source: this.source,
      serde: opts.serde,
      topics: opts.topics,
      ...(opts.publisherId !== undefined ? { publisherId: opts.publisherId } : {}),
    })
    this.maxBatch = opts.maxBatch ?? 2000
    this.overlapPoll = opts.overlapPoll ?? !connector.fail
    this.idleMs = opts.idleMs ?? 100
  }

  get state(): SourceState {
    return this._state
  }
  get error(): Error | undefined {
    return this._error
  }

  /** Starts the plug-in, recovers what a crash left uncommitted, then runs the loop. */
  async start(): Promise<void> {
    if (this._state === 'running' || this._state === 'paused') return
    this.abort = new AbortController()
    this._error = undefined
    this.producer = this.newProducer()
    this.spoiled = false
    const ctx: SourceContext = {
      name: this.name,
      source: this.source,
      logger: this.opts.logger.child({ connector: this.name }),
      signal: this.abort.signal,
      ...(this.opts.publisherId !== undefined ? { publisherId: this.opts.publisherId } : {}),
    }
    await this.connector.start(this.config, ctx)
    try {
      const rec = this.connector.recovery?.()
      if (rec && this.connector.reconcile) {
        const positions = await scanPositions(this.opts.kafka, rec.topics, rec.sinceMs, this.source, this.log)
        if (positions.length > 0)
          this.log.info('recovered positions produced after the last commit', { count: positions.length })
        await this.connector.reconcile(positions)
      }
    } catch (err) {
      await this.connector.stop().catch(() => undefined)
      throw err
    }
    this._state = 'running'
    this.loop = this.run().catch((err: Error) => {
      this._state = 'failed'
      this._error = err
      this.log.error('source failed', { err })
    })
    this.log.info('source started', { source: this.source })
  }

  /** Stops taking new records after the batch in flight (which is acked and committed first). */
  pause(): void {
    if (this._state !== 'running') return
    this._state = 'paused'
    let resolve!: () => void
    const promise = new Promise<void>((r) => (resolve = r))
    this.resumeWaiter = { promise, resolve }
  }

  resume(): void {
    if (this._state !== 'paused') return
    this._state = 'running'
    this.resumeWaiter?.resolve()
    this.resumeWaiter = undefined
  }

  async stop(): Promise<void> {
    if (this._state === 'stopped' || this._state === 'created') return
    this._state = 'stopped'
    this.abort.abort()
    this.resumeWaiter?.resolve()
    await this.loop
    await this.connector.stop().catch((err) => this.log.warn('connector stop failed', { err }))
    await this.producer?.disconnect().catch(() => undefined)
    this.connected = false
    this.log.info('source stopped', this.stats)
  }

  private newProducer(): Producer {
    const r = this.opts.producerRetry ?? { retries: 5, maxRetryTime: 5000, initialRetryTime: 200 }
    const producer = createProducer(this.opts.kafka, {
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: r.retries, maxRetryTime: r.maxRetryTime, initialRetryTime: r.initialRetryTime ?? 200 },
    })
    producer.on(producer.events.DISCONNECT, () => {
      if (this.producer === producer) this.connected = false
    })
    return producer
  }

  /** Producer sessions (producer ids) used so far; a failed produce starts the next one. */
  get producerSessions(): number {
    return this.sessions
  }
  private sessions = 1
  /** Set when a produce failed: the producer's sequence numbers can no longer be trusted. */
  private spoiled = false

  /**
   * The loop is a two-stage pipeline: while one batch is in flight (waiting for the broker's ack),
   * the next is polled and encoded; it is sent only once the previous one is acked, so there is never
   * more than one produce request of this source in flight (kafkajs' idempotent producer holds a lock
   * per broker for the whole request anyway) and per-key order survives failures and retries. Each
   * batch's `commit` is chained on its ack, in ack order, and runs while the next batch is in flight.
   */
  private async run(): Promise<void> {
    const signal = this.abort.signal
    let failures = 0 // failed produces (or encodes) in a row
    let pending: SourceRecord<V>[] | undefined // a pull source's records awaiting a retry
    try {
      while (!signal.aborted) {
        if (this._state === 'paused') {
          // The batch in flight is acked and committed first (or its records kept for a retry).
          const failed = await this.settle()
          if (failed) pending = pending ? [...failed, ...pending] : failed
          await this.commits
          await this.resumeWaiter?.promise
          continue
        }
        if (this.flight && !this.overlapPoll) {
          // Without overlap the next poll sees the source after the previous batch's commit (a source
          // reading its pending records from a store would otherwise hand them out again).
          const failed = await this.settle()
          await this.commits
          if (failed) {
            pending = pending ? [...failed, ...pending] : failed
            await this.backoff(pending.length, ++failures, signal)
            continue
          }
        }
        let records: SourceRecord<V>[]
        if (pending) {
          records = pending
          pending = undefined
          if (this.connector.resend && !(await this.connector.resend(records).catch(() => false))) {
            this.log.info('failed records not produced again: the source no longer sends them', {
              count: records.length,
            })
            continue
          }
        } else {
          const t0 = Date.now()
          records = await this.connector.poll()
          if (records.length === 0) {
            // Nothing new: let a failed batch in flight be retried without waiting for more records.
            if (this.flight && !this.connector.fail) {
              const failed = await this.settle()
              if (failed) {
                pending = failed
                await this.backoff(failed.length, ++failures, signal)
              }
              continue
            }
            const waited = Date.now() - t0
            if (waited < this.idleMs) await sleep(this.idleMs - waited, signal)
            continue
          }
        }
        for (let i = 0; i < records.length; i += this.maxBatch) {
          const batch = i === 0 && records.length <= this.maxBatch ? records : records.slice(i, i + this.maxBatch)
          // Encode this batch while the previous one is in flight.
          let topicMessages: TopicMessages[] | undefined
          let encodeError: Error | undefined
          try {
            topicMessages = await this.encode(batch)
          } catch (err) {
            encodeError = err as Error
          }
          const failed = await this.settle()
          if (failed) {
            // Pull source: the failed batch and everything after it (not sent) go again, in order.
            pending = [...failed, ...records.slice(i)]
            await this.backoff(pending.length, ++failures, signal)
            break
          }
          if (encodeError || !topicMessages) {
            const e = encodeError ?? new Error('nothing encoded')
            if (this.failed('encoding', batch, e)) continue
            if (e instanceof DataError) throw e
            pending = records.slice(i) // e.g. the registry unreachable: try again
            await this.backoff(pending.length, ++failures, signal)
            break
          }
          failures = 0
          this.flight = { batch, done: this.send(batch, topicMessages, signal) }
        }
      }
    } finally {
      await this.settle().catch(() => undefined)
      await this.commits
    }
  }

  private flight: { batch: SourceRecord<V>[]; done: Promise<Error | undefined> } | undefined
  /** The chain of commits, in ack order. */
  private commits: Promise<void> = Promise.resolve()

  /**
   * Waits for the batch in flight. Returns its records when producing them failed and the source is
   * a pull source (to be retried); a push source was told through `fail`. Throws a DataError.
   */
  private async settle(): Promise<SourceRecord<V>[] | undefined> {
    const f = this.flight
    if (!f) return undefined
    this.flight = undefined
    const err = await f.done
    if (!err) return undefined
    if (this.connector.fail) return undefined
    if (err instanceof DataError) throw err
    return f.batch
  }

  /** Counts a failed batch and, to a push source, reports it (its `fail`): true when reported. */
  private failed(step: 'encoding' | 'produce', batch: SourceRecord<V>[], e: Error): boolean {
    this.stats.failedBatches++
    if (!this.connector.fail) return false
    this.log.warn(`${step} failed; reported to the source`, {
      code: (e as { code?: string }).code ?? 'RETRIABLE',
      count: batch.length,
      err: e,
    })
    this.connector.fail(batch, e)
    return true
  }

  private async backoff(count: number, failures: number, signal: AbortSignal): Promise<void> {
    const delay = backoffDelay(this.opts.produceBackoff ?? PRODUCE_BACKOFF, failures)
    this.log.warn('produce failed; retrying', { code: 'RETRIABLE', count, retryInMs: delay })
    await sleep(delay, signal)
  }

  /** Produces an encoded batch; on the ack, chains its commit. Resolves with the error, never rejects. */
  private async send(
    batch: SourceRecord<V>[],
    topicMessages: TopicMessages[],
    signal: AbortSignal,
  ): Promise<Error | undefined> {
    try {
      await this.sendEncoded(batch, topicMessages)
    } catch (err) {
      this.failed('produce', batch, err as Error)
      return err as Error
    }
    this.commits = this.commits.then(() => this.commit(batch, signal))
    return undefined
  }

  private async commit(batch: SourceRecord<V>[], signal: AbortSignal): Promise<void> {
    if (!this.connector.commit) return
    for (let failures = 1; ; failures++) {
      try {
        await this.connector.commit(batch)
        return
      } catch (err) {
        // The records are in Kafka; only the resume point is missing. Never produce them again.
        this.stats.commitRetries++
        this.log.warn('commit failed; retrying', { code: 'RETRIABLE', stage: 'commit', err })
        if (signal.aborted) return
        await sleep(backoffDelay(COMMIT_BACKOFF, failures))
      }
    }
  }

  /** Encodes and produces one batch; resolves when the broker acked all of it (acks=all). */
  async produce(batch: SourceRecord<V>[]): Promise<void> {
    await this.sendEncoded(batch, await this.encode(batch))
  }

  /** Key/value schema ids and the value schema version of a topic, registered once (encoder.ts). */
  topicIds(topic: string): Promise<TopicIds> {
    return this.encoder.topicIds(topic)
  }

  /** A batch as Kafka messages grouped by topic, each record given its event id (encoder.ts). */
  encode(batch: SourceRecord<V>[]): Promise<TopicMessages[]> {
    return this.encoder.encode(batch)
  }

  /** Sends one encoded batch (sendOnce) and ends its send span (tracing on) with the broker's answer. */
  private async sendEncoded(batch: SourceRecord<V>[], topicMessages: TopicMessages[]): Promise<void> {
    const span = this.encoder.takeSpan(topicMessages)
    if (!span) return this.sendOnce(batch, topicMessages)
    try {
      await this.sendOnce(batch, topicMessages)
    } catch (err) {
      endSpan(span, err)
      throw err
    }
    endSpan(span)
  }

  /**
   * Sends one encoded batch. A failed send spoils the producer: kafkajs gives a failed request's
   * sequence numbers back to its partitions, yet the broker may have appended that request (its
   * answer lost with a broker killed or a connection cut). The next, different batch would then carry
   * the same sequence numbers, and a broker that sees the same first and last sequence as a batch it
   * holds answers "duplicate" with success: the new records would be acknowledged and never written
   * (seen once as an accepted event missing after a broker was killed). The Java producer bumps its
   * epoch in that case (KIP-360); kafkajs cannot, so the next send goes through a new producer (a new
   * producer id, sequences from 0). A pull source's retry may then write its batch twice, which
   * at-least-once allows (the same event ids); nothing acknowledged is lost.
   */
  private async sendOnce(batch: SourceRecord<V>[], topicMessages: TopicMessages[]): Promise<void> {
    if (this.spoiled && this.producer) {
      const old = this.producer
      this.producer = this.newProducer()
      this.connected = false
      this.spoiled = false
      this.sessions++
      await old.disconnect().catch(() => undefined)
    }
    const producer = this.producer
    if (!producer) throw new RetriableError('source runner is not started', undefined, { connector: this.name })
    if (!this.connected) {
      try {
        await producer.connect()
        this.connected = true
      } catch (err) {
        throw new RetriableError(
          `Kafka unreachable: ${(err as Error).message}`,
          5000,
          { connector: this.name, stage: 'connect' },
          { cause: err },
        )
      }
    }
    try {
      await producer.sendBatch({ acks: -1, topicMessages })
    } catch (err) {
      this.spoiled = true
      throw new RetriableError(
        `produce failed: ${(err as Error).message}`,
        5000,
        { connector: this.name, stage: 'produce', topics: topicMessages.map((t) => t.topic) },
        { cause: err },
      )
    }
    this.stats.produced += batch.length
    this.stats.batches++
  }
}
