/**
 * `distributary migrate keys` against the real broker and a real registry: a topic of its own with the
 * inventory contracts, records under version-1 keys ({sku, locationId}) of two publishers that share a
 * SKU/location, an unstamped one, one whose value names another manufacturer, one whose version-2 key
 * already exists, one already deleted. The migration re-produces exactly the stamped rows under their
 * version-2 keys, tombstones every live version-1 key (with the envelope the sink runtime reads), and a
 * second run writes nothing; a dry run writes nothing at all. End to end, a MongoDB projection loses
 * its version-1 document and gains the version-2 one.
 */
import { expect } from 'chai'
import type { IHeaders, Kafka } from 'kafkajs'
import { migrateCommand } from '../../cli/migrate-keys-command.ts'
import {
  migrateKeys,
  MIGRATED_FROM_HEADER,
  MIGRATION_SOURCE,
  type MigrationReport,
  type TopicMigration,
} from '../../cli/migrate-keys.ts'
import { murmur2 } from '../../common/kafka/partitioner.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { mongoUri } from '../../config/index.ts'
import { sinkFactoryByType } from '../../consumers/index.ts'
import { MongoClientPool, mongoSinkFactory } from '../../consumers/mongodb/index.ts'
import { releasedVersions } from '../../schemas/contracts.ts'
import { envelope, fromHeaders, HEADER, isUuidV7, toHeaders } from '../../schemas/headers.ts'
import type { AvroSerde } from '../../schemas/serde/index.ts'
import { keySubject, registerTopicSchemas, TOPICS, valueSubject, type TopicSpec } from '../../schemas/topics.ts'
import { runCli } from '../helpers/cli.ts'
import { dropDatabaseLater, testConfig, testKafka, uniqueName, waitFor } from '../helpers/env.ts'
import { ADMIN, startSinkHarness } from '../helpers/sink-runtime.ts'
import { closedPort, readTopic, sourceSuite, topicEnds, uniqueTopic, type ReadRecord } from '../helpers/sources.ts'

const A = 'org-acme'
const B = 'org-globex'
const LOC = 'DE-HAM-1'

interface Ids {
  v1Key: number
  v2Key: number
  value: number
}

/** Registers version 1 of the key contract (as a platform before the upgrade did), then the current contracts. */
async function registerContracts(serde: AvroSerde, topic: TopicSpec): Promise<Ids> {
  const v1 = releasedVersions('inventory-level-key').find((v) => v.version === 1)!
  const v1Key = await serde.register(keySubject(topic.name), v1.schema)
  const { keyId, valueId } = (await registerTopicSchemas(serde, [topic]))[topic.name]!
  return { v1Key, v2Key: keyId, value: valueId }
}

const level = (manufacturerId: string, sku: string, seq: number) => ({
  manufacturerId,
  sku,
  gtin: null,
  locationId: LOC,
  locationType: 'WAREHOUSE',
  unitOfMeasure: 'EA',
  onHand: seq,
  reserved: 0,
  available: seq,
  incoming: [],
  safetyStock: null,
  sequence: seq,
  occurredAt: 1_700_000_000_000 + seq,
})

const headersOf = (topic: string, stamp: string | null): IHeaders => ({
  ...toHeaders(
    envelope({
      type: 'inventory.level.changed',
      source: '/sources/erp',
      schemaSubject: valueSubject(topic),
      schemaVersion: 1,
    }),
  ),
  ...(stamp ? { [HEADER.publisherId]: stamp } : {}),
})

/** Where one seeded record landed. */
interface Sent {
  partition: number
  offset: string
  value: Buffer | null
  headers: IHeaders
}

/**
 * The records written before the upgrade (and one after it), in order:
 *  shared: v1 {S-SHARED}: A seq 1, A seq 2, B seq 3 (two publishers' rows merged by the version-1 key)
 *  unstamped: v1 {S-UNSTAMPED}: no ce_publisherid (a source before the platform stamped)
 *  foreign: v1 {S-FOREIGN}: stamped A, value naming B
 *  newer: v1 {S-NEWER} stamped A, then v2 {A, S-NEWER} seq 20 (written after the upgrade)
 *  deleted: v1 {S-DELETED} stamped A, then its tombstone stamped A
 */
async function seed(kafka: Kafka, serde: AvroSerde, topic: TopicSpec, ids: Ids) {
  const producer = kafka.producer()
  await producer.connect()
  const v1Key = (sku: string) => serde.encodeSync(ids.v1Key, { sku, locationId: LOC })
  const send = async (key: Buffer, value: unknown, stamp: string | null): Promise<Sent> => {
    const headers = headersOf(topic.name, stamp)
    const bytes = value === null ? null : serde.encodeSync(ids.value, value)
    const [meta] = await producer.send({ topic: topic.name, acks: -1, messages: [{ key, value: bytes, headers }] })
    return { partition: meta!.partition, offset: String(meta!.baseOffset), value: bytes, headers }
  }
  try {
    const sent = {
      a1: await send(v1Key('S-SHARED'), level(A, 'S-SHARED', 1), A),
      a2: await send(v1Key('S-SHARED'), level(A, 'S-SHARED', 2), A),
      b3: await send(v1Key('S-SHARED'), level(B, 'S-SHARED', 3), B),
      unstamped: await send(v1Key('S-UNSTAMPED'), level(A, 'S-UNSTAMPED', 4), null),
      foreign: await send(v1Key('S-FOREIGN'), level(B, 'S-FOREIGN', 5), A),
      newerV1: await send(v1Key('S-NEWER'), level(A, 'S-NEWER', 6), A),
      newerV2: await send(
        serde.encodeSync(ids.v2Key, { manufacturerId: A, sku: 'S-NEWER', locationId: LOC }),
        level(A, 'S-NEWER', 20),
        A,
      ),
      deleted: await send(v1Key('S-DELETED'), level(A, 'S-DELETED', 7), A),
      deletedTombstone: await send(v1Key('S-DELETED'), null, A),
    }
    return { sent, v1Key }
  } finally {
    await producer.disconnect()
  }
}

const str = (h: IHeaders, name: string) => {
  const v = h[name]
  return v === undefined ? undefined : Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
}
const textOf = (h: IHeaders) => Object.fromEntries(Object.keys(h).map((k) => [k, str(h, k)!]))
const v1Text = (sku: string) => JSON.stringify({ sku, locationId: LOC })
const v2Text = (m: string, sku: string) => JSON.stringify({ manufacturerId: m, sku, locationId: LOC })

/** What the first run must report (the same in a dry run). */
function expectFirstRun(t: TopicMigration, sent: Awaited<ReturnType<typeof seed>>['sent']) {
  expect(t).to.deep.include({
    exists: true,
    recordsScanned: 9,
    undecodableKeys: 0,
    v1Keys: 5,
    v1KeysLive: 4,
    v2Keys: 1,
    keptNewer: 1,
    tombstonedKeys: 4,
    tombstones: 5,
  })
  expect(t.reproduced.count).to.equal(2)
  expect(
    t.reproduced.first
      .map((r) => ({ key: r.key, offset: r.offset, to: r.to, publisherId: r.publisherId }))
      .sort((a, b) => a.to.localeCompare(b.to)),
  ).to.deep.equal(
    [
      { key: v1Text('S-SHARED'), offset: sent.a2.offset, to: v2Text(A, 'S-SHARED'), publisherId: A },
      { key: v1Text('S-SHARED'), offset: sent.b3.offset, to: v2Text(B, 'S-SHARED'), publisherId: B },
    ].sort((a, b) => a.to.localeCompare(b.to)),
  )
  expect(t.skipped.count).to.equal(2)
  const skipped = [...t.skipped.first].sort((a, b) => a.key.localeCompare(b.key))
  expect(
    skipped.map((s) => ({ key: s.key, partition: s.partition, offset: s.offset, publisherId: s.publisherId })),
  ).to.deep.equal([
    { key: v1Text('S-FOREIGN'), partition: sent.foreign.partition, offset: sent.foreign.offset, publisherId: A },
    {
      key: v1Text('S-UNSTAMPED'),
      partition: sent.unstamped.partition,
      offset: sent.unstamped.offset,
      publisherId: null,
    },
  ])
  expect(skipped[0]!.reason).to.match(/manufacturerId \(org-globex\) is not the stamp org-acme/)
  expect(skipped[1]!.reason).to.match(/no ce_publisherid stamp/)
}

describe('distributary migrate keys: version-1 keys of a topic to version 2', function () {
  this.timeout(120_000)
  const suite = sourceSuite() // a registry of its own, a Kafka client, fresh topics deleted afterwards

  const freshTopic = async () => {
    const topic = await suite.topic()
    const ids = await registerContracts(suite.serde, topic)
    return { topic, ids, ...(await seed(suite.kafka, suite.serde, topic, ids)) }
  }

  it(
    're-produces each stamped row under its version-2 key, tombstones every live ' +
      'version-1 key, reports the rest; a second run writes nothing',
    async () => {
      const { topic, ids, sent } = await freshTopic()
      const before = await topicEnds(suite.admin, topic.name)

      // the command's function, with this test's registry, client and topic (its --json answer)
      let out = ''
      let err = ''
      const code = await migrateCommand(
        testConfig(),
        ['keys'],
        { dryRun: false, json: true },
        { kafka: suite.kafka, serde: suite.serde, topics: [topic] },
        {
          out: { write: (s: string) => ((out += s), true) } as never,
          err: { write: (s: string) => ((err += s), true) } as never,
        },
      )
      expect(code, err).to.equal(0)
      const report = JSON.parse(out) as MigrationReport
      expect(report.dryRun).to.equal(false)
      expect(report.topics).to.have.length(1)
      expectFirstRun(report.topics[0]!, sent)

      const written = await readTopic(suite.kafka, suite.admin, suite.serde, topic.name, 30_000, before)
      const values = written.filter((r) => r.value !== null)
      const tombstones = written.filter((r) => r.value === null)

      // exactly two records under version-2 keys: A's latest row and B's, with their values unchanged
      expect(values.map((r) => JSON.stringify(r.key)).sort()).to.deep.equal(
        [v2Text(A, 'S-SHARED'), v2Text(B, 'S-SHARED')].sort(),
      )
      const check = async (r: ReadRecord, from: Sent, stamp: string) => {
        expect(r.value).to.deep.equal(await suite.serde.decode(from.value!)) // the row's latest value, unchanged
        expect(r.value.manufacturerId).to.equal(stamp)
        // where the platform's partitioner puts the version-2 key
        const keyBytes = suite.serde.encodeSync(ids.v2Key, { manufacturerId: stamp, sku: 'S-SHARED', locationId: LOC })
        expect(r.partition).to.equal((murmur2(keyBytes) & 0x7fffffff) % topic.partitions)
        const original = textOf(from.headers)
        expect(r.headers[HEADER.id]).to.satisfy(isUuidV7).and.not.equal(original[HEADER.id])
        expect(r.headers[MIGRATED_FROM_HEADER]).to.equal(`${topic.name}/${from.partition}/${from.offset}`)
        expect(r.headers).to.deep.equal({
          ...original,
          [HEADER.id]: r.headers[HEADER.id],
          [MIGRATED_FROM_HEADER]: r.headers[MIGRATED_FROM_HEADER],
        })
      }
      await check(
        values.find((r) => r.key.manufacturerId === A)!,
        sent.a2,
        A,
      )
      await check(
        values.find((r) => r.key.manufacturerId === B)!,
        sent.b3,
        B,
      )
      expect(values.find((r) => r.key.manufacturerId === A)!.value.sequence).to.equal(2)

      // tombstones: every live version-1 key, in its partition, once per live row's stamp (none for the unstamped row)
      const summary = tombstones
        .map((r) => ({
          key: JSON.stringify(r.key),
          partition: r.partition,
          publisherId: r.headers[HEADER.publisherId] ?? null,
        }))
        .sort((a, b) => (a.key + a.publisherId).localeCompare(b.key + b.publisherId))
      expect(summary).to.deep.equal(
        [
          { key: v1Text('S-SHARED'), partition: sent.a1.partition, publisherId: A },
          { key: v1Text('S-SHARED'), partition: sent.a1.partition, publisherId: B },
          { key: v1Text('S-UNSTAMPED'), partition: sent.unstamped.partition, publisherId: null },
          { key: v1Text('S-FOREIGN'), partition: sent.foreign.partition, publisherId: A },
          { key: v1Text('S-NEWER'), partition: sent.newerV1.partition, publisherId: A },
        ].sort((a, b) => (a.key + a.publisherId).localeCompare(b.key + b.publisherId)),
      )
      for (const t of tombstones) {
        // the envelope the sink runtime reads (fromHeaders throws on a missing or malformed header)
        const env = fromHeaders(t.headers)
        expect(env).to.include({
          type: 'inventory.level.changed',
          source: MIGRATION_SOURCE,
          schemaSubject: valueSubject(topic.name),
          schemaVersion: 1,
        })
        expect(t.headers[HEADER.contentType]).to.equal('application/vnd.confluent.avro')
      }
      expect(written).to.have.length(7)

      // a second run: the version-1 rows are tombstones now, the version-2 keys exist
      const again = await topicEnds(suite.admin, topic.name)
      const second = await migrateKeys(
        { config: testConfig(), kafka: suite.kafka, serde: suite.serde },
        { topics: [topic], dryRun: false },
      )
      expect(second.topics[0]).to.deep.include({
        recordsScanned: 16,
        v1Keys: 5,
        v1KeysLive: 0,
        v2Keys: 3,
        keptNewer: 0,
        tombstonedKeys: 0,
        tombstones: 0,
      })
      expect(second.topics[0]!.reproduced.count).to.equal(0)
      expect(second.topics[0]!.skipped.count).to.equal(0)
      expect(await topicEnds(suite.admin, topic.name)).to.deep.equal(again)
    },
  )

  it('--dry-run reports what the migration would do and writes nothing', async () => {
    const { topic, sent } = await freshTopic()
    const before = await topicEnds(suite.admin, topic.name)
    const report = await migrateKeys(
      { config: testConfig(), kafka: suite.kafka, serde: suite.serde },
      { topics: [topic], dryRun: true },
    )
    expect(report.dryRun).to.equal(true)
    expectFirstRun(report.topics[0]!, sent)
    expect(await topicEnds(suite.admin, topic.name)).to.deep.equal(before)

    // the text a person reads, through the command's function
    let out = ''
    const code = await migrateCommand(
      testConfig(),
      ['keys'],
      { dryRun: true, json: false },
      { kafka: suite.kafka, serde: suite.serde, topics: [topic] },
      { out: { write: (s: string) => ((out += s), true) } as never, err: { write: () => true } as never },
    )
    expect(code).to.equal(0)
    expect(out).to.contain('dry run: nothing was written')
    expect(out).to.contain(`${topic.name}: 9 records read, 5 version-1 keys (4 with live rows), 1 version-2 keys`)
    expect(out).to.match(/\n {2}to re-produce under a version-2 key +2\n/)
    expect(out).to.contain(
      `\n      ${v1Text('S-UNSTAMPED')} (partition ${sent.unstamped.partition} ` +
        `offset ${sent.unstamped.offset}): no ce_publisherid stamp`,
    )
    expect(out).to.contain(
      `\n      ${v1Text('S-SHARED')} (partition ${sent.b3.partition} offset ` +
        `${sent.b3.offset}) -> ${v2Text(B, 'S-SHARED')}\n`,
    )
    expect(out).to.match(/\n {2}version-1 keys to tombstone +4 {2}\(5 tombstones\)\n/)
    expect(await topicEnds(suite.admin, topic.name)).to.deep.equal(before)
  })

  it('a topic that does not exist is reported, not created', async () => {
    const topic = uniqueTopic(TOPICS.dealRegistrations)
    const report = await migrateKeys(
      { config: testConfig(), kafka: suite.kafka, serde: suite.serde },
      { topics: [topic], dryRun: false },
    )
    expect(report.topics[0]).to.deep.include({ topic: topic.name, exists: false, recordsScanned: 0, tombstones: 0 })
    expect(await suite.admin.listTopics()).to.not.include(topic.name)
  })

  describe('the distributary binary', () => {
    it('exits 1 naming SCHEMA_REGISTRY_URL when the registry does not answer, 2 on an unknown --topic', async () => {
      const port = await closedPort()
      const r = await runCli(
        ['migrate', 'keys', '--dry-run'],
        { SCHEMA_REGISTRY_URL: `http://127.0.0.1:${port}` },
        60_000,
      )
      expect(r.code, r.err).to.equal(1)
      expect(r.err).to.contain(`cannot reach the schema registry at http://127.0.0.1:${port}`)
      expect(r.err).to.contain('SCHEMA_REGISTRY_URL')
      expect(r.out).to.equal('')

      const builtIn = await runCli(['migrate', 'keys'], { SCHEMA_REGISTRY_URL: '', SCHEMA_REGISTRY_PORT: '0' }, 60_000)
      expect(builtIn.code, builtIn.err).to.equal(1)
      expect(builtIn.err).to.contain('SCHEMA_REGISTRY_PORT')

      const bad = await runCli(['migrate', 'keys', '--topic', 'partners.profiles'], {}, 60_000)
      expect(bad.code).to.equal(2)
      expect(bad.err).to.contain('--topic must be one of inventory.levels, deals.registrations, all')
    })
  })
})

describe('distributary migrate keys: a MongoDB projection follows the migration', function () {
  this.timeout(120_000)

  it('the version-1 document is deleted by the tombstone and the row arrives under its version-2 key', async () => {
    const h = await startSinkHarness()
    const pool = new MongoClientPool({
      guard: createUrlGuard({ allowlist: '127.0.0.1' }),
      logger: h.logger,
      settings: { serverSelectionTimeoutMs: 3000 },
    })
    const partnerDb = uniqueName('partner').slice(0, 40)
    dropDatabaseLater(partnerDb)
    try {
      const ids = await registerContracts(h.serde, h.topic)
      const r = await h.cp.createSubscription(ADMIN, {
        partnerId: h.partnerId,
        name: 'mirror',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'mongodb', connectionString: mongoUri(testConfig()), database: partnerDb, collection: 'levels' },
        deliveryPolicy: { retrySchedule: [0.05, 0.1, 0.2], timeoutMs: 2000 },
      })
      await h.worker({}, {}, sinkFactoryByType({ mongodb: mongoSinkFactory(pool, h.cp, [h.topic]) }))
      await waitFor(async () => (await h.cp.getConnector(ADMIN, r.subscription._id)).status?.state === 'running', {
        what: 'running',
      })
      const docs = async () =>
        (await h.mongo.db(partnerDb).collection('levels').find({}).sort({ _id: 1 }).toArray()).map((d) => ({
          _id: d._id,
          onHand: d.onHand,
        }))

      // a row written before the upgrade: version-1 key, stamped by the platform
      await h.producer.send({
        topic: h.topic.name,
        messages: [
          {
            key: h.serde.encodeSync(ids.v1Key, { sku: 'S-OLD', locationId: LOC }),
            value: h.serde.encodeSync(ids.value, level(h.publisherId, 'S-OLD', 7)),
            headers: headersOf(h.topic.name, h.publisherId),
          },
        ],
      })
      await waitFor(async () => (await docs()).length === 1, { what: 'the version-1 document' })
      expect(await docs()).to.deep.equal([{ _id: v1Text('S-OLD'), onHand: 7 }])

      const report = await migrateKeys(
        { config: testConfig(), kafka: testKafka(), serde: h.serde },
        { topics: [h.topic], dryRun: false },
      )
      expect(report.topics[0]).to.deep.include({ tombstonedKeys: 1, tombstones: 1 })
      expect(report.topics[0]!.reproduced.count).to.equal(1)
      await waitFor(
        async () =>
          JSON.stringify(await docs()) === JSON.stringify([{ _id: v2Text(h.publisherId, 'S-OLD'), onHand: 7 }]),
        { what: async () => `only the version-2 document, got ${JSON.stringify(await docs())}` },
      )
      expect(
        (await h.cp.deliveries.search({ subscriptionId: r.subscription._id, status: 'dead' }, { limit: 10 })).items,
      ).to.have.length(0)
    } finally {
      await h.close()
      await pool.close()
    }
  })
})
