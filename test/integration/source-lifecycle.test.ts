/**
 * Source connectors as resources, against the real broker and store through a running platform:
 * declared through the management API and in configuration (SOURCES_FILE), run by the worker role,
 * started, paused, resumed and stopped without a restart; paused survives a platform restart;
 * config faults are named by field; a publisher sees only its own sources; a MongoDB source's
 * connection string is sealed at rest and never returned. Confinement: a csv-drop folder stays in its
 * publisher's drop folder (<drop root>/<publisher id>/), and a source writes only to its contract's
 * topic: the sources here write to inventory.levels (records told apart by their ce_source).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { Admin } from 'kafkajs'
import { MongoClient } from 'mongodb'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { mongoUri } from '../../config/index.ts'
import { HEADER } from '../../schemas/headers.ts'
import { TOPICS } from '../../schemas/topics.ts'
import { testKafka, testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { readTopic, topicEnds } from '../helpers/sources.ts'
import { runCli } from '../helpers/cli.ts'

const MAPPING = {
  columns: {
    sku: 'Item No',
    locationId: 'Warehouse',
    onHand: 'On Hand',
    reserved: 'Allocated',
    available: 'Available',
    sequence: 'Seq',
  },
  constants: { unitOfMeasure: 'EA' }, // manufacturerId: the source's owner, filled by the platform
}
const HEADER_ROW = 'Item No,Description,Warehouse,On Hand,Allocated,Available,Seq'

/** Writes a stock file atomically (a .tmp renamed to .csv), so the source never sees half a file. */
function drop(dir: string, name: string, rows: number, seq0 = 1): void {
  fs.mkdirSync(dir, { recursive: true }) // made by the source when it starts, which may not have happened yet
  const lines = [HEADER_ROW]
  for (let i = 0; i < rows; i++) lines.push(`SKU-${i % 7},Bolt,DE-HAM,${10 + i},0,${10 + i},${seq0 + i}`)
  fs.writeFileSync(path.join(dir, `${name}.tmp`), lines.join('\n') + '\n')
  fs.renameSync(path.join(dir, `${name}.tmp`), path.join(dir, name))
}

const cli = (args: string[], env: NodeJS.ProcessEnv) => runCli(args, env)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('source connectors: declared, run and controlled by the platform', function () {
  this.timeout(120_000)
  const { config, adminKey } = testPlatformConfig('sources')
  const logger = createLogger({ level: 'error', write: () => undefined })
  /** The drop root: publisher P's drop folder is <root>/<P's id>, the sources' folders (cfg, api) are in it. */
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sources-'))
  const dirs = { cfg: '', api: '' }
  const topic = TOPICS.inventoryLevels.name
  const cfgName = uniqueName('cfg').slice(0, 40)
  const slug = `acme-${uniqueName('p').slice(-8)}`
  let platform: Platform
  let admin: Admin
  let keys: { P: string; Q: string; A: string }
  let orgs: { P: string; Q: string }
  let apiSource: string
  let apiName: string
  /** inventory.levels' end offsets before the suite: its records are read from there on. */
  let from: Map<number, number>

  const call = async (method: string, p: string, body?: unknown, key = adminKey) => {
    const res = await fetch(platform.url + p, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, body: (text ? JSON.parse(text) : null) as any, text }
  }
  const status = async (id: string) => (await call('GET', `/v1/sources/${id}/status`)).body
  const processed = (dir: string, name: string) => fs.existsSync(path.join(dir, 'processed', name))
  /** The records a source produced to inventory.levels during this suite. */
  const recordsOf = async (kind: string, name: string) =>
    (await readTopic(testKafka(), admin, (await platform.contracts).serde, topic, 30_000, from)).filter(
      (r) => r.headers[HEADER.source] === `/sources/${kind}/${name}`,
    )
  const countOf = async (kind: string, name: string) => (await recordsOf(kind, name)).length

  before(async () => {
    const file = path.join(root, 'sources.json')
    fs.writeFileSync(
      file,
      JSON.stringify([
        {
          name: cfgName,
          kind: 'csv-drop',
          publisher: slug,
          config: { dir: 'cfg', settleMs: 0, scanIntervalMs: 50, ...MAPPING },
        },
      ]),
    )
    config.sources.file = file
    config.worker.statusIntervalMs = 1000
    config.management.rateLimit = { perSecond: 1000, burst: 1000 }
    config.sources.dropRoot = root
    platform = await startPlatform(config, logger, { stopStackOnClose: false })
    admin = testKafka().admin()
    await admin.connect()
    await platform.contracts
    from = await topicEnds(admin, topic)
    const org = async (kind: string, s: string) => {
      const r = await call('POST', '/v1/organizations', { kind, name: s, slug: s })
      expect(r.status, r.text).to.equal(201)
      return r.body.id as string
    }
    orgs = { P: await org('publisher', slug), Q: await org('publisher', `${slug}-q`) }
    dirs.cfg = path.join(root, orgs.P, 'cfg')
    dirs.api = path.join(root, orgs.P, 'api')
    const partner = await org('partner', `${slug}-a`)
    const key = async (scope: string, organizationId: string) =>
      (await call('POST', '/v1/api-keys', { scope, organizationId, name: 'k' })).body.key as string
    keys = { P: await key('publisher', orgs.P), Q: await key('publisher', orgs.Q), A: await key('partner', partner) }
  })

  after(async () => {
    await admin?.disconnect()
    await platform?.close()
    fs.rmSync(root, { recursive: true, force: true })
  })

  it(
    'a source declared in configuration is created once its publisher exists, ' +
      'starts with the platform, and its file reaches Kafka',
    async () => {
      const listed = await waitFor(
        async () => {
          const r = await call('GET', '/v1/sources')
          return r.body.items.find((s: any) => s.origin === 'config')
        },
        { what: 'the declared source' },
      )
      expect(listed.kind).to.equal('csv-drop')
      expect(listed.publisherId).to.equal(orgs.P)
      expect(listed.desiredState).to.equal('running')
      drop(dirs.cfg, 'cfg-1.csv', 20)
      await waitFor(() => processed(dirs.cfg, 'cfg-1.csv'), { timeoutMs: 30_000, what: 'cfg-1.csv processed' })
      expect(await countOf('csv-drop', cfgName)).to.equal(20)
      const s = await waitFor(
        async () => {
          const st = await status(listed.id)
          return st.state === 'running' && st.counts.produced === 20 ? st : undefined
        },
        { what: 'status with counts' },
      )
      expect(s.workerId).to.be.a('string')
      expect(s.position.filesDone).to.equal(1)
      // Declared in configuration: changed there, not through the API.
      const patch = await call('PATCH', `/v1/sources/${listed.id}`, { config: { dir: 'cfg' } })
      expect(patch.status).to.equal(409)
      expect(patch.body.errors[0].field).to.equal('origin')
    },
  )

  it(
    "declared through the API (publisher key): a dropped file's rows reach Kafka " + "with the source's ce_source",
    async () => {
      const r = await call(
        'POST',
        '/v1/sources',
        {
          name: uniqueName('api').slice(0, 40),
          kind: 'csv-drop',
          config: { dir: 'api', topic, settleMs: 0, scanIntervalMs: 50, ...MAPPING },
        },
        keys.P,
      )
      expect(r.status, r.text).to.equal(201)
      expect(r.body.publisherId).to.equal(orgs.P)
      expect(r.body.origin).to.equal('api')
      apiSource = r.body.id
      apiName = r.body.name
      await waitFor(async () => (await status(apiSource)).state === 'running', { what: 'running' })
      drop(dirs.api, 'a.csv', 30)
      await waitFor(() => processed(dirs.api, 'a.csv'), { timeoutMs: 30_000, what: 'a.csv processed' })
      const records = await recordsOf('csv-drop', apiName)
      expect(records).to.have.length(30)
      expect(records.map((x) => x.value.sequence).sort((a: number, b: number) => a - b)).to.deep.equal(
        Array.from({ length: 30 }, (_, i) => i + 1),
      )
      expect(records[0]!.headers[HEADER.source]).to.equal(`/sources/csv-drop/${r.body.name}`)
    },
  )

  it('pause: a new file is not processed; resume: it is', async () => {
    const paused = await call('PUT', `/v1/sources/${apiSource}/pause`, undefined, keys.P)
    expect(paused.status).to.equal(202)
    expect(paused.body.desiredState).to.equal('paused')
    await waitFor(async () => (await status(apiSource)).state === 'paused', { what: 'paused' })
    const before = await countOf('csv-drop', apiName)
    drop(dirs.api, 'b.csv', 10, 100)
    await sleep(3000)
    expect(processed(dirs.api, 'b.csv'), 'processed while paused').to.equal(false)
    expect(fs.existsSync(path.join(dirs.api, 'b.csv'))).to.equal(true)
    expect(await countOf('csv-drop', apiName)).to.equal(before)
    expect((await call('PUT', `/v1/sources/${apiSource}/resume`, undefined, keys.P)).body.desiredState).to.equal(
      'running',
    )
    await waitFor(() => processed(dirs.api, 'b.csv'), { timeoutMs: 30_000, what: 'b.csv processed after resume' })
    expect(await countOf('csv-drop', apiName)).to.equal(before + 10)
  })

  it('stop: the instance goes and a new file waits; start: it runs again from its resume point', async () => {
    expect((await call('PUT', `/v1/sources/${apiSource}/stop`, undefined, keys.P)).status).to.equal(202)
    const st = await waitFor(
      async () => {
        const s = await status(apiSource)
        return s.state === 'stopped' ? s : undefined
      },
      { what: 'stopped' },
    )
    expect(st.pendingChanges).to.equal(false)
    const before = await countOf('csv-drop', apiName)
    drop(dirs.api, 'c.csv', 5, 200)
    await sleep(2500)
    expect(processed(dirs.api, 'c.csv'), 'processed while stopped').to.equal(false)
    expect((await call('PUT', `/v1/sources/${apiSource}/start`, undefined, keys.P)).body.desiredState).to.equal(
      'running',
    )
    await waitFor(() => processed(dirs.api, 'c.csv'), { timeoutMs: 30_000, what: 'c.csv processed after start' })
    expect(await countOf('csv-drop', apiName)).to.equal(before + 5)
  })

  it('config faults: 400 by the document (each kind its settings), 422 by the plug-in, naming it', async () => {
    // the settings' types, bounds, required and unknown ones are in the document (SourceCreate's if/then per kind)
    for (const [config, field] of [
      [{ dir: 'relative/dir', batchRows: 0 }, 'config.batchRows'],
      [{ dir: 'relative/dir', bogus: 1 }, 'config.bogus'],
      [{ dir: 'relative/dir', columns: { sku: 7 } }, 'config.columns.sku'],
    ] as const) {
      const bad = await call('POST', '/v1/sources', { name: 'bad-one', kind: 'csv-drop', config }, keys.P)
      expect(bad.status, bad.text).to.equal(400)
      expect(bad.body.errors.map((e: any) => e.field)).to.include(field)
    }
    const unknownType = await call(
      'POST',
      '/v1/sources',
      { name: 'bad-two', kind: 'csv-drop', config: { dir: 'x', eventType: 'no.such.event' } },
      keys.P,
    )
    expect(unknownType.status, unknownType.text).to.equal(400)
    expect(unknownType.body.errors.map((e: any) => e.field)).to.include('config.eventType')
    // what the plug-in checks beyond the document: its folder, its delimiter
    const bad2 = await call(
      'POST',
      '/v1/sources',
      { name: 'bad-two', kind: 'csv-drop', config: { dir: 'relative/../dir', delimiter: ';;' } },
      keys.P,
    )
    expect(bad2.status, bad2.text).to.equal(422)
    expect(bad2.body.errors.map((e: any) => e.field)).to.have.members(['config.dir', 'config.delimiter'])
    const missing = await call(
      'POST',
      '/v1/sources',
      { name: 'bad-three', kind: 'mongodb', config: { database: 'x' } },
      keys.P,
    )
    expect(missing.status, missing.text).to.equal(400)
    // (the validator names the first missing setting: it stops at the first error, as ajv advises for untrusted input)
    expect(missing.body.errors.map((e: any) => e.field)).to.include('config.connectionString')
    const kind = await call('POST', '/v1/sources', { name: 'bad-four', kind: 'ftp', config: {} }, keys.P)
    expect(kind.status).to.equal(400)
    expect(kind.body.errors.map((e: any) => e.field)).to.include('kind')
    const noPublisher = await call('POST', '/v1/sources', {
      name: 'bad-five',
      kind: 'csv-drop',
      config: { dir: 'api' },
    })
    expect(noPublisher.status).to.equal(422)
    expect(noPublisher.body.errors[0].field).to.equal('publisherId')
    const dup = await call('GET', `/v1/sources/${apiSource}`)
    const again = await call('POST', '/v1/sources', {
      name: dup.body.name,
      kind: 'csv-drop',
      publisherId: orgs.P,
      config: { dir: 'api' },
    })
    expect(again.status).to.equal(409)
    expect(again.body.errors[0].field).to.equal('name')
    const patch = await call('PATCH', `/v1/sources/${apiSource}`, { config: { dir: 'api', settleMs: -1 } }, keys.P)
    expect(patch.status).to.equal(422)
    expect(patch.body.errors[0].field).to.equal('config.settleMs')
  })

  it(
    "a csv-drop folder stays in its publisher's drop folder: .., elsewhere, " +
      "another publisher's folder, a symbolic link out and NUL are 422 naming the " +
      'setting, for an admin key too',
    async () => {
      const own = path.join(root, orgs.P)
      const theirs = path.join(root, orgs.Q)
      fs.mkdirSync(path.join(theirs, 'in'), { recursive: true })
      fs.mkdirSync(own, { recursive: true })
      fs.symlinkSync(theirs, path.join(own, 'to-q'))
      fs.symlinkSync(os.tmpdir(), path.join(own, 'to-tmp'))
      const create = (config: Record<string, unknown>, key = keys.P, publisherId?: string) =>
        call(
          'POST',
          '/v1/sources',
          {
            name: uniqueName('confined').slice(0, 40),
            kind: 'csv-drop',
            desiredState: 'stopped',
            ...(publisherId ? { publisherId } : {}),
            config,
          },
          key,
        )
      const refused = async (config: Record<string, unknown>, field: string, key = keys.P, publisherId?: string) => {
        const r = await create(config, key, publisherId)
        expect(r.status, `${JSON.stringify(config)}: ${r.text}`).to.equal(422)
        expect(
          r.body.errors.map((e: any) => e.field),
          JSON.stringify(config),
        ).to.deep.equal([field])
        return r.body.errors[0].message as string
      }
      expect(await refused({ dir: '../x' }, 'config.dir')).to.include("'..'")
      await refused({ dir: `in/../../${orgs.Q}/in` }, 'config.dir')
      expect(await refused({ dir: '/etc' }, 'config.dir')).to.include("publisher's drop folder")
      await refused({ dir: path.join(theirs, 'in') }, 'config.dir') // B's folder, absolute
      await refused({ dir: root }, 'config.dir') // the drop root itself
      expect(await refused({ dir: 'to-q' }, 'config.dir')).to.include('symbolic link')
      await refused({ dir: 'to-q/in' }, 'config.dir')
      await refused({ dir: 'to-tmp' }, 'config.dir')
      await refused({ dir: 'in\u0000x' }, 'config.dir')
      await refused({ dir: 'api', stateDir: '../state' }, 'config.stateDir')
      await refused({ dir: 'api', processedDir: '/tmp/done' }, 'config.processedDir')
      // An admin key declaring a source for a publisher: that publisher's folder, nothing else.
      await refused({ dir: path.join(own, 'api') }, 'config.dir', adminKey, orgs.Q)
      await refused({ dir: `../${orgs.Q}` }, 'config.dir', adminKey, orgs.P)
      const byAdmin = await create({ dir: path.join(theirs, 'in') }, adminKey, orgs.Q)
      expect(byAdmin.status, byAdmin.text).to.equal(201)
      // Inside: relative, or absolute inside the publisher's folder.
      const absolute = await create({ dir: path.join(own, 'abs') })
      expect(absolute.status, absolute.text).to.equal(201)
      expect(absolute.body.config.dir).to.equal(path.join(own, 'abs'))
      for (const id of [byAdmin.body.id, absolute.body.id])
        expect((await call('DELETE', `/v1/sources/${id}`)).status).to.equal(204)
      // The same rule on a change.
      const patch = await call('PATCH', `/v1/sources/${apiSource}`, { config: { dir: `../${orgs.Q}/in` } }, keys.P)
      expect(patch.status).to.equal(422)
      expect(patch.body.errors.map((e: any) => e.field)).to.deep.equal(['config.dir'])
    },
  )

  it(
    "a source writes only to its contract's topic: another topic is 422 naming " +
      'config.topic; partners.profiles is refused',
    async () => {
      const create = (kind: string, config: Record<string, unknown>) =>
        call(
          'POST',
          '/v1/sources',
          { name: uniqueName('topic').slice(0, 40), kind, desiredState: 'stopped', config },
          keys.P,
        )
      const mongo = { connectionString: 'mongodb://127.0.0.1:1/', database: 'x', collection: 'y' }
      for (const [kind, base] of [
        ['csv-drop', { dir: 'api' }],
        ['mongodb', mongo],
      ] as const) {
        const other = await create(kind, { ...base, topic: 'deals.registrations' })
        expect(other.status, other.text).to.equal(422)
        expect(other.body.errors).to.deep.equal([
          {
            field: 'config.topic',
            message:
              'must be inventory.levels, the topic of inventory.level.changed (or left ' +
              "out): a source writes only to its contract's topic",
          },
        ])
        const made = await create(kind, { ...base, topic: 'my-own-topic' })
        expect(made.body.errors?.map((e: any) => e.field)).to.deep.equal(['config.topic'])
        const profiles = await create(kind, { ...base, topic: 'partners.profiles' })
        expect(profiles.status).to.equal(422)
        expect(profiles.body.errors.map((e: any) => e.field)).to.deep.equal(['config.topic'])
        expect(profiles.body.errors[0].message).to.include('platform only')
        // not among the event types a source may publish (the document's list): a 400
        const profileEvents = await create(kind, { ...base, eventType: 'partner.profile.changed' })
        expect(profileEvents.status, profileEvents.text).to.equal(400)
        expect(profileEvents.body.errors.map((e: any) => e.field)).to.include('config.eventType')
        const deals = await create(kind, { ...base, eventType: 'deal.registered', topic: 'inventory.levels' })
        expect(deals.body.errors?.[0]).to.deep.include({ field: 'config.topic' })
        expect(deals.body.errors[0].message).to.include('must be deals.registrations')
      }
    },
  )

  it("a publisher sees and changes only its own sources (404 for others'), a partner none", async () => {
    const asQ = await call('GET', '/v1/sources', undefined, keys.Q)
    expect(asQ.status).to.equal(200)
    expect(asQ.body.items).to.deep.equal([])
    expect((await call('GET', `/v1/sources/${apiSource}`, undefined, keys.Q)).status).to.equal(404)
    expect((await call('GET', `/v1/sources/${apiSource}/status`, undefined, keys.Q)).status).to.equal(404)
    expect((await call('PUT', `/v1/sources/${apiSource}/pause`, undefined, keys.Q)).status).to.equal(404)
    expect((await call('DELETE', `/v1/sources/${apiSource}`, undefined, keys.Q)).status).to.equal(404)
    const otherOrg = await call(
      'POST',
      '/v1/sources',
      { name: 'q-for-p', kind: 'csv-drop', publisherId: orgs.P, config: { dir: 'api' } },
      keys.Q,
    )
    expect(otherOrg.status).to.equal(422)
    expect(otherOrg.body.errors[0].field).to.equal('publisherId')
    const asP = await call('GET', '/v1/sources', undefined, keys.P)
    expect(asP.body.items.map((s: any) => s.id)).to.include(apiSource)
    expect(asP.body.items.every((s: any) => s.publisherId === orgs.P)).to.equal(true)
    expect((await call('GET', '/v1/sources', undefined, keys.A)).body.items).to.deep.equal([])
    expect(
      (await call('POST', '/v1/sources', { name: 'a-src', kind: 'csv-drop', config: { dir: 'api' } }, keys.A)).status,
    ).to.equal(403)
    expect((await call('GET', `/v1/sources/${apiSource}`, undefined, keys.A)).status).to.equal(404)
    const page1 = await call('GET', '/v1/sources?limit=1')
    expect(page1.body.items).to.have.length(1)
    const page2 = await call('GET', `/v1/sources?limit=1&cursor=${page1.body.nextCursor}`)
    expect(page2.body.items[0].id).to.not.equal(page1.body.items[0].id)
  })

  it(
    'a MongoDB source: the connection string is sealed at rest and never ' +
      "returned; its collection's documents reach Kafka",
    async () => {
      const db = uniqueName('srcdb').slice(0, 40)
      const uri = mongoUri(config)
      const client = new MongoClient(uri)
      try {
        await client.connect()
        const now = Date.now()
        await client
          .db(db)
          .collection('stock')
          .insertMany(
            [1, 2, 3].map((i) => ({
              sku: `M-${i}`,
              locationId: 'L1',
              locationType: 'WAREHOUSE',
              unitOfMeasure: 'EA',
              onHand: i,
              reserved: 0,
              available: i,
              incoming: [],
              sequence: i,
              updatedAt: new Date(now - 10_000 + i),
            })),
          )
        // a document naming another manufacturer is refused, never published under the source's owner or the one it
        // names
        await client
          .db(db)
          .collection('stock')
          .insertOne({
            manufacturerId: 'org_globex',
            sku: 'M-X',
            locationId: 'L1',
            locationType: 'WAREHOUSE',
            unitOfMeasure: 'EA',
            onHand: 9,
            reserved: 0,
            available: 9,
            incoming: [],
            sequence: 9,
            updatedAt: new Date(now - 5_000),
          })
        const mongoName = uniqueName('mongo').slice(0, 40)
        const r = await call(
          'POST',
          '/v1/sources',
          {
            name: mongoName,
            kind: 'mongodb',
            config: { connectionString: uri, database: db, collection: 'stock', mode: 'poll', pollIntervalMs: 100 },
          },
          keys.P,
        )
        expect(r.status, r.text).to.equal(201)
        expect(r.body.config).to.not.have.property('connectionString')
        expect(r.body.config.secretsSet).to.deep.equal(['connectionString'])
        const stored = await platform.contracts.then(() =>
          client
            .db(config.mongodb.database)
            .collection('sources')
            .findOne({ _id: r.body.id } as never),
        )
        expect(stored!.config.connectionString).to.be.a('string').and.not.equal(uri)
        expect(JSON.stringify(stored)).to.not.include(uri)
        await waitFor(async () => (await countOf('mongodb', mongoName)) === 3, {
          timeoutMs: 30_000,
          what: '3 documents in Kafka',
        })
        const st = await waitFor(
          async () => {
            const s = await status(r.body.id)
            return s.counts.produced === 3 ? s : undefined
          },
          { what: 'mongodb status' },
        )
        expect(st.position.mode).to.equal('poll')
        expect(st.position.refused.count).to.equal(1)
        expect(st.position.refused.last.reason).to.include('org_globex')
        // A config change without the secret keeps it, and restarts the instance with the new config.
        const patched = await call(
          'PATCH',
          `/v1/sources/${r.body.id}`,
          { config: { database: db, collection: 'stock', mode: 'poll', topic, pollIntervalMs: 200 } },
          keys.P,
        )
        expect(patched.status, patched.text).to.equal(200)
        expect(patched.body.config.secretsSet).to.deep.equal(['connectionString'])
        await client.db(db).collection('stock').insertOne({
          sku: 'M-4',
          locationId: 'L1',
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand: 4,
          reserved: 0,
          available: 4,
          incoming: [],
          sequence: 4,
          updatedAt: new Date(),
        })
        await waitFor(async () => (await countOf('mongodb', mongoName)) === 4, {
          timeoutMs: 30_000,
          what: 'the 4th document after the config change',
        })
        expect((await call('DELETE', `/v1/sources/${r.body.id}`, undefined, keys.P)).status).to.equal(204)
        expect((await call('GET', `/v1/sources/${r.body.id}`, undefined, keys.P)).status).to.equal(404)
      } finally {
        await client
          .db(db)
          .dropDatabase()
          .catch(() => undefined)
        await client.close()
      }
    },
  )

  it("the CLI lists the sources, shows one's status, pauses and resumes it", async () => {
    const env = { DISTRIBUTARY_API_URL: platform.url, DISTRIBUTARY_API_KEY: keys.P }
    const name = (await call('GET', `/v1/sources/${apiSource}`)).body.name as string
    const list = await cli(['sources'], env)
    expect(list.code, list.err).to.equal(0)
    expect(list.out.split('\n')[0]).to.match(/^ID\s+NAME\s+KIND\s+PUBLISHER\s+DESIRED\s+STATE\s+PRODUCED/)
    expect(list.out).to.include(name)
    const st = await cli(['sources', 'status', apiSource, '--json'], env)
    expect(st.code, st.err).to.equal(0)
    expect(JSON.parse(st.out)).to.include({ id: apiSource, state: 'running', desiredState: 'running' })
    const paused = await cli(['sources', 'pause', apiSource], env)
    expect(paused.code, paused.err).to.equal(0)
    expect(paused.out).to.include('desired state paused')
    await waitFor(async () => (await status(apiSource)).state === 'paused', { what: 'paused by the CLI' })
    // `sources status --follow` follows the next import (paused now: the file waits until the resume).
    const following = cli(['sources', 'status', apiSource, '--follow'], env)
    await new Promise((r) => setTimeout(r, 1500))
    // few rows: they stay in the shared inventory.levels (a snapshot test reads it all)
    drop(dirs.api, 'follow.csv', 300, 5000)
    const resumed = await cli(['sources', 'resume', apiSource], env)
    expect(resumed.out).to.include('desired state running')
    await waitFor(async () => (await status(apiSource)).state === 'running', { what: 'resumed by the CLI' })
    const followed = await following
    expect(followed.code, followed.err).to.equal(0)
    expect(followed.err).to.match(/import follow\.csv: done, \d+ rows produced|1 file\(s\) imported, \d+ rows produced/)
  })

  it('paused survives a platform restart, and the declared source is not declared twice', async () => {
    expect((await call('PUT', `/v1/sources/${apiSource}/pause`, undefined, keys.P)).status).to.equal(202)
    await waitFor(async () => (await status(apiSource)).state === 'paused', { what: 'paused' })
    await platform.close()
    platform = await startPlatform(config, logger, { stopStackOnClose: false })
    await platform.sources
    const before = await countOf('csv-drop', apiName)
    drop(dirs.api, 'd.csv', 4, 300)
    await waitFor(
      async () => {
        const s = await status(apiSource)
        return s.state === 'paused' && s.reportedAt !== null
      },
      { what: 'paused after the restart' },
    )
    await sleep(2500)
    expect(processed(dirs.api, 'd.csv'), 'processed while paused').to.equal(false)
    expect(await countOf('csv-drop', apiName)).to.equal(before)
    const all = (await call('GET', '/v1/sources')).body.items
    expect(all.filter((s: any) => s.origin === 'config')).to.have.length(1)
    await call('PUT', `/v1/sources/${apiSource}/resume`, undefined, keys.P)
    await waitFor(() => processed(dirs.api, 'd.csv'), { timeoutMs: 30_000, what: 'd.csv processed after resume' })
    expect(await countOf('csv-drop', apiName)).to.equal(before + 4)
  })
})
