/**
 * Behaviours where the built-in registry once diverged from Confluent Schema Registry (issue 23), each
 * checked against what Confluent's open-source registry (8.x) does: see docs/schema-registry.md.
 */
import { expect } from 'chai'
import { deleteTopics, http, startTestRegistry } from '../helpers/registry.ts'
import { uniqueName } from '../helpers/env.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

describe('schema registry: Confluent parity', function () {
  let reg: RegistryServer & { topic: string }
  let u: string
  let ns: string
  const s = () => uniqueName('parity') + '-value'
  const register = (subject: string, body: Record<string, unknown>, query = '') =>
    http(`${u}/subjects/${encodeURIComponent(subject)}/versions${query}`, 'POST', body)
  const rec = (name: string, fields: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({ type: 'record', name, namespace: ns, fields, ...extra })

  before(async () => {
    reg = await startTestRegistry()
    u = reg.url
    // Ids are global and a schema registered twice keeps its id: each run uses names of its own.
    ns = `parity.n${Date.now()}`
  })
  after(async () => {
    await reg?.close()
    await deleteTopics(reg.topic)
  })

  it(
    'stores Avro in the canonical form Confluent stores (Avro Schema.toString), ' +
      'and the normalized form with normalize=true',
    async () => {
      const messy = JSON.stringify({
        fields: [
          { type: { type: 'string' }, name: 'a', doc: 'the a' },
          { default: 0, name: 'b', type: 'int' },
          { name: 'c', type: { type: 'record', name: 'Inner', namespace: ns, fields: [{ name: 'x', type: 'long' }] } },
          { name: 'd', type: 'Inner' },
        ],
        name: `${ns}.Canon`,
        type: 'record',
      })
      const subject = s()
      const r = await register(subject, { schema: messy })
      expect(r.status).to.equal(200)
      const canonical =
        `{"type":"record","name":"Canon","namespace":"${ns}","fields":[{"name":"a","type":"string","doc":"the ` +
        `a"},{"name":"b","type":"int","default":0},` +
        `{"name":"c","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"long"}]}},` +
        `{"name":"d","type":"Inner"}]}`
      expect(r.body.schema).to.equal(canonical)
      expect((await http(`${u}/subjects/${subject}/versions/1`)).body.schema).to.equal(canonical)
      // The same schema written differently is the same registration.
      expect((await register(subject, { schema: canonical })).body).to.include({ id: r.body.id, version: 1 })

      const n = s()
      const nr = await register(n, { schema: messy }, '?normalize=true')
      expect(nr.body.schema).to.equal(
        `{"name":"${ns}.Canon","type":"record","fields":[{"name":"a","type":"string","order":"ASCENDING","doc":"the ` +
          `a"},{"name":"b","type":"int","order":"ASCENDING","default":0},` +
          `{"name":"c","type":{"name":"${ns}.Inner","type":"record",` +
          `"fields":[{"name":"x","type":"long","order":"ASCENDING"}]},"order":"ASCENDING"},` +
          `{"name":"d","type":"${ns}.Inner","order":"ASCENDING"}]}`,
      )
      // normalize in the subject's config acts as ?normalize=true.
      const c = s()
      await http(`${u}/config/${c}`, 'PUT', { normalize: true })
      expect((await register(c, { schema: messy })).body.schema).to.equal(nr.body.schema)
    },
  )

  it('accepts a named type in object form {"type": "ns.Name"}, as Avro Java does', async () => {
    const schema = JSON.stringify({
      type: 'record',
      name: 'ObjForm',
      namespace: ns,
      fields: [
        { name: 'e', type: { type: 'enum', name: 'Colour', symbols: ['RED', 'BLUE'] } },
        { name: 'again', type: { type: `${ns}.Colour` } },
        { name: 'list', type: { type: 'array', items: { type: 'Colour' } } },
      ],
    })
    const r = await register(s(), { schema })
    expect(r.status, JSON.stringify(r.body)).to.equal(200)
    expect(JSON.parse(r.body.schema).fields.slice(1)).to.deep.equal([
      { name: 'again', type: 'Colour' },
      { name: 'list', type: { type: 'array', items: 'Colour' } },
    ])
  })

  it(
    'a lookup (and a registration) of a fully inlined schema finds the version ' + 'registered with references',
    async () => {
      const addrSubject = s()
      const address = { type: 'record', name: 'Address', namespace: ns, fields: [{ name: 'city', type: 'string' }] }
      await register(addrSubject, { schema: JSON.stringify(address) })
      const refs = [{ name: `${ns}.Address`, subject: addrSubject, version: 1 }]
      const customer = {
        type: 'record',
        name: 'Customer',
        namespace: ns,
        fields: [
          { name: 'home', type: `${ns}.Address` },
          { name: 'work', type: ['null', `${ns}.Address`], default: null },
        ],
      }
      const subject = s()
      const r = await register(subject, { schema: JSON.stringify(customer), references: refs })
      expect(r.status).to.equal(200)
      const inlined = JSON.stringify({ ...customer, fields: [{ name: 'home', type: address }, customer.fields[1]] })
      const found = await http(`${u}/subjects/${subject}`, 'POST', { schema: inlined })
      expect(found.status, JSON.stringify(found.body)).to.equal(200)
      expect(found.body).to.include({ subject, version: 1, id: r.body.id })
      expect(found.body.references).to.deep.equal(refs)
      // Confluent's serializers with auto.register.schemas=true send the inlined schema too: no new version.
      expect((await register(subject, { schema: inlined })).body).to.include({ id: r.body.id, version: 1 })
      expect((await http(`${u}/subjects/${subject}/versions`)).body).to.deep.equal([1])
      // format=resolved writes the referenced types out.
      const resolved = (await http(`${u}/subjects/${subject}/versions/1?format=resolved`)).body.schema
      expect(JSON.parse(resolved).fields[0].type).to.deep.equal({
        type: 'record',
        name: 'Address',
        fields: [{ name: 'city', type: 'string' }],
      })
      // Another schema, inlined, is still not found.
      const other = JSON.stringify({ ...customer, fields: [{ name: 'home', type: address }] })
      expect((await http(`${u}/subjects/${subject}`, 'POST', { schema: other })).body.error_code).to.equal(40403)
    },
  )

  it(
    'compatibility checks: a named version checks only it; without a version, the ' +
      'level decides (non-transitive: latest only)',
    async () => {
      const v1 = rec('T', [{ name: 'a', type: 'string' }])
      const v2 = rec('T', [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'int', default: 0 },
      ])
      const v3 = rec('T', [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'int' },
      ]) // reads v2, not v1
      const check = async (subject: string, path: string) =>
        (await http(`${u}/compatibility/subjects/${subject}/versions${path}`, 'POST', { schema: v3 })).body
          .is_compatible
      const transitive = s()
      await http(`${u}/config/${transitive}`, 'PUT', { compatibility: 'BACKWARD_TRANSITIVE' })
      await register(transitive, { schema: v1 })
      await register(transitive, { schema: v2 })
      expect(await check(transitive, '/latest')).to.equal(true)
      expect(await check(transitive, '/2')).to.equal(true)
      expect(await check(transitive, '/1')).to.equal(false)
      expect(await check(transitive, '')).to.equal(false)
      const backward = s()
      await http(`${u}/config/${backward}`, 'PUT', { compatibility: 'BACKWARD' })
      await register(backward, { schema: v1 })
      await register(backward, { schema: v2 })
      expect(await check(backward, '')).to.equal(true)
      expect(await check(backward, '/1')).to.equal(false)
      // No version yet: 'latest' and no version are compatible.
      expect(await check(s(), '/latest')).to.equal(true)
      expect(await check(s(), '')).to.equal(true)
    },
  )

  it(
    'verbose compatibility of an invalid schema is is_compatible false with the ' + 'reason; without verbose a 42201',
    async () => {
      const subject = s()
      await register(subject, { schema: rec('V', [{ name: 'a', type: 'string' }]) })
      const bad = { schema: JSON.stringify({ type: 'record', name: 'V', fields: [{ name: 'a', type: 'Nope' }] }) }
      const verbose = await http(`${u}/compatibility/subjects/${subject}/versions/latest?verbose=true`, 'POST', bad)
      expect(verbose.status).to.equal(200)
      expect(verbose.body.is_compatible).to.equal(false)
      expect(verbose.body.messages[0]).to.match(/Invalid schema.*Nope/)
      const plain = await http(`${u}/compatibility/subjects/${subject}/versions/latest`, 'POST', bad)
      expect([plain.status, plain.body.error_code]).to.deep.equal([422, 42201])
    },
  )

  it('"version" in a register request is compare-and-set', async () => {
    const subject = s()
    const a = rec('Cas', [{ name: 'a', type: 'string' }])
    const b = rec('Cas', [
      { name: 'a', type: 'string' },
      { name: 'b', type: 'int', default: 0 },
    ])
    const c = rec('Cas', [
      { name: 'a', type: 'string' },
      { name: 'c', type: 'int', default: 0 },
    ])
    expect((await register(subject, { schema: a, version: 1 })).body.version).to.equal(1)
    const stale = await register(subject, { schema: b, version: 1 })
    expect([stale.status, stale.body.error_code]).to.deep.equal([422, 42201])
    expect(stale.body.message).to.match(/not one more than previous version/)
    expect((await register(subject, { schema: b, version: 2 })).body.version).to.equal(2)
    // Asking again for version 2 fails even with the same schema, as in Confluent's register (only an
    // IMPORT with the same id and version is answered as already registered).
    expect((await register(subject, { schema: b, version: 2 })).body.error_code).to.equal(42201)
    // The next version with a schema already live in the subject: Confluent duplicates it, we refuse (docs).
    const dup = await register(subject, { schema: a, version: 3 })
    expect([dup.status, dup.body.error_code]).to.deep.equal([422, 42201])
    expect(dup.body.message).to.match(/already registered as version 1/)
    // -1: only an equal latest version counts as already registered.
    expect((await register(subject, { schema: c, version: -1 })).body.version).to.equal(3)
    expect((await http(`${u}/subjects/${subject}/versions`)).body).to.deep.equal([1, 2, 3])
    const badType = await register(subject, { schema: c, version: 'two' })
    expect(badType.body.error_code).to.equal(42201)
    // Data contracts are refused, not dropped silently; empty ones (as clients send them) are fine.
    expect((await register(subject, { schema: c, ruleSet: { domainRules: [{ name: 'r' }] } })).body.message).to.match(
      /ruleSet.*not supported/,
    )
    expect((await register(subject, { schema: c, metadata: null, ruleSet: {} })).body.version).to.equal(3)
  })

  it('PUT/GET/DELETE /config/{subject} keep every field Confluent has, merging updates', async () => {
    const subject = s()
    const full = {
      compatibility: 'FORWARD',
      normalize: true,
      alias: 'other-subject',
      validateFields: true,
      compatibilityGroup: 'app.major',
      defaultMetadata: { properties: { owner: 'team-a' } },
      overrideMetadata: { properties: { 'app.major': '1' } },
      defaultRuleSet: { domainRules: [] },
      overrideRuleSet: { migrationRules: [] },
    }
    const put = await http(`${u}/config/${subject}`, 'PUT', full)
    expect(put.status).to.equal(200)
    expect(put.body).to.deep.equal(full)
    const { compatibility, ...rest } = full
    expect((await http(`${u}/config/${subject}`)).body).to.deep.equal({ ...rest, compatibilityLevel: compatibility })
    // An update changes only what it names.
    expect((await http(`${u}/config/${subject}`, 'PUT', { compatibility: 'NONE' })).body).to.deep.include({
      compatibility: 'NONE',
      alias: 'other-subject',
      normalize: true,
    })
    expect((await http(`${u}/config/${subject}`, 'PUT', { normalize: 'yes' })).body.error_code).to.equal(42201)
    expect((await http(`${u}/config/${subject}`, 'DELETE')).body).to.deep.include({
      compatibilityLevel: 'NONE',
      compatibilityGroup: 'app.major',
    })
    expect((await http(`${u}/config/${subject}`)).body.error_code).to.equal(40408)
  })

  it(
    '/mode: READONLY refuses writes (42205); IMPORT registers with the given id ' +
      'and version; READWRITE refuses an id',
    async () => {
      expect((await http(`${u}/mode`)).body).to.deep.equal({ mode: 'READWRITE' })
      const subject = s()
      expect((await http(`${u}/mode/${subject}`)).body.error_code).to.equal(40409)
      expect((await http(`${u}/mode/${subject}?defaultToGlobal=true`)).body).to.deep.equal({ mode: 'READWRITE' })
      expect((await http(`${u}/mode/${subject}`, 'PUT', { mode: 'SOMETIMES' })).body.error_code).to.equal(42204)

      await register(subject, { schema: rec('M', [{ name: 'a', type: 'string' }]) })
      expect((await http(`${u}/mode/${subject}`, 'PUT', { mode: 'READONLY' })).body).to.deep.equal({ mode: 'READONLY' })
      const ro = await register(subject, {
        schema: rec('M', [
          { name: 'a', type: 'string' },
          { name: 'b', type: 'int', default: 0 },
        ]),
      })
      expect([ro.status, ro.body.error_code]).to.deep.equal([422, 42205])
      expect((await http(`${u}/subjects/${subject}/versions/1`, 'DELETE')).body.error_code).to.equal(42205)
      expect((await http(`${u}/config/${subject}`, 'PUT', { compatibility: 'NONE' })).body.error_code).to.equal(42205)
      // An already registered schema is still answered (a lookup, not a write).
      expect((await register(subject, { schema: rec('M', [{ name: 'a', type: 'string' }]) })).body.version).to.equal(1)
      expect((await http(`${u}/mode/${subject}`, 'DELETE')).body).to.deep.equal({ mode: 'READONLY' })

      // IMPORT: refused while the subject has versions, unless force=true.
      expect((await http(`${u}/mode/${subject}`, 'PUT', { mode: 'IMPORT' })).body.error_code).to.equal(42205)
      const imp = s()
      expect((await http(`${u}/mode/${imp}`, 'PUT', { mode: 'IMPORT' })).body).to.deep.equal({ mode: 'IMPORT' })
      const id = 900_000 + Math.floor(Math.random() * 90_000)
      const schema = rec('Imported', [{ name: 'a', type: 'string' }])
      const noId = await register(imp, { schema })
      expect([noId.status, noId.body.error_code]).to.deep.equal([422, 42205])
      const r = await register(imp, { schema, id, version: 5 })
      expect(r.body).to.include({ id, version: 5 })
      // Compatibility is not checked in IMPORT mode.
      expect(
        (await register(imp, { schema: rec('Imported', [{ name: 'z', type: 'int' }]), id: id + 1, version: 6 })).status,
      ).to.equal(200)
      const clash = await register(imp, { schema: rec('Imported', [{ name: 'q', type: 'int' }]), id, version: 7 })
      expect(clash.body.error_code).to.equal(42205)
      await http(`${u}/mode/${imp}`, 'DELETE')
      const rw = await register(imp, { schema: rec('Imported', [{ name: 'w', type: 'int' }]), id: id + 5 })
      expect(rw.body.error_code).to.equal(42205)
      expect((await http(`${u}/schemas/ids/${id}`)).body.schema).to.equal(schema)
    },
  )

  it('soft-deleted referrers do not block a soft delete; a permanent delete waits until they are gone', async () => {
    const target = s()
    await register(target, {
      schema: JSON.stringify({ type: 'record', name: 'Ref', namespace: ns, fields: [{ name: 'x', type: 'int' }] }),
    })
    const user = s()
    const r = await register(user, {
      schema: rec('User', [{ name: 'r', type: `${ns}.Ref` }]),
      references: [{ name: `${ns}.Ref`, subject: target, version: 1 }],
    })
    expect((await http(`${u}/subjects/${target}/versions/1`, 'DELETE')).body.error_code).to.equal(42206)
    expect((await http(`${u}/subjects/${user}`, 'DELETE')).body).to.deep.equal([1])
    expect((await http(`${u}/subjects/${target}/versions/1/referencedby`)).body).to.deep.equal([])
    expect((await http(`${u}/subjects/${target}/versions/1/referencedby?deleted=true`)).body).to.deep.equal([r.body.id])
    expect((await http(`${u}/subjects/${target}/versions/1`, 'DELETE')).body).to.equal(1)
    expect((await http(`${u}/subjects/${target}/versions/1?permanent=true`, 'DELETE')).body.error_code).to.equal(42206)
    await http(`${u}/subjects/${user}?permanent=true`, 'DELETE')
    expect((await http(`${u}/subjects/${target}/versions/1?permanent=true`, 'DELETE')).body).to.equal(1)
  })

  it(
    'GET /schemas with subjectPrefix, latestOnly, deleted, offset and limit; ' +
      'offset/limit/deletedOnly on subjects and versions',
    async () => {
      const prefix = uniqueName('list')
      const a = `${prefix}-a`
      const b = `${prefix}-b`
      for (let i = 0; i < 3; i++) await register(a, { schema: rec('L', [{ name: `f${i}`, type: 'int', default: 0 }]) })
      await register(b, { schema: rec('L2', [{ name: 'x', type: 'int' }]) })
      await http(`${u}/subjects/${a}/versions/1`, 'DELETE')
      const all = (await http(`${u}/schemas?subjectPrefix=${prefix}`)).body as Array<Record<string, unknown>>
      expect(all.map((x) => [x.subject, x.version])).to.deep.equal([
        [a, 2],
        [a, 3],
        [b, 1],
      ])
      expect(all[0]).to.include.keys('id', 'guid', 'schema', 'schemaType', 'ts')
      expect(((await http(`${u}/schemas?subjectPrefix=${prefix}&deleted=true`)).body as unknown[]).length).to.equal(4)
      expect(
        ((await http(`${u}/schemas?subjectPrefix=${prefix}&latestOnly=true`)).body as Array<{ version: number }>).map(
          (x) => x.version,
        ),
      ).to.deep.equal([3, 1])
      expect(
        ((await http(`${u}/schemas?subjectPrefix=${prefix}&offset=1&limit=1`)).body as Array<{ version: number }>).map(
          (x) => x.version,
        ),
      ).to.deep.equal([3])
      expect((await http(`${u}/subjects?subjectPrefix=${prefix}&offset=1&limit=5`)).body).to.deep.equal([b])
      expect((await http(`${u}/subjects?subjectPrefix=${prefix}&deletedOnly=true`)).body).to.deep.equal([a])
      expect((await http(`${u}/subjects/${a}/versions?deletedOnly=true`)).body).to.deep.equal([1])
      expect((await http(`${u}/subjects/${a}/versions?offset=1&limit=1`)).body).to.deep.equal([3])
      expect((await http(`${u}/subjects/${a}/versions?deleted=true&deletedAsNegative=true`)).body).to.deep.equal([
        -1, 2, 3,
      ])
      expect((await http(`${u}/subjects?limit=x`)).status).to.equal(400)
    },
  )

  it('refuses subject names with control characters (42208)', async () => {
    for (const bad of ['with\nnewline', 'tab\there', 'nul\u0000x', '__GLOBAL']) {
      const r = await register(bad, { schema: rec('C', [{ name: 'a', type: 'string' }]) })
      expect([r.status, r.body.error_code], JSON.stringify(bad)).to.deep.equal([422, 42208])
    }
    expect(
      (await http(`${u}/config/${encodeURIComponent('a\u0007b')}`, 'PUT', { compatibility: 'NONE' })).body.error_code,
    ).to.equal(42208)
  })
})
