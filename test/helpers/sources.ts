/** Helpers of the source connector tests: unique topics from the declared specs, and reading them back. */
import net from 'node:net'
import type { Admin, IHeaders, Kafka } from 'kafkajs'
import { topicConfig, type TopicSpec } from '../../schemas/topics.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { testKafka, uniqueName } from './env.ts'

/** A copy of a declared topic under a unique name. */
export function uniqueTopic<T extends TopicSpec>(spec: T, what = spec.name.replace(/\./g, '-')): TopicSpec {
  return { ...spec, name: uniqueName(what) }
}

/** Creates topics without kafkajs' waitForLeaders (unreliable on a fresh KRaft broker), then polls the metadata. */
export async function createTopics(admin: Admin, specs: TopicSpec[]): Promise<void> {
  await admin.createTopics({ topics: specs.map((s) => topicConfig(s)), waitForLeaders: false })
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.name) })
      const ready = specs.every((s) => {
        const m = meta.topics.find((t) => t.name === s.name)
        return m !== undefined && m.partitions.length === s.partitions && m.partitions.every((p) => p.leader >= 0)
      })
      if (ready) return
    } catch {
      // not in the metadata yet
    }
    if (Date.now() > deadline) throw new Error(`topics ${specs.map((s) => s.name).join(', ')} have no leaders`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Number of records in a topic (sum of high watermarks minus low). */
export async function countRecords(admin: Admin, topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic)
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

/** Reads every record of a topic (all partitions, up to the current end), decoded. */
export async function readTopic(kafka: Kafka, admin: Admin, serde: AvroSerde, topic: string, timeoutMs = 30_000): Promise<ReadRecord[]> {
  const ends = await admin.fetchTopicOffsets(topic)
  const want = new Map(ends.filter((o) => Number(o.high) > Number(o.low)).map((o) => [o.partition, Number(o.high)]))
  if (want.size === 0) return []
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 200 })
  const out: ReadRecord[] = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading ${topic}: only ${out.length} records within ${timeoutMs} ms`)), timeoutMs)
      const done = new Set<number>()
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            const off = Number(message.offset)
            const high = want.get(partition)
            if (high === undefined || off >= high) return
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
        .catch(reject)
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
