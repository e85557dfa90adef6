/**
 * The mongodb driver against the local MongoDB-compatible server (FerretDB), or MONGODB_URI.
 */
import { expect } from 'chai'
import type { Db, MongoClient } from 'mongodb'
import { testMongo, uniqueName, dropDatabaseLater } from '../helpers/env.ts'
import {
  bulkWriteBounded,
  changeToken,
  ensureIndexes,
  findByIds,
  INDEXES,
  isFerretDb,
  signalChange,
  upsertMany,
} from '../../control-plane/store.ts'

describe('MongoDB-compatible store (mongodb driver)', function () {
  let client: MongoClient
  let db: Db

  before(async () => {
    client = testMongo()
    await client.connect()
    db = client.db(uniqueName('db').replace(/-/g, '_').slice(0, 60))
  })

  after(async () => {
    dropDatabaseLater(db.databaseName)
    await client.close()
  })

  // FerretDB v1 holds a connection per update statement until its command ends (100 per database):
  // one bulk command replacing 300 existing documents, or 50 concurrent updates, never finished.
  it(
    'bulk replacements of many existing documents finish, also many of them at ' + 'once (bulkWriteBounded)',
    async function () {
      this.timeout(120_000)
      const col = db.collection<{ _id: string; round: number }>('bulk_bounded')
      const write = (round: number, from: number) =>
        bulkWriteBounded(
          col,
          Array.from({ length: 300 }, (_, i) => ({
            replaceOne: { filter: { _id: `c-${from + i}` }, replacement: { round }, upsert: true },
          })),
        )
      const deadline = <T>(p: Promise<T>, what: string) =>
        Promise.race([
          p,
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error(`${what}: no answer in 30 s (the store is stuck)`)), 30_000),
          ),
        ])
      await deadline(write(1, 0), 'first write (inserts)')
      await deadline(write(2, 0), 'second write (replacements)')
      await deadline(
        Promise.all([
          write(3, 0),
          write(3, 0),
          write(3, 0),
          ...Array.from({ length: 60 }, (_, i) => col.updateOne({ _id: `c-${i}` }, { $set: { round: 3 } })),
        ]),
        'concurrent writes',
      )
      expect(await col.countDocuments({ round: 3 })).to.equal(300)
      expect((await db.command({ ping: 1 })).ok).to.equal(1)
    },
  )

  it('answers ping', async () => {
    expect((await db.command({ ping: 1 })).ok).to.equal(1)
  })

  it('inserts and finds documents', async () => {
    const col = db.collection<{ sku: string; qty: number }>('inventory')
    await col.insertMany([
      { sku: 'A', qty: 1 },
      { sku: 'B', qty: 2 },
      { sku: 'C', qty: 3 },
    ])
    const found = await col.find({ qty: { $gte: 2 } }, { sort: { sku: 1 }, projection: { _id: 0 } }).toArray()
    expect(found).to.deep.equal([
      { sku: 'B', qty: 2 },
      { sku: 'C', qty: 3 },
    ])
  })

  it('upserts: the first update inserts, the second modifies', async () => {
    const col = db.collection<{ _id: string; qty: number }>('upserts')
    const first = await col.updateOne({ _id: 'sku-1' }, { $set: { qty: 5 } }, { upsert: true })
    expect(first.upsertedCount).to.equal(1)
    const second = await col.updateOne({ _id: 'sku-1' }, { $set: { qty: 7 } }, { upsert: true })
    expect(second.upsertedCount).to.equal(0)
    expect(second.modifiedCount).to.equal(1)
    expect(await col.findOne({ _id: 'sku-1' })).to.deep.equal({ _id: 'sku-1', qty: 7 })
  })

  it('a unique index rejects a duplicate with code 11000', async () => {
    const col = db.collection('keys')
    await col.createIndex({ prefix: 1 }, { unique: true })
    await col.insertOne({ prefix: 'dk_abc' })
    let code: unknown
    try {
      await col.insertOne({ prefix: 'dk_abc' })
    } catch (err) {
      code = (err as { code?: unknown }).code
    }
    expect(code).to.equal(11000)
    expect(await col.countDocuments({ prefix: 'dk_abc' })).to.equal(1)
  })

  it('findOneAndUpdate returns the document before or after the update', async () => {
    const col = db.collection<{ _id: string; seq: number }>('counters')
    await col.insertOne({ _id: 'ids', seq: 0 })
    const before = await col.findOneAndUpdate({ _id: 'ids' }, { $inc: { seq: 1 } }, { returnDocument: 'before' })
    expect(before).to.deep.equal({ _id: 'ids', seq: 0 })
    const after = await col.findOneAndUpdate({ _id: 'ids' }, { $inc: { seq: 1 } }, { returnDocument: 'after' })
    expect(after).to.deep.equal({ _id: 'ids', seq: 2 })
    expect(await col.findOneAndUpdate({ _id: 'missing' }, { $inc: { seq: 1 } })).to.equal(null)
  })

  // FerretDB v1 does not isolate concurrent updates of one document (two $inc can both read the
  // old value). What the platform relies on instead is that a unique key admits exactly one of many
  // concurrent inserts: idempotency records, claims and leases are inserts, not counters.
  it('a unique key admits exactly one of many concurrent inserts', async () => {
    const col = db.collection('claims')
    await col.createIndex({ key: 1 }, { unique: true })
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => col.insertOne({ key: 'evt-1', writer: i })),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1)
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code?: number }).code).to.equal(11000)
    expect(await col.countDocuments({ key: 'evt-1' })).to.equal(1)
  })

  it(
    'FerretDB (the local stack) reads, updates and upserts by _id through the _id ' +
      'index, not a scan of the collection',
    async function () {
      if (!(await isFerretDb(db))) this.skip() // a real MongoDB: its _id index is not in question
      const col = db.collection<{ _id: string; n: number }>('by_id')
      await col.insertMany(Array.from({ length: 2000 }, (_, i) => ({ _id: `doc-${i}`, n: i })))
      // the plan of a query by _id (stack/ferretdb.ts FERRETDB_PATCHES: the stock v1.24.2 says SCAN)
      const plan = (await db.command({ explain: { find: 'by_id', filter: { _id: 'doc-5' } } })) as {
        queryPlanner?: { Plan?: string[] }
      }
      expect(plan.queryPlanner?.Plan?.join(' '), JSON.stringify(plan)).to.match(/SEARCH .* USING INDEX/)
      // updates and upserts by _id (the same WHERE clause, in UPDATE statements) still do what they should
      await col.updateOne({ _id: 'doc-7' }, { $set: { n: -1 } })
      await col.updateOne({ _id: 'doc-new' }, { $set: { n: -2 } }, { upsert: true })
      expect(
        await col
          .find({ n: { $lt: 0 } })
          .sort({ _id: 1 })
          .toArray(),
      ).to.deep.equal([
        { _id: 'doc-7', n: -1 },
        { _id: 'doc-new', n: -2 },
      ])
    },
  )

  it('finds documents by many ids (an _id range, picked) and by a few (`$in`) alike', async () => {
    const col = db.collection<{ _id: string; n: number }>('by_ids')
    await col.insertMany(Array.from({ length: 1200 }, (_, i) => ({ _id: `d-${String(i).padStart(4, '0')}`, n: i })))
    const many = Array.from({ length: 600 }, (_, i) => `d-${String(i * 2).padStart(4, '0')}`) // every other one
    const found = await findByIds(col, [...many, 'd-missing'])
    expect(found.map((d) => d._id).sort()).to.deep.equal([...many].sort())
    const few = await findByIds(col, ['d-0007', 'd-0300', 'd-missing'], { _id: 1 })
    expect(few.map((d) => d._id).sort()).to.deep.equal(['d-0007', 'd-0300'])
    expect(few[0]).to.not.have.property('n')
    expect(await findByIds(col, [])).to.deep.equal([])
  })

  it('upsertMany inserts the new documents and replaces those that existed', async function () {
    this.timeout(60_000)
    const col = db.collection<{ _id: string; v: number; old?: boolean }>('upsert_many')
    await col.insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: `u-${i * 80}`, v: 0, old: true })))
    await upsertMany(
      col,
      Array.from({ length: 2500 }, (_, i) => ({ _id: `u-${i}`, v: i })),
    )
    const docs = await col.find({}).toArray()
    expect(docs).to.have.length(2500)
    expect(
      docs.every((d) => d.v === Number(d._id.slice(2)) && d.old === undefined),
      'every one as written',
    ).to.equal(true)
  })

  it('a change signal gets a new token at every change, also from many writers at once', async () => {
    const col = db.collection<{ _id: string; token: string; at: Date }>('changes')
    expect(await changeToken(col, 'things')).to.equal(null)
    await Promise.all(Array.from({ length: 8 }, () => signalChange(col, 'things')))
    const first = await changeToken(col, 'things')
    expect(first).to.be.a('string')
    await signalChange(col, 'things')
    expect(await changeToken(col, 'things')).to.not.equal(first)
  })

  it(
    'creates every declared index on MongoDB, and only the unique ones on ' + 'FerretDB (it reads through no other)',
    async () => {
      await ensureIndexes(db)
      await ensureIndexes(db) // idempotent
      const ferret = await isFerretDb(db)
      const deliveries = (await db.collection('deliveries').listIndexes().toArray()).map((i) => i.name as string).sort()
      const declared = INDEXES.deliveries.filter((i) => i.unique || !ferret).map((i) => i.name!)
      expect(deliveries).to.deep.equal(['_id_', ...declared].sort())
      expect(declared, 'the unique index is there either way').to.include('subscription_event_unique')
    },
  )
})
