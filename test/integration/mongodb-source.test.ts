/**
 * The MongoDB collection source in polling mode against FerretDB (no change streams) and the real
 * broker: inserts and updates appear in order per key; a restart resumes from the stored watermark;
 * changes acked but not committed before a "crash" are not published again.
 */
import { expect } from 'chai'
import type { Admin, Kafka } from 'kafkajs'
import type { MongoClient } from 'mongodb'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { HEADER } from '../../schemas/headers.ts'
import { SourceRunner } from '../../connectors/source/runner.ts'
import { MongoDbSource, parseMongoSourceConfig } from '../../producers/mongodb/index.ts'
import { testKafka, testMongo, uniqueName, waitFor, dropDatabaseLater } from '../helpers/env.ts'
import { deleteTopics, quietLogger, startTestRegistry } from '../helpers/registry.ts'
import { countRecords, createTopics, readTopic, uniqueTopic } from '../helpers/sources.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

describe('mongodb collection source (polling, FerretDB)', function () {
  this.timeout(120_000)
  let registry: RegistryServer & { topic: string }
  let serde: AvroSerde
  let kafka: Kafka
  let admin: Admin
  let mongo: MongoClient
  let dbName: string
  let topic: TopicSpec

  before(async () => {
    registry = await startTestRegistry()
    serde = new AvroSerde(new RegistryClient({ url: registry.url }))
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
    topic = uniqueTopic(TOPICS.inventoryLevels)
    await createTopics(admin, [topic])
    mongo = testMongo()
    await mongo.connect()
    dbName = uniqueName('msrc').slice(0, 50)
  })
  after(async () => {
    dropDatabaseLater(dbName)
    await mongo?.close()
    await admin?.disconnect()
    await registry?.close()
    await deleteTopics(topic.name, registry.topic)
  })

  const doc = (sku: string, sequence: number, onHand: number) => ({
    manufacturerId: 'acme',
    sku,
    locationId: 'DE-HAM',
    locationType: 'WAREHOUSE',
    unitOfMeasure: 'EA',
    onHand,
    reserved: 0,
    available: onHand,
    incoming: [],
    safetyStock: null,
    sequence,
    occurredAt: new Date(),
    updatedAt: new Date(),
  })

  function runner(source: MongoDbSource) {
    return new SourceRunner(
      source,
      parseMongoSourceConfig({
        database: dbName,
        collection: 'inventory',
        mode: 'auto',
        topic: topic.name,
        pollIntervalMs: 50,
        batchSize: 7,
      }),
      {
        name: 'inventory-db',
        kafka,
        serde,
        topics: [topic],
        logger: quietLogger,
        idleMs: 20,
      },
    )
  }

  it(
    'publishes inserts and updates in order per key, and a restart resumes ' +
      'without loss or duplicates, even after acked-uncommitted changes',
    async () => {
      const coll = mongo.db(dbName).collection('inventory')
      const seq = new Map<string, number>()
      const bump = async (sku: string) => {
        const s = (seq.get(sku) ?? 0) + 1
        seq.set(sku, s)
        if (s === 1) await coll.insertOne(doc(sku, s, s * 10))
        else
          await coll.updateOne(
            { sku },
            { $set: { sequence: s, onHand: s * 10, available: s * 10, updatedAt: new Date(), occurredAt: new Date() } },
          )
      }
      const source1 = new MongoDbSource(mongo, [topic])
      const r1 = runner(source1)
      await r1.start()
      expect(source1.activeMode).to.equal('poll')
      for (let i = 0; i < 10; i++) await bump(`SKU-${i}`)
      await waitFor(async () => (await countRecords(admin, topic.name)) >= 10, { what: '10 inserts' })
      for (let round = 0; round < 3; round++) for (let i = 0; i < 10; i += 2) await bump(`SKU-${i}`)
      await waitFor(async () => (await countRecords(admin, topic.name)) >= 10, { what: 'updates' })

      // Simulated crash: from now on the broker acks but the resume point is never stored.
      source1.commit = async () => undefined
      await new Promise((r) => setTimeout(r, 300)) // the updates above may still be in flight
      const before = await countRecords(admin, topic.name)
      for (let i = 1; i < 10; i += 2) await bump(`SKU-${i}`)
      await waitFor(async () => (await countRecords(admin, topic.name)) >= before + 5, {
        what: 'acked-uncommitted updates',
      })
      await r1.stop()

      // While stopped: more changes.
      for (let i = 10; i < 13; i++) await bump(`SKU-${i}`)
      for (let i = 0; i < 4; i++) await bump(`SKU-${i}`)

      const source2 = new MongoDbSource(mongo, [topic])
      const r2 = runner(source2)
      await r2.start()
      try {
        const latest = [...seq.values()].reduce((a, b) => a + b, 0)
        // every published version per key appears exactly once; intermediate versions may collapse
        // when two updates fall between polls, so compare the final state and per-key order
        await waitFor(
          async () => {
            const recs = await readTopic(kafka, admin, serde, topic.name)
            return [...seq].every(([sku, s]) => recs.some((x) => x.value.sku === sku && x.value.sequence === s)) && recs
          },
          { timeoutMs: 30_000, what: `the latest version of every key (${latest} versions written)` },
        )
      } finally {
        await r2.stop()
      }
      const records = await readTopic(kafka, admin, serde, topic.name)
      const seen = new Set<string>()
      for (const x of records) {
        const id = `${x.value.sku}#${x.value.sequence}`
        expect(seen.has(id), `duplicate ${id}`).to.equal(false)
        seen.add(id)
        expect({ ...x.key }, 'the key carries its owner').to.deep.equal({
          manufacturerId: 'acme',
          sku: x.value.sku,
          locationId: 'DE-HAM',
        })
        expect(x.headers[HEADER.source]).to.equal('/sources/inventory-db')
      }
      for (const sku of seq.keys()) {
        const perKey = records.filter((x) => x.value.sku === sku)
        expect(new Set(perKey.map((x) => x.partition)).size).to.equal(1)
        const s = perKey.map((x) => x.value.sequence)
        expect(s, sku).to.deep.equal([...s].sort((a, b) => a - b))
        expect(s.at(-1)).to.equal(seq.get(sku))
      }
      expect(records.filter((x) => x.value.sku === 'SKU-11')).to.have.length(1)
    },
  )
})
