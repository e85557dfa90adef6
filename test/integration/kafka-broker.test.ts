/**
 * kafkajs 2.2.4 against the real broker: the operations the platform depends on.
 */
import { expect } from 'chai'
import { ConfigResourceTypes, ConfigSource, type Admin, type Consumer, type Kafka, type Producer } from 'kafkajs'
import { createTopicsReady, replicationFor } from '../../common/kafka/admin.ts'
import { testKafka, uniqueName, waitFor } from '../helpers/env.ts'

describe('Kafka broker (kafkajs against the real local broker)', function () {
  this.timeout(90_000)
  let kafka: Kafka
  let admin: Admin
  let producer: Producer
  const consumers: Consumer[] = []
  const topics: string[] = []

  before(async () => {
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
  })

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.disconnect().catch(() => undefined)))
  })

  // Topics go only after the shared producer disconnected: a kafkajs producer refreshes metadata
  // of every topic it ever wrote to, and fails its next send when one of them was deleted.
  after(async () => {
    await producer.disconnect()
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined)
    await admin.disconnect()
  })

  async function createTopic(partitions: number): Promise<string> {
    const topic = uniqueName('broker')
    expect(await createTopicsReady(admin, [{ topic, numPartitions: partitions }])).to.deep.equal([topic])
    topics.push(topic)
    return topic
  }

  it('creates a topic with the requested partitions (admin), replicated as the cluster affords', async () => {
    const topic = await createTopic(4)
    const meta = await admin.fetchTopicMetadata({ topics: [topic] })
    expect(meta.topics[0]?.partitions).to.have.length(4)
    expect(await admin.listTopics()).to.include(topic)
    // one broker (the local stack): one copy, one replica acknowledges; three or more: three and two
    const { replicationFactor, minInsyncReplicas } = replicationFor((await admin.describeCluster()).brokers.length)
    for (const p of meta.topics[0]!.partitions) expect(p.replicas).to.have.length(replicationFactor)
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['min.insync.replicas'] }],
    })
    const isr = described.resources[0]!.configEntries[0]!
    expect([isr.configValue, isr.configSource]).to.deep.equal([String(minInsyncReplicas), ConfigSource.TOPIC_CONFIG])
  })

  it(
    'produces keyed messages with acks=all (idempotent producer) and a consumer ' +
      'group reads them all in per-key order',
    async () => {
      const topic = await createTopic(3)
      const keys = ['sku-1@wh-a', 'sku-2@wh-a', 'sku-3@wh-b', 'sku-4@wh-c', 'sku-5@wh-c']
      const N = 500
      const messages = Array.from({ length: N }, (_, i) => ({
        key: keys[i % keys.length]!,
        value: JSON.stringify({ seq: i }),
      }))
      for (let i = 0; i < N; i += 100) {
        const res = await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 100) })
        expect(res.every((r) => r.errorCode === 0)).to.equal(true)
      }
      const seen = new Map<string, number[]>()
      let count = 0
      const consumer = kafka.consumer({ groupId: uniqueName('group') })
      consumers.push(consumer)
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ message }) => {
          const key = message.key!.toString()
          const seq = (JSON.parse(message.value!.toString()) as { seq: number }).seq
          seen.set(key, [...(seen.get(key) ?? []), seq])
          count++
        },
      })
      await waitFor(() => count >= N, { timeoutMs: 30_000, what: `${N} messages` })
      expect(count).to.equal(N)
      for (const key of keys) {
        const seqs = seen.get(key)!
        expect(seqs).to.have.length(N / keys.length)
        expect(seqs).to.deep.equal(
          [...seqs].sort((a, b) => a - b),
          `per-key order of ${key}`,
        )
      }
    },
  )

  it('rebalances partitions when a second group member joins, and describeGroups shows both', async () => {
    const topic = await createTopic(4)
    const groupId = uniqueName('group')
    const assigned = new Map<string, number[]>()
    const start = async (name: string) => {
      const c = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500, rebalanceTimeout: 10_000 })
      consumers.push(c)
      c.on(c.events.GROUP_JOIN, (e) => {
        assigned.set(name, (e.payload.memberAssignment[topic] as number[] | undefined) ?? [])
      })
      await c.connect()
      await c.subscribe({ topic, fromBeginning: true })
      await c.run({ eachMessage: async () => undefined })
      return c
    }
    await start('a')
    await waitFor(() => assigned.get('a')?.length === 4, { what: 'first member owns all 4 partitions' })
    await start('b')
    await waitFor(() => assigned.get('a')?.length === 2 && assigned.get('b')?.length === 2, {
      timeoutMs: 30_000,
      what: 'partitions split 2/2',
    })
    expect([...assigned.get('a')!, ...assigned.get('b')!].sort()).to.deep.equal([0, 1, 2, 3])
    const described = await admin.describeGroups([groupId])
    expect(described.groups[0]?.state).to.equal('Stable')
    expect(described.groups[0]?.members).to.have.length(2)
  })

  it("resets a group's offsets to the earliest (admin), so the group reads everything again", async () => {
    const topic = await createTopic(1)
    const groupId = uniqueName('group')
    await producer.send({ topic, acks: -1, messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] })
    const readAll = async () => {
      const got: string[] = []
      const c = kafka.consumer({ groupId })
      consumers.push(c)
      await c.connect()
      await c.subscribe({ topic, fromBeginning: true })
      await c.run({ eachMessage: async ({ message }) => void got.push(message.value!.toString()) })
      await waitFor(() => got.length >= 3, { what: 'three messages' })
      await c.disconnect()
      return got
    }
    expect(await readAll()).to.deep.equal(['a', 'b', 'c'])
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    expect(committed[0]?.partitions[0]?.offset).to.equal('3')
    await admin.resetOffsets({ groupId, topic, earliest: true })
    const reset = await admin.fetchOffsets({ groupId, topics: [topic] })
    // kafkajs commits the "earliest" sentinel (-2); the consumer then starts from the log start.
    expect(['-2', '0']).to.include(reset[0]?.partitions[0]?.offset)
    expect(await readAll()).to.deep.equal(['a', 'b', 'c'])
  })

  it('the idempotent producer writes each message exactly once across retries of a batch', async () => {
    const topic = await createTopic(1)
    const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 5 } })
    await p.connect()
    try {
      for (let i = 0; i < 20; i++) await p.send({ topic, acks: -1, messages: [{ key: 'k', value: String(i) }] })
    } finally {
      await p.disconnect()
    }
    const offsets = await admin.fetchTopicOffsets(topic)
    expect(offsets[0]?.high).to.equal('20')
  })
})
