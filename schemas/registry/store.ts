/**
 * The registry's storage: the compacted, single-partition topic `_schemas` (created when missing),
 * read from the beginning by every instance into a RegistryState (see state.ts for the record format
 * and the rule that lets several instances write without a leader). `append` answers once this
 * instance has consumed the record it wrote, so a caller always reads its own writes.
 */
import { randomUUID } from 'node:crypto'
import {
  type Admin,
  type Consumer,
  createAdmin,
  createConsumer,
  createProducer,
  createTopicsReady,
  type Kafka,
  type Producer,
} from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import { errors } from './errors.ts'
import { RegistryState } from './state.ts'

export interface StoreOptions {
  topic: string
  /** How long a write waits for its own record to come back, and start for the catch-up. */
  timeoutMs?: number
  groupPrefix?: string
}

interface Waiter {
  offset: number
  resolve: () => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

export class KafkaSchemaStore {
  readonly state = new RegistryState()
  readonly topic: string
  private readonly timeoutMs: number
  private readonly admin: Admin
  private readonly producer: Producer
  private readonly consumer: Consumer
  /** Offset of the last record applied; -1 before the first. */
  private applied = -1
  private waiters: Waiter[] = []
  private stopped = false

  constructor(
    kafka: Kafka,
    private readonly logger: Logger,
    options: StoreOptions,
  ) {
    this.topic = options.topic
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.admin = createAdmin(kafka)
    this.producer = createProducer(kafka, { maxInFlightRequests: 1 })
    // A group of its own, never committed: every instance reads the whole log at start.
    this.consumer = createConsumer(kafka, {
      groupId: `${options.groupPrefix ?? 'schema-registry'}-${randomUUID()}`,
      maxWaitTimeInMs: 250,
    })
  }

  async start(): Promise<void> {
    await this.admin.connect()
    await this.ensureTopic()
    await this.producer.connect()
    await this.consumer.connect()
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        this.state.apply(
          message.key ? message.key.toString('utf8') : null,
          message.value ? message.value.toString('utf8') : null,
          Number(message.timestamp),
        )
        this.advance(Number(message.offset))
      },
    })
    // Caught up: everything written before we started has been applied.
    const [end] = await this.admin.fetchTopicOffsets(this.topic)
    const high = Number(end?.high ?? 0)
    if (high > 0) await this.waitForOffset(high - 1)
    this.logger.info('schema store caught up', {
      topic: this.topic,
      offset: high,
      schemas: this.state.schemas.size,
      subjects: this.state.subjects.size,
    })
  }

  private async ensureTopic(): Promise<void> {
    const created = await createTopicsReady(this.admin, [
      {
        topic: this.topic,
        numPartitions: 1,
        replicationFactor: -1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ])
    if (created.length > 0) this.logger.info('created the schema log topic', { topic: this.topic })
    const meta = await this.admin.fetchTopicMetadata({ topics: [this.topic] })
    const partitions = meta.topics[0]?.partitions.length ?? 0
    if (partitions !== 1)
      throw errors.store(`topic ${this.topic} has ${partitions} partitions; the schema log needs exactly 1`)
  }

  private advance(offset: number): void {
    this.applied = offset
    if (this.waiters.length === 0) return
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (w.offset <= offset) {
        clearTimeout(w.timer)
        w.resolve()
      } else still.push(w)
    }
    this.waiters = still
  }

  waitForOffset(offset: number): Promise<void> {
    if (this.applied >= offset) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        offset,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w)
          reject(
            errors.timeout(
              `the schema log did not reach offset ${offset} within ${this.timeoutMs} ms (at ${this.applied})`,
            ),
          )
        }, this.timeoutMs),
      }
      this.waiters.push(w)
    })
  }

  /** Appends one record (null value: tombstone) and waits until this instance has applied it. */
  async append(key: string, value: string | null): Promise<number> {
    if (this.stopped) throw errors.store('the registry is shutting down')
    let offset: number
    try {
      const [meta] = await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key, value, partition: 0 }] })
      offset = Number(meta?.baseOffset ?? meta?.offset)
    } catch (err) {
      throw errors.store(`could not write to ${this.topic}: ${(err as Error).message}`)
    }
    if (!Number.isFinite(offset))
      throw errors.store(`the broker did not return the offset of the record written to ${this.topic}`)
    await this.waitForOffset(offset)
    return offset
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.reject(errors.store('the registry is shutting down'))
    }
    this.waiters = []
    await Promise.allSettled([this.consumer.disconnect(), this.producer.disconnect(), this.admin.disconnect()])
  }
}
