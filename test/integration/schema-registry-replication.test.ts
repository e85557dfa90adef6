/**
 * `_schemas` is the source of truth: a restarted registry rebuilds its state from it, and two
 * instances writing to the same log at the same time never give one id to two schemas.
 */
import { expect } from 'chai'
import { deleteTopics, http, startTestRegistry } from '../helpers/registry.ts'
import { testKafka, uniqueName } from '../helpers/env.ts'

const schemaN = (n: number) =>
  JSON.stringify({ type: 'record', name: `R${n}`, namespace: 'test.repl', fields: [{ name: 'f', type: 'string' }] })

describe('schema registry log replay', function () {
  const topics: string[] = []
  after(async () => {
    if (topics.length > 0) await deleteTopics(...topics)
  })

  it('a restarted registry keeps ids, versions, deletions and config; the log is in Confluent format', async () => {
    const topic = uniqueName('schemas')
    topics.push(topic)
    const first = await startTestRegistry(topic)
    const subject = uniqueName('restart') + '-value'
    const ids: number[] = []
    try {
      await http(`${first.url}/config/${subject}`, 'PUT', { compatibility: 'NONE' })
      for (let i = 0; i < 3; i++)
        ids.push((await http(`${first.url}/subjects/${subject}/versions`, 'POST', { schema: schemaN(i) })).body.id)
      await http(`${first.url}/subjects/${subject}/versions/2`, 'DELETE')
    } finally {
      await first.close()
    }
    const second = await startTestRegistry(topic)
    try {
      expect((await http(`${second.url}/subjects/${subject}/versions`)).body).to.deep.equal([1, 3])
      expect((await http(`${second.url}/subjects/${subject}/versions?deleted=true`)).body).to.deep.equal([1, 2, 3])
      for (let i = 0; i < 3; i++)
        expect((await http(`${second.url}/schemas/ids/${ids[i]}`)).body.schema).to.equal(schemaN(i))
      expect((await http(`${second.url}/config/${subject}`)).body).to.deep.equal({ compatibilityLevel: 'NONE' })
      const next = (await http(`${second.url}/subjects/${subject}/versions`, 'POST', { schema: schemaN(9) })).body.id
      expect(next).to.be.greaterThan(Math.max(...ids))
    } finally {
      await second.close()
    }

    // Confluent's record format, so that a Confluent Schema Registry could take the topic over.
    const consumer = testKafka().consumer({ groupId: uniqueName('peek') })
    const records: Array<{ key: string; value: string | null }> = []
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message }) =>
        void records.push({ key: message.key!.toString(), value: message.value ? message.value.toString() : null }),
    })
    const deadline = Date.now() + 15_000
    while (records.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    await consumer.disconnect()
    expect(records[0]!.key).to.equal(JSON.stringify({ keytype: 'CONFIG', subject, magic: 0 }))
    expect(JSON.parse(records[0]!.value!)).to.deep.equal({ compatibilityLevel: 'NONE' })
    expect(records[1]!.key).to.equal(JSON.stringify({ keytype: 'SCHEMA', subject, version: 1, magic: 1 }))
    expect(JSON.parse(records[1]!.value!)).to.deep.equal({
      subject,
      version: 1,
      id: ids[0],
      schemaType: 'AVRO',
      schema: schemaN(0),
      deleted: false,
    })
    expect(JSON.parse(records[4]!.value!)).to.include({ version: 2, deleted: true })
  })

  it('two instances registering concurrently agree on every id and version, and never share an id', async () => {
    const topic = uniqueName('schemas')
    topics.push(topic)
    const a = await startTestRegistry(topic)
    const b = await startTestRegistry(topic)
    try {
      const subjects = [uniqueName('race1') + '-value', uniqueName('race2') + '-value']
      for (const s of subjects) await http(`${a.url}/config/${s}`, 'PUT', { compatibility: 'NONE' })
      // 24 distinct schemas, each registered through both instances at once, in two shared subjects;
      // schemas 0..5 also registered twice per instance.
      const jobs: Array<Promise<{ n: number; id: number; via: string }>> = []
      for (let n = 0; n < 24; n++) {
        for (const inst of [a, b]) {
          const subject = subjects[n % 2]!
          jobs.push(
            http(`${inst.url}/subjects/${subject}/versions`, 'POST', { schema: schemaN(n) }).then((r) => ({
              n,
              id: r.body.id as number,
              via: inst.url,
            })),
          )
        }
        if (n < 6)
          jobs.push(
            http(`${b.url}/subjects/${subjects[(n + 1) % 2]}/versions`, 'POST', { schema: schemaN(n) }).then((r) => ({
              n,
              id: r.body.id as number,
              via: b.url,
            })),
          )
      }
      const results = await Promise.all(jobs)
      const idOf = new Map<number, number>()
      for (const r of results) {
        expect(r.id, `schema ${r.n}`).to.be.a('number')
        if (idOf.has(r.n)) expect(r.id, `schema ${r.n} got two ids`).to.equal(idOf.get(r.n))
        idOf.set(r.n, r.id)
      }
      expect(new Set(idOf.values()).size, 'an id was given to two schemas').to.equal(24)

      // Both instances hold the same state, and it is what the writers were told.
      for (const s of subjects) {
        const fromA = await http(`${a.url}/subjects/${s}/versions`)
        const fromB = await http(`${b.url}/subjects/${s}/versions`)
        expect(fromB.body).to.deep.equal(fromA.body)
        for (const v of fromA.body as number[]) {
          const va = (await http(`${a.url}/subjects/${s}/versions/${v}`)).body
          const vb = (await http(`${b.url}/subjects/${s}/versions/${v}`)).body
          expect(vb).to.deep.equal(va)
        }
      }
      for (const [n, id] of idOf) {
        expect((await http(`${a.url}/schemas/ids/${id}`)).body.schema).to.equal(schemaN(n))
        expect((await http(`${b.url}/schemas/ids/${id}`)).body.schema).to.equal(schemaN(n))
      }
      // A third instance replaying the log from scratch reaches the same state.
      const c = await startTestRegistry(topic)
      try {
        for (const [n, id] of idOf) expect((await http(`${c.url}/schemas/ids/${id}`)).body.schema).to.equal(schemaN(n))
        for (const s of subjects)
          expect((await http(`${c.url}/subjects/${s}/versions`)).body).to.deep.equal(
            (await http(`${a.url}/subjects/${s}/versions`)).body,
          )
      } finally {
        await c.close()
      }
      expect(a.store.state.rejected + b.store.state.rejected, 'the race never happened').to.be.greaterThan(0)
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})
