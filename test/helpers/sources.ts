/** Helpers of the source connector tests: unique topics from the declared specs, and reading them back. */
import net from 'node:net'
import type { Admin, IHeaders, Kafka } from 'kafkajs'
import type { RegistryServer } from '../../schemas/registry/index.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { ensureTopics, TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { testKafka, uniqueName, waitFor } from './env.ts'
import { deleteTopics, startTestRegistry } from './registry.ts'

/** A copy of a declared topic under a unique name. */
export function uniqueTopic<T extends TopicSpec>(spec: T, what = spec.name.replace(/\./g, '-')): TopicSpec {
  return { ...spec, name: uniqueName(what) }
}

/** Creates the topics (see common/kafka/admin.ts for why not kafkajs' waitForLeaders). */
export async function createTopics(admin: Admin, specs: TopicSpec[]): Promise<void> {
  await ensureTopics(admin, specs)
}

/** Number of records in a topic (sum of high watermarks minus low). */
export async function countRecords(admin: Admin, topic: string): Promise<number> {
  // Right after creation the broker may still answer NOT_LEADER for a moment: ask again.
  const offsets = await waitFor(() => admin.fetchTopicOffsets(topic), {
    timeoutMs: 10_000,
    what: `offsets of ${topic}`,
  })
  return offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0)
}

export interface ReadRecord {
  partition: number
  offset: number
  key: any
  value: any
  headers: Record<string, string>
}

const headerStrings = (h: IHeaders | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(h ?? {}).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('utf8') : String(v)]))

/** The end offset of each partition of a topic now (what `readTopic(..., since)` reads after). */
export async function topicEnds(admin: Admin, topic: string): Promise<Map<number, number>> {
  return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]))
}

/**
 * Reads every record of a topic (all partitions, up to the current end), decoded; with `since`
 * (topicEnds taken earlier), only the records written after it (a shared topic's own records).
 */
export async function readTopic(
  kafka: Kafka,
  admin: Admin,
  serde: AvroSerde,
  topic: string,
  timeoutMs = 30_000,
  since?: Map<number, number>,
): Promise<ReadRecord[]> {
  const ends = await admin.fetchTopicOffsets(topic)
  const from = (o: { partition: number; low: string }) => Math.max(Number(o.low), since?.get(o.partition) ?? 0)
  const want = new Map(ends.filter((o) => Number(o.high) > from(o)).map((o) => [o.partition, Number(o.high)]))
  if (want.size === 0) return []
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 200 })
  const out: ReadRecord[] = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topic}: only ${out.length} records within ${timeoutMs} ms`)),
        timeoutMs,
      )
      const done = new Set<number>()
      const running = consumer.run({
        eachMessage: async ({ partition, message }) => {
          const off = Number(message.offset)
          const high = want.get(partition)
          if (high === undefined || off >= high || off < (since?.get(partition) ?? 0)) return
          out.push({
            partition,
            offset: off,
            key: message.key ? await serde.decode(message.key) : null,
            value: message.value ? await serde.decode(message.value) : null,
            headers: headerStrings(message.headers),
          })
          if (off >= high - 1) done.add(partition)
          if (done.size === want.size) {
            clearTimeout(timer)
            resolve()
          }
        },
      })
      running.catch(reject)
      if (since)
        for (const o of ends)
          if (want.has(o.partition)) consumer.seek({ topic, partition: o.partition, offset: String(from(o)) })
    })
  } finally {
    await consumer.disconnect()
  }
  return out.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
}

/** A localhost port with nothing listening on it (a dead broker address). */
export async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((r) => server.close(() => r()))
  return port
}

export { testKafka }

/** What a source test suite runs against (see sourceSuite). */
export interface SourceSuite {
  registry: RegistryServer & { topic: string }
  serde: AvroSerde
  kafka: Kafka
  admin: Admin
  /** A fresh copy of inventory.levels, created now and deleted after the suite. */
  topic(): Promise<TopicSpec>
}

/**
 * Registers the before/after hooks of a source connector suite (call it inside describe()): a schema
 * registry of its own with a serde on it, a Kafka client and a connected admin, and fresh topics
 * that are deleted with the registry's topic after the suite. Its fields are set once `before` ran.
 */
export function sourceSuite(): SourceSuite {
  const topics: string[] = []
  const suite = {
    async topic(): Promise<TopicSpec> {
      const t = uniqueTopic(TOPICS.inventoryLevels)
      await createTopics(suite.admin, [t])
      topics.push(t.name)
      return t
    },
  } as SourceSuite
  before(async () => {
    suite.registry = await startTestRegistry()
    suite.serde = new AvroSerde(new RegistryClient({ url: suite.registry.url }))
    suite.kafka = testKafka()
    suite.admin = suite.kafka.admin()
    await suite.admin.connect()
  })
  after(async () => {
    await suite.admin?.disconnect()
    await suite.registry?.close()
    if (suite.registry) await deleteTopics(suite.registry.topic, ...topics)
  })
  return suite
}
