/**
 * Two source workers (as two worker processes would) over one control plane: exactly one runs a
 * source at any time; when its holder stops, the other takes the source over and its files flow.
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
import { collections, ensureIndexes } from '../../control-plane/store.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'
import { dropDatabaseLater, testKafka, testMongo, uniqueName, waitFor } from '../helpers/env.ts'
import { deleteTopics, quietLogger, startTestRegistry } from '../helpers/registry.ts'
import { closedPort, countRecords } from '../helpers/sources.ts'

describe('source worker: one instance per source across workers', function () {
  this.timeout(90_000)
  let registry: RegistryServer & { topic: string }
  let mongo: MongoClient
  let db: Db
  let kafka: Kafka
  let admin: Admin
  let dir: string
  const topic = uniqueName('src-lease')
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
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'src-lease-'))
  })
  after(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()))
    await admin?.disconnect()
    await mongo?.close()
    await registry?.close()
    await deleteTopics(registry.topic, topic)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('runs the source on exactly one worker, and hands it over when that worker stops', async () => {
    const cols = collections(db)
    const sources = new SourceRegistry(cols, box)
    const now = new Date()
    await cols.organizations.insertOne({ _id: 'org_000000000000000000000001', kind: 'publisher', name: 'Acme', slug: 'acme', profile: {}, createdAt: now, updatedAt: now, version: 1 })
    const name = uniqueName('lease').slice(0, 40)
    const admin0 = { keyId: 'test', scope: 'admin' as const, organizationId: null }
    await sources.create(admin0, {
      name,
      kind: 'csv-drop',
      publisherId: 'org_000000000000000000000001',
      config: { dir, topic, settleMs: 0, scanIntervalMs: 50, constants: { manufacturerId: 'acme', unitOfMeasure: 'EA', locationId: 'L1' } },
    })
    const serde = new AvroSerde(new RegistryClient({ url: registry.url }))
    const make = (id: string) => new SourceWorker({ registry: sources, db, kafka, serde, logger: quietLogger, urlGuard: createUrlGuard({ allowlist: '127.0.0.1' }), workerId: id, passMs: 200, leaseTtlMs: 2000, statusIntervalMs: 500, idleMs: 20 })
    const [w1, w2] = [make('w1'), make('w2')]
    workers.push(w1, w2)
    await Promise.all([w1.start(), w2.start()])
    const holder = await waitFor(() => (w1.runnerOf(name)?.state === 'running' ? w1 : w2.runnerOf(name)?.state === 'running' ? w2 : undefined), { what: 'one worker running the source' })
    const other = holder === w1 ? w2 : w1
    for (let i = 0; i < 10; i++) {
      expect(other.runnerOf(name), 'the source runs on both workers').to.equal(undefined)
      await new Promise((r) => setTimeout(r, 100))
    }
    const lease = await db.collection('source_leases').findOne({})
    expect(lease!.workerId).to.equal(holder.workerId)

    await holder.stop()
    await waitFor(() => other.runnerOf(name)?.state === 'running', { timeoutMs: 20_000, what: 'the other worker taking over' })
    fs.writeFileSync(path.join(dir, 'x.tmp'), 'sku,onHand,reserved,available,locationType,sequence\nA,1,0,1,WAREHOUSE,1\nB,2,0,2,WAREHOUSE,2\n')
    fs.renameSync(path.join(dir, 'x.tmp'), path.join(dir, 'x.csv'))
    await waitFor(() => fs.existsSync(path.join(dir, 'processed', 'x.csv')), { timeoutMs: 30_000, what: 'x.csv processed by the new holder' })
    expect(await countRecords(admin, topic)).to.equal(2)
    const status = await cols.sourceStatus.findOne({})
    await waitFor(async () => (await cols.sourceStatus.findOne({}))?.workerId === other.workerId, { what: 'status from the new holder' })
    expect(status).to.not.equal(null)
  })

  it('reports a source that cannot start as failed, with its last error and without its secret', async () => {
    const cols = collections(db)
    const sources = new SourceRegistry(cols, box)
    const port = await closedPort()
    const created = await sources.create({ keyId: 'test', scope: 'admin', organizationId: null }, {
      name: uniqueName('dead').slice(0, 40),
      kind: 'mongodb',
      publisherId: 'org_000000000000000000000001',
      config: { connectionString: `mongodb://reader:pw-secret-1@127.0.0.1:${port}/`, database: 'x', collection: 'y', mode: 'poll', topic },
    })
    const s = await waitFor(async () => {
      const st = await cols.sourceStatus.findOne({ _id: created._id })
      return st?.state === 'failed' && st.lastError ? st : undefined
    }, { timeoutMs: 30_000, what: 'failed status' })
    expect(s.lastError!.message).to.match(/ECONNREFUSED|connect|Server selection/i)
    expect(JSON.stringify(s), 'the password in a status').to.not.include('pw-secret-1')
  })
})
