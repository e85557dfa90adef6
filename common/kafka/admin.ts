/**
 * Topic creation that is reliable on KRaft: a topic the controller created reaches the broker's
 * metadata cache a moment later, and until then kafkajs' own `waitForLeaders` fails with
 * UNKNOWN_TOPIC_OR_PARTITION (which it does not retry) and a produce fails with "does not host this
 * topic-partition". Even once the metadata names a leader, that broker may answer NOT_LEADER to a
 * ListOffsets for a moment longer. So create without waiting, then poll until every partition has a
 * leader in the metadata and the leaders answer for their offsets.
 */
import type { Admin, ITopicConfig } from 'kafkajs'
import { sleep } from '../timers.ts'

export async function waitForTopicLeaders(
  admin: Admin,
  topics: Array<{ topic: string; numPartitions?: number }>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: string
  for (;;) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) })
      const pending = topics.filter((t) => {
        const m = meta.topics.find((x) => x.name === t.topic)
        if (!m || m.partitions.length === 0) return true
        if (t.numPartitions !== undefined && t.numPartitions > 0 && m.partitions.length < t.numPartitions) return true
        return m.partitions.some((p) => p.leader < 0)
      })
      if (pending.length === 0) {
        // throws NOT_LEADER while the leader is not serving yet
        for (const t of topics) await admin.fetchTopicOffsets(t.topic)
        return
      }
      last = `waiting for leaders of ${pending.map((t) => t.topic).join(', ')}`
    } catch (err) {
      last = err instanceof Error ? err.message : String(err)
    }
    if (Date.now() > deadline) throw new Error(`topics not ready within ${timeoutMs} ms: ${last}`)
    await sleep(100)
  }
}

/**
 * How many copies of each partition a topic gets on a cluster of `brokers` live brokers, and on how
 * many of them a write (acks=all) must land before it is acknowledged: three copies and two
 * acknowledging replicas when there are three brokers or more (one broker may fail and no acknowledged
 * event is lost, nor is producing stopped), fewer copies on a smaller cluster, and then one replica
 * acknowledges (a second one would stop every write while a broker is down).
 */
export function replicationFor(brokers: number): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = Math.max(1, Math.min(3, brokers))
  return { replicationFactor, minInsyncReplicas: replicationFactor >= 3 ? 2 : 1 }
}

/**
 * The topics with the replication the cluster affords: a topic that names no replication factor (or
 * -1, the broker's default) gets `replicationFor(live brokers)` and its min.insync.replicas, unless
 * it sets that itself. Counted when the topics are created: a cluster missing a broker then gets
 * fewer copies.
 */
export async function withClusterReplication(admin: Admin, topics: ITopicConfig[]): Promise<ITopicConfig[]> {
  if (topics.every((t) => t.replicationFactor !== undefined && t.replicationFactor !== -1)) return topics
  const { replicationFactor, minInsyncReplicas } = replicationFor((await admin.describeCluster()).brokers.length)
  return topics.map((t) => {
    if (t.replicationFactor !== undefined && t.replicationFactor !== -1) return t
    const entries = t.configEntries ?? []
    const isr = entries.some((e) => e.name === 'min.insync.replicas')
      ? []
      : [{ name: 'min.insync.replicas', value: String(minInsyncReplicas) }]
    return { ...t, replicationFactor, configEntries: [...entries, ...isr] }
  })
}

/**
 * Creates the topics that do not exist yet (replicated as `withClusterReplication` says) and returns
 * once all of them can be produced to.
 */
export async function createTopicsReady(admin: Admin, topics: ITopicConfig[], timeoutMs = 30_000): Promise<string[]> {
  const existing = new Set(await admin.listTopics())
  const missing = topics.filter((t) => !existing.has(t.topic))
  if (missing.length > 0) {
    try {
      await admin.createTopics({ topics: await withClusterReplication(admin, missing), waitForLeaders: false })
    } catch (err) {
      // Another process may have created one of them meanwhile: that is fine, the wait below decides.
      const e = err as { type?: string; errors?: Array<{ type?: string }> }
      const onlyExists =
        e.type === 'TOPIC_ALREADY_EXISTS' || (e.errors ?? []).every((x) => x.type === 'TOPIC_ALREADY_EXISTS')
      if (!onlyExists || (e.errors === undefined && e.type === undefined)) throw err
    }
  }
  await waitForTopicLeaders(admin, topics, timeoutMs)
  return missing.map((t) => t.topic)
}
