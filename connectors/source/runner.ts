/**
 * The source runner: one per source instance. It drives a SourceConnector (poll → encode → produce →
 * commit), and owns everything the plug-ins share:
 *
 * - batching: each poll's records go out as one produce request (up to `maxBatch`);
 * - Avro in the Confluent wire format through the serde, key and value schemas of the topic's
 *   contracts (TopicNameStrategy subjects), registered or found once per topic;
 * - keys and CloudEvents envelope headers (event id UUIDv7, type, source, time, traceparent);
 * - a kafkajs idempotent producer, acks=all, one request in flight (per-key order survives retries);
 * - `commit(records)` only after the broker acked them; a failed commit is retried, never produced
 *   again; a failed produce is retried for pull sources and reported with `fail` for push sources;
 * - start / pause / resume / stop, and recovery after a crash (see SourceConnector.recovery).
 */
import { Partitioners, type Kafka, type Message, type Producer } from 'kafkajs'
import type { Logger } from '../../common/logger.ts'
import { DataError, RetriableError } from '../../common/errors.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { HEADER, envelope, newTraceparent, toHeaders } from '../../schemas/headers.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { keySubject, valueSubject, type TopicSpec } from '../../schemas/topics.ts'
import { POSITION_HEADER, scanPositions } from './recovery.ts'
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
  logger: Logger
  /** Records per produce request at most (a longer poll is split). Default 2000. */
  maxBatch?: number
  /** Pause after an empty poll, in ms. Default 100. */
  idleMs?: number
  /** Retry schedule of a pull source's failed produce: first delay and cap, in ms. */
  retryBackoffMs?: number
  retryBackoffMaxMs?: number
  /**
   * kafkajs producer retries before a produce counts as failed (then `fail` or our own retry).
   * Bounded so that a push source can answer 503 in seconds rather than hang while Kafka is down.
   */
  producerRetry?: { retries: number; maxRetryTime: number; initialRetryTime?: number }
}

interface TopicIds {
  keyId: number
  valueId: number
  subject: string
  version: number
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })

export class SourceRunner<C = unknown, V = unknown> {
  readonly name: string
  readonly source: string
  private readonly log: Logger
  private readonly topics: Map<string, TopicSpec>
  private readonly ids = new Map<string, Promise<TopicIds>>()
  private readonly maxBatch: number
  private readonly idleMs: number
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
    this.topics = new Map(opts.topics.map((t) => [t.name, t]))
    this.maxBatch = opts.maxBatch ?? 2000
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
    const r = this.opts.producerRetry ?? { retries: 5, maxRetryTime: 5000, initialRetryTime: 200 }
    this.producer = this.opts.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: r.retries, maxRetryTime: r.maxRetryTime, initialRetryTime: r.initialRetryTime ?? 200 },
    })
    this.producer.on(this.producer.events.DISCONNECT, () => {
      this.connected = false
    })
    const ctx: SourceContext = { name: this.name, source: this.source, logger: this.opts.logger.child({ connector: this.name }), signal: this.abort.signal }
    await this.connector.start(this.config, ctx)
    try {
      const rec = this.connector.recovery?.()
      if (rec && this.connector.reconcile) {
        const positions = await scanPositions(this.opts.kafka, rec.topics, rec.sinceMs, this.source, this.log)
        if (positions.length > 0) this.log.info('recovered positions produced after the last commit', { count: positions.length })
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

  /** Key/value schema ids and the value schema version of a topic (registered once). */
  topicIds(topic: string): Promise<TopicIds> {
    let p = this.ids.get(topic)
    if (!p) {
      const spec = this.topics.get(topic)
      if (!spec) return Promise.reject(new DataError(`topic ${topic} is not one of this source's topics`, { connector: this.name, topic }))
      p = (async () => {
        const keyId = await this.opts.serde.register(keySubject(topic), contractSchema(spec.keySchema))
        const subject = valueSubject(topic)
        const valueSchema = contractSchema(spec.valueSchema)
        const valueId = await this.opts.serde.register(subject, valueSchema)
        const found = await this.opts.serde.client.lookup(subject, valueSchema)
        return { keyId, valueId, subject, version: found.version }
      })()
      p.catch(() => this.ids.delete(topic))
      this.ids.set(topic, p)
    }
    return p
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal
    let retryDelay = this.opts.retryBackoffMs ?? 500
    const retryMax = this.opts.retryBackoffMaxMs ?? 10_000
    let pending: SourceRecord<V>[] | undefined // a pull source's batch awaiting a retry
    while (!signal.aborted) {
      if (this._state === 'paused') {
        await this.resumeWaiter?.promise
        continue
      }
      let records: SourceRecord<V>[]
      if (pending) {
        records = pending
      } else {
        const t0 = Date.now()
        records = await this.connector.poll()
        if (records.length === 0) {
          const waited = Date.now() - t0
          if (waited < this.idleMs) await sleep(this.idleMs - waited, signal)
          continue
        }
      }
      for (let i = 0; i < records.length; i += this.maxBatch) {
        const batch = i === 0 && records.length <= this.maxBatch ? records : records.slice(i, i + this.maxBatch)
        try {
          await this.produce(batch)
        } catch (err) {
          this.stats.failedBatches++
          const e = err as Error
          if (this.connector.fail) {
            this.log.warn('produce failed; reported to the source', { code: (e as { code?: string }).code ?? 'RETRIABLE', count: batch.length, err: e })
            this.connector.fail(batch, e)
            continue
          }
          if (e instanceof DataError) throw e
          // Pull source: keep the unacked rest of the poll and try again after a pause.
          pending = records.slice(i)
          this.log.warn('produce failed; retrying', { code: 'RETRIABLE', count: pending.length, retryInMs: retryDelay, err: e })
          await sleep(retryDelay, signal)
          retryDelay = Math.min(retryMax, retryDelay * 2)
          break
        }
        if (pending) pending = undefined
        retryDelay = this.opts.retryBackoffMs ?? 500
        await this.commit(batch, signal)
      }
    }
  }

  private async commit(batch: SourceRecord<V>[], signal: AbortSignal): Promise<void> {
    if (!this.connector.commit) return
    let delay = 200
    for (;;) {
      try {
        await this.connector.commit(batch)
        return
      } catch (err) {
        // The records are in Kafka; only the resume point is missing. Never produce them again.
        this.stats.commitRetries++
        this.log.warn('commit failed; retrying', { code: 'RETRIABLE', stage: 'commit', err })
        if (signal.aborted) return
        await sleep(delay)
        delay = Math.min(5000, delay * 2)
      }
    }
  }

  /** Encodes and produces one batch; resolves when the broker acked all of it (acks=all). */
  async produce(batch: SourceRecord<V>[]): Promise<void> {
    const byTopic = new Map<string, Message[]>()
    // Records without a trace context share one root per produce request (the span that produced them).
    const batchTrace = newTraceparent()
    for (const r of batch) {
      const ids = await this.topicIds(r.topic)
      const env = envelope({
        type: r.type,
        source: this.source,
        schemaSubject: ids.subject,
        schemaVersion: ids.version,
        ...(r.id ? { id: r.id } : {}),
        ...(r.occurredAt ? { occurredAt: r.occurredAt } : {}),
        traceparent: r.traceparent ?? batchTrace,
      })
      r.id = env.id
      const headers = toHeaders(env)
      if (r.position !== undefined) headers[POSITION_HEADER] = JSON.stringify(r.position)
      if (r.publisherId !== undefined) headers[HEADER.publisherId] = r.publisherId
      const message: Message = {
        key: this.opts.serde.encodeSync(ids.keyId, r.key),
        value: this.opts.serde.encodeSync(ids.valueId, r.value),
        headers,
      }
      let list = byTopic.get(r.topic)
      if (!list) byTopic.set(r.topic, (list = []))
      list.push(message)
    }
    const producer = this.producer
    if (!producer) throw new RetriableError('source runner is not started', undefined, { connector: this.name })
    if (!this.connected) {
      try {
        await producer.connect()
        this.connected = true
      } catch (err) {
        throw new RetriableError(`Kafka unreachable: ${(err as Error).message}`, 5000, { connector: this.name, stage: 'connect' }, { cause: err })
      }
    }
    try {
      await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) })
    } catch (err) {
      throw new RetriableError(`produce failed: ${(err as Error).message}`, 5000, { connector: this.name, stage: 'produce', topics: [...byTopic.keys()] }, { cause: err })
    }
    this.stats.produced += batch.length
    this.stats.batches++
  }
}
