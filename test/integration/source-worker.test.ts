/**
 * Two source workers (as two worker processes would) over one control plane: exactly one runs a
 * source at any time; when its holder stops, the other takes the source over and its files flow.
 * Sources write to the platform's topics (inventory.levels: this suite's records are told apart by
 * their ce_source), and a source stored before the confinement checks existed fails to start.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Admin, Kafka } from 'kafkajs'
import type { Db, MongoClient } from 'mongodb'
import { createSecretBox, generateKeyRingEntry, parseKeyRing } from '../../common/secret-box.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { SourceWorker } from '../../connectors/source/worker.ts'
import { SourceRegistry } from '../../control-plane/sources.ts'
import { collections, ensureIndexes, newId } from '../../control-plane/store.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'
import { HEADER } from '../../schemas/headers.ts'
import { TOPICS } from '../../schemas/topics.ts'
import type { SourceDoc } from '../../control-plane/types.ts'
import { dropDatabaseLater, testKafka, testMongo, uniqueName, waitFor } from '../helpers/env.ts'
import { deleteTopics, quietLogger, startTestRegistry } from '../helpers/registry.ts'
import { closedPort, createTopics, readTopic, topicEnds } from '../helpers/sources.ts'

const PUBLISHER = 'org_000000000000000000000001'

describe('source worker: one instance per source across workers', function () {
  this.timeout(90_000)
  let registry: RegistryServer & { topic: string }
  let mongo: MongoClient
  let db: Db
  let kafka: Kafka
  let admin: Admin
  /** The drop root, and publisher PUBLISHER's drop folder in it. */
  let dropRoot: string
  let folder: string
  let serde: AvroSerde
  let from: Map<number, number>
  const topic = TOPICS.inventoryLevels.name
  const workers: SourceWorker[] = []
  const box = createSecretBox(parseKeyRing(generateKeyRingEntry('w1')))

  before(async () => {
    registry = await startTestRegistry()
    mongo = testMongo()
    await mongo.connect()
    db = mongo.db(uniqueName('srcw').slice(0, 50))
    dropDatabaseLater(db.databaseName)
    await ensureIndexes(db)
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
    dropRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'src-lease-'))
    folder = path.join(dropRoot, PUBLISHER)
    serde = new AvroSerde(new RegistryClient({ url: registry.url }))
    await createTopics(admin, [TOPICS.inventoryLevels])
    from = await topicEnds(admin, topic)
  })
  after(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()))
    await admin?.disconnect()
    await mongo?.close()
    await registry?.close()
    await deleteTopics(registry.topic)
    fs.rmSync(dropRoot, { recursive: true, force: true })
  })

  const make = (sources: SourceRegistry, id: string) =>
    new SourceWorker({
      registry: sources,
      db,
      kafka,
      serde,
      logger: quietLogger,
      urlGuard: createUrlGuard({ allowlist: '127.0.0.1' }),
      workerId: id,
      passMs: 200,
      leaseTtlMs: 2000,
      statusIntervalMs: 500,
      idleMs: 20,
    })
  const ofSource = async (name: string) =>
    (await readTopic(kafka, admin, serde, topic, 30_000, from)).filter(
      (r) => r.headers[HEADER.source] === `/sources/csv-drop/${name}`,
    )

  it('runs the source on exactly one worker, and hands it over when that worker stops', async () => {
    const cols = collections(db)
    const sources = new SourceRegistry(cols, box, { dropRoot })
    const now = new Date()
    await cols.organizations.insertOne({
      _id: PUBLISHER,
      kind: 'publisher',
      name: 'Acme',
      slug: 'acme',
      profile: {},
      createdAt: now,
      updatedAt: now,
      version: 1,
    })
    const name = uniqueName('lease').slice(0, 40)
    const admin0 = { keyId: 'test', scope: 'admin' as const, organizationId: null }
    await sources.create(admin0, {
      name,
      kind: 'csv-drop',
      publisherId: PUBLISHER,
      config: { dir: 'lease', settleMs: 0, scanIntervalMs: 50, constants: { unitOfMeasure: 'EA', locationId: 'L1' } },
    })
    const dir = path.join(folder, 'lease')
    const [w1, w2] = [make(sources, 'w1'), make(sources, 'w2')]
    workers.push(w1, w2)
    await Promise.all([w1.start(), w2.start()])
    const holder = await waitFor(
      () => (w1.runnerOf(name)?.state === 'running' ? w1 : w2.runnerOf(name)?.state === 'running' ? w2 : undefined),
      { what: 'one worker running the source' },
    )
    const other = holder === w1 ? w2 : w1
    for (let i = 0; i < 10; i++) {
      expect(other.runnerOf(name), 'the source runs on both workers').to.equal(undefined)
      await new Promise((r) => setTimeout(r, 100))
    }
    const lease = await db.collection('source_leases').findOne({})
    expect(lease!.workerId).to.equal(holder.workerId)

    await holder.stop()
    await waitFor(() => other.runnerOf(name)?.state === 'running', {
      timeoutMs: 20_000,
      what: 'the other worker taking over',
    })
    fs.writeFileSync(
      path.join(dir, 'x.tmp'),
      'sku,onHand,reserved,available,locationType,sequence\nA,1,0,1,WAREHOUSE,1\nB,2,0,2,WAREHOUSE,2\n',
    )
    fs.renameSync(path.join(dir, 'x.tmp'), path.join(dir, 'x.csv'))
    await waitFor(() => fs.existsSync(path.join(dir, 'processed', 'x.csv')), {
      timeoutMs: 30_000,
      what: 'x.csv processed by the new holder',
    })
    expect((await ofSource(name)).map((r) => r.value.sku)).to.have.members(['A', 'B'])
    const status = await cols.sourceStatus.findOne({})
    await waitFor(async () => (await cols.sourceStatus.findOne({}))?.workerId === other.workerId, {
      what: 'status from the new holder',
    })
    expect(status).to.not.equal(null)
  })

  it('reports a source that cannot start as failed, with its last error and without its secret', async () => {
    const cols = collections(db)
    const sources = new SourceRegistry(cols, box, { dropRoot })
    const port = await closedPort()
    const created = await sources.create(
      { keyId: 'test', scope: 'admin', organizationId: null },
      {
        name: uniqueName('dead').slice(0, 40),
        kind: 'mongodb',
        publisherId: PUBLISHER,
        config: {
          connectionString: `mongodb://reader:pw-secret-1@127.0.0.1:${port}/`,
          database: 'x',
          collection: 'y',
          mode: 'poll',
        },
      },
    )
    const s = await waitFor(
      async () => {
        const st = await cols.sourceStatus.findOne({ _id: created._id })
        return st?.state === 'failed' && st.lastError ? st : undefined
      },
      { timeoutMs: 30_000, what: 'failed status' },
    )
    expect(s.lastError!.message).to.match(/ECONNREFUSED|connect|Server selection/i)
    expect(JSON.stringify(s), 'the password in a status').to.not.include('pw-secret-1')
  })

  it(
    'a source stored before the confinement checks (another topic, a folder ' +
      'elsewhere, a link out) fails to start, naming the setting; nothing there is ' +
      'read',
    async () => {
      const cols = collections(db)
      const sources = new SourceRegistry(cols, box, { dropRoot })
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'src-outside-'))
      try {
        const stock = 'sku,onHand,reserved,available,locationType,sequence\nOUT,1,0,1,WAREHOUSE,1\n'
        fs.writeFileSync(path.join(outside, 'x.csv'), stock)
        fs.mkdirSync(path.join(folder, 'topic'), { recursive: true })
        fs.writeFileSync(path.join(folder, 'topic', 'x.csv'), stock)
        fs.symlinkSync(outside, path.join(folder, 'linked'))
        const constants = { unitOfMeasure: 'EA', locationId: 'L1' }
        // Written as an older version stored them, past today's checks.
        const legacy = (name: string, config: Record<string, unknown>): SourceDoc => {
          const now = new Date()
          return {
            _id: newId('src'),
            name,
            kind: 'csv-drop',
            publisherId: PUBLISHER,
            origin: 'api',
            config,
            desiredState: 'running',
            generation: 1,
            configVersion: 1,
            createdAt: now,
            updatedAt: now,
          }
        }
        const docs = [
          legacy(uniqueName('old-topic').slice(0, 40), {
            dir: 'topic',
            topic: 'deals.registrations',
            settleMs: 0,
            scanIntervalMs: 50,
            constants,
          }),
          legacy(uniqueName('old-dir').slice(0, 40), { dir: outside, settleMs: 0, scanIntervalMs: 50, constants }),
          legacy(uniqueName('old-link').slice(0, 40), { dir: 'linked', settleMs: 0, scanIntervalMs: 50, constants }),
        ]
        await cols.sources.insertMany(docs)
        const w = make(sources, 'w3')
        workers.push(w)
        await w.start()
        const failed = async (id: string) =>
          waitFor(
            async () => {
              const st = await cols.sourceStatus.findOne({ _id: id })
              return st?.state === 'failed' && st.lastError ? st.lastError : undefined
            },
            { timeoutMs: 30_000, what: `failed status of ${id}` },
          )
        const [topicErr, dirErr, linkErr] = [
          await failed(docs[0]!._id),
          await failed(docs[1]!._id),
          await failed(docs[2]!._id),
        ]
        expect(topicErr.code).to.equal('CONFIG_INVALID')
        expect(topicErr.message).to.include('config.topic must be inventory.levels')
        expect(dirErr.message).to.include("config.dir must be a folder inside the publisher's drop folder")
        expect(linkErr.message).to.include("config.dir leads out of the publisher's drop folder")
        await new Promise((r) => setTimeout(r, 500))
        expect(fs.readdirSync(outside), 'nothing created or moved outside').to.deep.equal(['x.csv'])
        expect(fs.readdirSync(path.join(folder, 'topic'))).to.deep.equal(['x.csv'])
        for (const d of docs) expect(await ofSource(d.name)).to.deep.equal([])
      } finally {
        fs.rmSync(outside, { recursive: true, force: true })
      }
    },
  )
})
