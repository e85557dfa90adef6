/** The REST API over plain HTTP: every route, status, error_code and content type Confluent uses. */
import { expect } from 'chai'
import { deleteTopics, http, startTestRegistry } from '../helpers/registry.ts'
import { uniqueName } from '../helpers/env.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

const CT = 'application/vnd.schemaregistry.v1+json'
const rec = (name: string, fields: unknown[]) => JSON.stringify({ type: 'record', name, namespace: 'test.api', fields })
const A1 = rec('A', [{ name: 'a', type: 'string' }])
const A2 = rec('A', [
  { name: 'a', type: 'string' },
  { name: 'b', type: 'int', default: 0 },
])
const A3 = rec('A', [
  { name: 'a', type: 'string' },
  { name: 'b', type: 'int', default: 0 },
  { name: 'c', type: 'string' },
])

describe('schema registry REST API', function () {
  let reg: RegistryServer & { topic: string }
  let u: string
  const s = () => uniqueName('api') + '-value'
  const register = async (subject: string, schema: string, extra: Record<string, unknown> = {}) =>
    http(`${u}/subjects/${subject}/versions`, 'POST', { schema, ...extra })

  before(async () => {
    reg = await startTestRegistry()
    u = reg.url
  })
  after(async () => {
    await reg?.close()
    await deleteTopics(reg.topic)
  })

  it('answers in application/vnd.schemaregistry.v1+json and accepts json and octet-stream bodies', async () => {
    const subject = s()
    const r = await http(`${u}/subjects/${subject}/versions`, 'POST', { schema: A1 }, 'application/json')
    expect(r.status).to.equal(200)
    expect(r.type).to.equal(CT)
    const o = await http(`${u}/subjects/${subject}/versions`, 'POST', { schema: A1 }, 'application/octet-stream')
    expect(o.body).to.deep.equal(r.body)
    expect((await http(`${u}/schemas/types`)).body).to.deep.equal(['JSON', 'PROTOBUF', 'AVRO'])
  })

  it('GET /subjects, versions, version, latest, .../schema and POST /subjects/{s} lookup', async () => {
    const subject = s()
    const { body: r1 } = await register(subject, A1)
    const { body: r2 } = await register(subject, A2)
    expect((await http(`${u}/subjects`)).body).to.include(subject)
    expect((await http(`${u}/subjects/${subject}/versions`)).body).to.deep.equal([1, 2])
    const v1 = await http(`${u}/subjects/${subject}/versions/1`)
    // Confluent 8's fields: schemaType (also for AVRO), guid (the UUID of the MD5 of the schema), ts, deleted.
    expect(v1.body).to.deep.include({ subject, version: 1, id: r1.id, schemaType: 'AVRO', schema: A1, deleted: false })
    expect(v1.body.guid).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(v1.body.ts).to.be.within(Date.now() - 120_000, Date.now() + 1000)
    expect(r1).to.deep.equal({ id: v1.body.id, version: 1, guid: v1.body.guid, schemaType: 'AVRO', schema: A1 })
    expect((await http(`${u}/subjects/${subject}/versions/latest`)).body.id).to.equal(r2.id)
    expect((await http(`${u}/subjects/${subject}/versions/-1`)).body.version).to.equal(2)
    const raw = await http(`${u}/subjects/${subject}/versions/2/schema`)
    expect(raw.body).to.deep.equal(JSON.parse(A2))
    const look = await http(`${u}/subjects/${subject}`, 'POST', { schema: A1 })
    expect(look.body).to.deep.include({ subject, version: 1, id: r1.id, schema: A1 })
    // Whitespace and key order do not make another schema.
    const pretty = JSON.stringify(JSON.parse(A1), null, 2)
    expect((await http(`${u}/subjects/${subject}`, 'POST', { schema: pretty })).body.id).to.equal(r1.id)
    expect((await register(subject, pretty)).body.id).to.equal(r1.id)
    expect((await http(`${u}/subjects/${subject}/versions`)).body).to.deep.equal([1, 2])
  })

  it('GET /schemas/ids/{id} and its schema, subjects and versions', async () => {
    const a = s()
    const b = s()
    const { body } = await register(a, rec('Ids', [{ name: 'x', type: 'long' }]))
    await register(b, rec('Ids', [{ name: 'x', type: 'long' }]))
    const byId = (await http(`${u}/schemas/ids/${body.id}`)).body
    expect(byId).to.deep.include({
      schemaType: 'AVRO',
      schema: rec('Ids', [{ name: 'x', type: 'long' }]),
      guid: body.guid,
      deleted: false,
    })
    expect(byId).to.not.have.any.keys('subject', 'version', 'maxId')
    const withSubject = (await http(`${u}/schemas/ids/${body.id}?subject=${b}&fetchMaxId=true`)).body
    expect(withSubject).to.deep.include({ subject: b, version: 1 })
    expect(withSubject.maxId).to.be.at.least(body.id)
    expect((await http(`${u}/schemas/guids/${body.guid}`)).body.schema).to.equal(byId.schema)
    expect((await http(`${u}/schemas/ids/${body.id}/schema`)).body).to.deep.equal(
      JSON.parse(rec('Ids', [{ name: 'x', type: 'long' }])),
    )
    expect((await http(`${u}/schemas/ids/${body.id}/subjects`)).body).to.have.members([a, b])
    expect((await http(`${u}/schemas/ids/${body.id}/versions`)).body).to.have.deep.members([
      { subject: a, version: 1 },
      { subject: b, version: 1 },
    ])
  })

  it('404 error codes: 40401, 40402, 40403, 40408 and unknown routes', async () => {
    const missing = s()
    const cases: Array<[string, string, unknown, number]> = [
      ['GET', `/subjects/${missing}/versions`, undefined, 40401],
      ['GET', `/subjects/${missing}/versions/1`, undefined, 40401],
      ['DELETE', `/subjects/${missing}`, undefined, 40401],
      ['POST', `/subjects/${missing}`, { schema: A1 }, 40401],
      ['GET', `/schemas/ids/99999999`, undefined, 40403],
      ['GET', `/config/${missing}`, undefined, 40408],
      ['POST', `/compatibility/subjects/${missing}/versions/1`, { schema: A1 }, 40402],
    ]
    for (const [method, path, body, code] of cases) {
      const r = await http(u + path, method, body)
      expect(r.status, `${method} ${path}`).to.equal(404)
      expect(r.body.error_code, `${method} ${path}`).to.equal(code)
      expect(r.body.message).to.be.a('string').and.not.equal('')
    }
    const subject = s()
    await register(subject, A1)
    const v = await http(`${u}/subjects/${subject}/versions/7`)
    expect([v.status, v.body]).to.deep.equal([404, { error_code: 40402, message: 'Version 7 not found.' }])
    const other = await http(`${u}/subjects/${subject}`, 'POST', { schema: A2 })
    expect([other.status, other.body.error_code]).to.deep.equal([404, 40403])
    expect((await http(`${u}/subjects/${missing}/versions/1`)).body).to.deep.equal({
      error_code: 40401,
      message: `Subject '${missing}' not found.`,
    })
    const route = await http(`${u}/nope`)
    expect([route.status, route.body.error_code]).to.deep.equal([404, 404])
  })

  it('422 error codes: 42201 for bad input (nothing written), 42202 bad version, 42203 bad level', async () => {
    const subject = s()
    const bad: Array<[unknown, RegExp]> = [
      ['{not json', /not valid JSON/],
      [{ schema: 'not json at all' }, /not valid JSON/],
      [
        { schema: JSON.stringify({ type: 'record', name: 'X', fields: [{ name: 'a', type: 'Nope' }] }) },
        /undefined type name: Nope/,
      ],
      [{ schema: JSON.stringify({ type: 'wibble' }) }, /not a valid Avro schema/],
      [{ schema: A1, schemaType: 'XML' }, /XML.*not supported/],
      [{ schema: A1, schemaType: 'PROTOBUF' }, /not a valid Protobuf schema/],
      [{}, /"schema" must be/],
      [{ schema: A1, references: [{ name: 'x.Y', subject: 'no-such-subject', version: 1 }] }, /does not exist/],
      [{ schema: rec('Big', [{ name: 'a', type: 'string', doc: 'x'.repeat(600 * 1024) }]) }, /bytes, more than/],
      [{ schema: 'x'.repeat(3 * 1024 * 1024) }, /bytes, more than/],
    ]
    for (const [body, message] of bad) {
      const r = await http(`${u}/subjects/${subject}/versions`, 'POST', body)
      expect(r.status, JSON.stringify(body).slice(0, 80)).to.equal(422)
      expect(r.body.error_code).to.equal(42201)
      expect(r.body.message).to.match(message)
    }
    expect((await http(`${u}/subjects/${subject}/versions`)).status).to.equal(404)

    await register(subject, A1)
    for (const v of ['0', 'abc', '2147483648', '-2']) {
      const r = await http(`${u}/subjects/${subject}/versions/${v}`)
      expect([r.status, r.body.error_code], v).to.deep.equal([422, 42202])
    }
    const lvl = await http(`${u}/config`, 'PUT', { compatibility: 'SOMETIMES' })
    expect([lvl.status, lvl.body.error_code]).to.deep.equal([422, 42203])
    expect((await http(`${u}/config/${subject}`, 'PUT', { compatibility: 'SOMETIMES' })).body.error_code).to.equal(
      42203,
    )
  })

  it('soft delete, then permanent delete, with 40404 40405 40406 40407', async () => {
    const subject = s()
    // Schemas of their own: ids are global, and A1 is used by other tests.
    const D1 = rec('Del', [{ name: 'a', type: 'string' }])
    const D2 = rec('Del', [
      { name: 'a', type: 'string' },
      { name: 'b', type: 'int', default: 0 },
    ])
    const { body: one } = await register(subject, D1)
    await register(subject, D2)

    const notSoft = await http(`${u}/subjects/${subject}/versions/1?permanent=true`, 'DELETE')
    expect([notSoft.status, notSoft.body.error_code]).to.deep.equal([404, 40407])
    expect((await http(`${u}/subjects/${subject}/versions/1`, 'DELETE')).body).to.equal(1)
    const again = await http(`${u}/subjects/${subject}/versions/1`, 'DELETE')
    expect([again.status, again.body.error_code]).to.deep.equal([404, 40406])
    expect((await http(`${u}/subjects/${subject}/versions`)).body).to.deep.equal([2])
    expect((await http(`${u}/subjects/${subject}/versions?deleted=true`)).body).to.deep.equal([1, 2])
    expect((await http(`${u}/subjects/${subject}/versions/1`)).body.error_code).to.equal(40402)
    expect((await http(`${u}/subjects/${subject}/versions/1?deleted=true`)).body.id).to.equal(one.id)
    // The id still resolves: old messages must stay readable.
    expect((await http(`${u}/schemas/ids/${one.id}`)).status).to.equal(200)

    const subjNotSoft = await http(`${u}/subjects/${subject}?permanent=true`, 'DELETE')
    expect([subjNotSoft.status, subjNotSoft.body.error_code]).to.deep.equal([404, 40405])
    expect((await http(`${u}/subjects/${subject}`, 'DELETE')).body).to.deep.equal([2])
    const soft = await http(`${u}/subjects/${subject}`, 'DELETE')
    expect([soft.status, soft.body.error_code]).to.deep.equal([404, 40404])
    expect((await http(`${u}/subjects`)).body).to.not.include(subject)
    expect((await http(`${u}/subjects?deleted=true`)).body).to.include(subject)
    expect((await http(`${u}/subjects/${subject}/versions`)).body.error_code).to.equal(40401)

    expect((await http(`${u}/subjects/${subject}?permanent=true`, 'DELETE')).body).to.deep.equal([1, 2])
    expect((await http(`${u}/subjects?deleted=true`)).body).to.not.include(subject)
    expect((await http(`${u}/schemas/ids/${one.id}`)).body.error_code).to.equal(40403)

    // Ids are never reused: a new schema gets a new id, the old schema gets its old id back.
    const { body: fresh } = await register(subject, rec('Fresh', [{ name: 'z', type: 'string' }]))
    expect(fresh.id).to.be.greaterThan(one.id)
    expect((await register(s(), D1)).body.id).to.equal(one.id)
  })

  it('re-registering a soft-deleted schema makes a new version with the same id', async () => {
    const subject = s()
    const { body } = await register(subject, A1)
    await http(`${u}/subjects/${subject}/versions/1`, 'DELETE')
    expect((await register(subject, A1)).body.id).to.equal(body.id)
    expect((await http(`${u}/subjects/${subject}/versions`)).body).to.deep.equal([2])
  })

  it('GET/PUT/DELETE /config and /config/{subject}', async () => {
    const subject = s()
    expect((await http(`${u}/config/${subject}`, 'PUT', { compatibility: 'full_transitive' })).body).to.deep.equal({
      compatibility: 'FULL_TRANSITIVE',
    })
    expect((await http(`${u}/config/${subject}`)).body).to.deep.equal({ compatibilityLevel: 'FULL_TRANSITIVE' })
    expect((await http(`${u}/config/${subject}`, 'DELETE')).body).to.deep.equal({
      compatibilityLevel: 'FULL_TRANSITIVE',
    })
    expect((await http(`${u}/config/${subject}`)).body.error_code).to.equal(40408)
    const global = (await http(`${u}/config`)).body.compatibilityLevel
    expect((await http(`${u}/config/${subject}?defaultToGlobal=true`)).body).to.deep.equal({
      compatibilityLevel: global,
    })
    expect(global).to.equal('BACKWARD')
  })

  it('all seven compatibility levels, decided by Avro resolution', async () => {
    // Adding a field with a default: backward and forward. Adding one without: forward only.
    // Removing a field without default: backward only.
    const base = rec('L', [
      { name: 'a', type: 'string' },
      { name: 'r', type: 'string' },
    ])
    const addDefault = rec('L', [
      { name: 'a', type: 'string' },
      { name: 'r', type: 'string' },
      { name: 'd', type: 'int', default: 0 },
    ])
    const addRequired = rec('L', [
      { name: 'a', type: 'string' },
      { name: 'r', type: 'string' },
      { name: 'n', type: 'int' },
    ])
    const removeR = rec('L', [{ name: 'a', type: 'string' }])
    const expected: Record<string, [boolean, boolean, boolean]> = {
      // [addDefault, addRequired, removeR]
      NONE: [true, true, true],
      BACKWARD: [true, false, true],
      BACKWARD_TRANSITIVE: [true, false, true],
      FORWARD: [true, true, false],
      FORWARD_TRANSITIVE: [true, true, false],
      FULL: [true, false, false],
      FULL_TRANSITIVE: [true, false, false],
    }
    for (const [level, [d, rq, rm]] of Object.entries(expected)) {
      const subject = s()
      await http(`${u}/config/${subject}`, 'PUT', { compatibility: level })
      await register(subject, base)
      const check = async (schema: string) =>
        (await http(`${u}/compatibility/subjects/${subject}/versions/latest`, 'POST', { schema })).body.is_compatible
      expect([await check(addDefault), await check(addRequired), await check(removeR)], level).to.deep.equal([
        d,
        rq,
        rm,
      ])
      expect((await register(subject, addRequired)).status, level).to.equal(rq ? 200 : 409)
    }
  })

  it('transitive levels check every earlier version, non-transitive only the latest', async () => {
    const v1 = rec('T', [{ name: 'a', type: 'string' }])
    const v2 = rec('T', [
      { name: 'a', type: 'string' },
      { name: 'b', type: 'int', default: 0 },
    ])
    const v3 = rec('T', [
      { name: 'a', type: 'string' },
      { name: 'b', type: 'int' },
    ]) // reads v2, not v1
    for (const [level, ok] of [
      ['BACKWARD', true],
      ['BACKWARD_TRANSITIVE', false],
    ] as const) {
      const subject = s()
      await http(`${u}/config/${subject}`, 'PUT', { compatibility: level })
      await register(subject, v1)
      await register(subject, v2)
      expect((await register(subject, v3)).status, level).to.equal(ok ? 200 : 409)
    }
  })

  it('POST /compatibility with verbose=true gives the reasons; 409 names them', async () => {
    const subject = s()
    await register(subject, A2)
    const r = await http(`${u}/compatibility/subjects/${subject}/versions/latest?verbose=true`, 'POST', { schema: A3 })
    expect(r.body.is_compatible).to.equal(false)
    expect(r.body.messages).to.be.an('array').with.length(1)
    expect(r.body.messages[0]).to.match(/cannot read data written with version 1/)
    expect(
      (await http(`${u}/compatibility/subjects/${subject}/versions/1`, 'POST', { schema: A2 })).body,
    ).to.deep.equal({ is_compatible: true })
    expect(
      (await http(`${u}/compatibility/subjects/${s()}/versions/latest`, 'POST', { schema: A3 })).body,
    ).to.deep.equal({ is_compatible: true })
    const reg409 = await register(subject, A3)
    expect(reg409.status).to.equal(409)
    expect(reg409.body.error_code).to.equal(40901) // Confluent's code since 7.x (409 before)
    expect(reg409.body.message).to.match(
      /incompatible with an earlier schema.*no matching field for default-less test\.api\.A\.c/,
    )
  })

  it('schema references: registration, lookup, compatibility and refusal of dangling ones', async () => {
    const addrSubject = s()
    const address = JSON.stringify({
      type: 'record',
      name: 'Address',
      namespace: 'test.ref',
      fields: [{ name: 'city', type: 'string' }],
    })
    await register(addrSubject, address)
    const refs = [{ name: 'test.ref.Address', subject: addrSubject, version: 1 }]
    const customer = JSON.stringify({
      type: 'record',
      name: 'Customer',
      namespace: 'test.ref',
      fields: [{ name: 'home', type: 'test.ref.Address' }],
    })
    const subject = s()
    const r = await register(subject, customer, { references: refs })
    expect(r.status).to.equal(200)
    const got = await http(`${u}/subjects/${subject}/versions/1`)
    expect(got.body.references).to.deep.equal(refs)
    expect((await http(`${u}/schemas/ids/${r.body.id}`)).body.references).to.deep.equal(refs)
    expect((await http(`${u}/subjects/${subject}`, 'POST', { schema: customer, references: refs })).body.id).to.equal(
      r.body.id,
    )
    // Without the reference the name is unknown.
    expect((await register(s(), customer)).body.error_code).to.equal(42201)
    const wrongVersion = await register(s(), customer, { references: [{ ...refs[0], version: 9 }] })
    expect(wrongVersion.body.message).to.match(/version 9, which does not exist/)
    const compatible = await http(`${u}/compatibility/subjects/${subject}/versions/latest`, 'POST', {
      schema: JSON.stringify({
        type: 'record',
        name: 'Customer',
        namespace: 'test.ref',
        fields: [
          { name: 'home', type: 'test.ref.Address' },
          { name: 'work', type: ['null', 'test.ref.Address'], default: null },
        ],
      }),
      references: refs,
    })
    expect(compatible.body).to.deep.equal({ is_compatible: true })
    expect((await http(`${u}/subjects/${addrSubject}/versions/1/referencedby`)).body).to.deep.equal([r.body.id])
    // A referenced version cannot be deleted.
    const del = await http(`${u}/subjects/${addrSubject}/versions/1`, 'DELETE')
    expect([del.status, del.body.error_code]).to.deep.equal([422, 42206])
  })
})
