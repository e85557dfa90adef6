/**
 * Authentication and authorization of the built-in registry in a running platform: HTTP basic auth
 * with the platform's API keys as Confluent clients send it, per scope (admin, publisher, partner
 * with its accepted grants), Confluent's error shape, and the platform's own processes.
 */
import { expect } from 'chai'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { startSchemaRegistry, type RegistryServer } from '../../schemas/registry/index.ts'
import { testConfig, testPlatformConfig, uniqueName } from '../helpers/env.ts'
import { deleteTopics } from '../helpers/registry.ts'

const quiet = createLogger({ level: 'error', write: () => undefined })
const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')

describe('schema registry authentication and authorization (platform API keys)', function () {
  this.timeout(120_000)
  const { config, adminKey } = testPlatformConfig('registry-auth')
  let p: Platform
  let url: string
  const org: Record<string, string> = {}
  const key: Record<string, string> = {}
  const run = uniqueName('ra').slice(-8)

  const api = async (method: string, path: string, body?: unknown, k = adminKey) => {
    const res = await fetch(p.url + path, {
      method,
      headers: { authorization: `Bearer ${k}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    return { status: res.status, body: (await res.json().catch(() => null)) as any }
  }
  const sr = async (method: string, path: string, auth: string | undefined, body?: unknown) => {
    const res = await fetch(url + path, {
      method,
      headers: {
        ...(auth ? { authorization: auth } : {}),
        ...(body !== undefined ? { 'content-type': 'application/vnd.schemaregistry.v1+json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    return { status: res.status, body: (await res.json().catch(() => null)) as any, headers: res.headers }
  }
  const as = (who: string) => basic('apikey', key[who]!)
  const schema = (name: string) => ({
    schema: JSON.stringify({ type: 'record', name, namespace: 'test.auth', fields: [{ name: 'a', type: 'string' }] }),
  })

  before(async () => {
    p = await startPlatform(config, quiet, { stopStackOnClose: false })
    url = (await p.contracts).schemaRegistryUrl
    for (const [name, kind] of [
      ['acme', 'publisher'],
      ['globex', 'publisher'],
      ['northwind', 'partner'],
      ['contoso', 'partner'],
    ] as const) {
      const o = await api('POST', '/v1/organizations', {
        kind,
        name: `${name} ${run}`,
        slug: `${name}-${run}`,
        ...(kind === 'partner' ? { profile: { tier: 'GOLD' } } : {}),
      })
      expect(o.status).to.equal(201)
      org[name] = o.body.id
      key[name] = (await api('POST', '/v1/api-keys', { scope: kind, organizationId: o.body.id, name: 'main' })).body.key
    }
    // Acme offers Northwind inventory (accepted) and Contoso deals (never accepted).
    const g = await api(
      'POST',
      '/v1/grants',
      { partnerId: org.northwind, entitlements: [{ eventType: 'inventory.level.changed' }] },
      key.acme,
    )
    expect((await api('POST', `/v1/grants/${g.body.id}/accept`, {}, key.northwind)).status).to.equal(200)
    await api(
      'POST',
      '/v1/grants',
      { partnerId: org.contoso, entitlements: [{ eventType: 'deal.registered' }] },
      key.acme,
    )
  })
  after(async () => {
    await p?.close()
  })

  it("no credentials or wrong ones: 401 in Confluent's error shape, with a Basic challenge", async () => {
    for (const auth of [
      undefined,
      basic('apikey', 'dk_000000000000.x'.repeat(43)),
      basic('apikey', ''),
      'Bearer nope',
    ]) {
      const r = await sr('GET', '/subjects', auth)
      expect(r.status, String(auth)).to.equal(401)
      expect(r.body.error_code).to.equal(401)
      expect(r.body.message).to.match(/Unauthorized/)
      expect(r.headers.get('www-authenticate')).to.match(/^Basic realm=/)
    }
    expect((await sr('POST', '/subjects/x-value/versions', undefined, schema('X'))).status).to.equal(401)
  })

  it(
    'the platform registered its contracts with its internal credentials; an ' + 'admin key may do everything',
    async () => {
      const subjects = (await sr('GET', '/subjects', basic('admin', adminKey))).body
      expect(subjects).to.include.members([
        'inventory.levels-value',
        'deals.registrations-key',
        'partners.profiles-value',
      ])
      const subject = uniqueName('admin') + '-value'
      expect(
        (await sr('POST', `/subjects/${subject}/versions`, basic('admin', adminKey), schema('Admin'))).status,
      ).to.equal(200)
      expect((await sr('PUT', `/config/${subject}`, `Bearer ${adminKey}`, { compatibility: 'NONE' })).status).to.equal(
        200,
      )
      expect((await sr('DELETE', `/subjects/${subject}`, basic('x', adminKey))).status).to.equal(200)
    },
  )

  it(
    'a publisher reads the subjects of the event types it publishes and owns its ' + 'namespace; nothing else',
    async () => {
      const mine = `${org.acme}.${uniqueName('own')}-value`
      // basic.auth.user.info as "<anything>:<key>" or "<key prefix>:<secret>"
      const [prefix, secret] = key.acme!.split('.') as [string, string]
      for (const auth of [as('acme'), basic(prefix, secret)])
        expect((await sr('GET', '/subjects/inventory.levels-value/versions/latest', auth)).status).to.equal(200)
      expect((await sr('POST', `/subjects/${mine}/versions`, as('acme'), schema('Own'))).status).to.equal(200)
      expect((await sr('PUT', `/config/${mine}`, as('acme'), { compatibility: 'NONE' })).status).to.equal(200)
      const refused: Array<[string, string, unknown?]> = [
        ['GET', '/subjects/partners.profiles-value/versions'], // written by the platform only
        ['POST', `/subjects/${org.globex}.theirs-value/versions`, schema('Theirs')],
        // shared by every publisher: a version here would be everyone's latest and their compatibility baseline
        ['POST', '/subjects/inventory.levels-value/versions', schema('Shared')],
        ['DELETE', '/subjects/inventory.levels-value/versions/1'],
        ['PUT', '/config/inventory.levels-value', { compatibility: 'NONE' }],
        ['PUT', '/config', { compatibility: 'NONE' }],
        ['PUT', '/mode', { mode: 'READONLY' }],
      ]
      for (const [method, path, body] of refused) {
        const r = await sr(method, path, as('acme'), body)
        expect([r.status, r.body.error_code], `${method} ${path}`).to.deep.equal([403, 40301])
        expect(r.body.message).to.match(/denied operation/)
      }
      const listed = (await sr('GET', '/subjects', as('acme'))).body as string[]
      expect(listed).to.include.members(['inventory.levels-value', mine]).and.not.include('partners.profiles-value')
      expect(listed.some((s) => s.startsWith(`${org.globex}.`))).to.equal(false)
      // Globex cannot read Acme's namespace.
      expect((await sr('GET', `/subjects/${mine}/versions`, as('globex'))).status).to.equal(403)
    },
  )

  it(
    'a partner reads only what its accepted grants cover (and the granting ' +
      "publisher's namespace), and writes nothing",
    async () => {
      const mine = `${org.acme}.${uniqueName('shared')}-value`
      const id = (await sr('POST', `/subjects/${mine}/versions`, as('acme'), schema('Shared'))).body.id
      expect((await sr('GET', '/subjects/inventory.levels-value/versions/latest', as('northwind'))).status).to.equal(
        200,
      )
      expect((await sr('GET', `/subjects/${mine}/versions/1`, as('northwind'))).status).to.equal(200)
      expect((await sr('GET', `/schemas/ids/${id}`, as('northwind'))).status).to.equal(200)
      const dealsId = (await sr('GET', '/subjects/deals.registrations-value/versions/latest', as('acme'))).body.id
      const denied = await sr('GET', `/schemas/ids/${dealsId}`, as('northwind'))
      expect([denied.status, denied.body.error_code]).to.deep.equal([403, 40301])
      expect((await sr('GET', '/subjects/deals.registrations-value/versions', as('northwind'))).status).to.equal(403)
      expect((await sr('POST', `/subjects/${mine}/versions`, as('northwind'), schema('Shared'))).status).to.equal(403)
      const listed = (await sr('GET', '/subjects', as('northwind'))).body as string[]
      expect(listed)
        .to.include.members(['inventory.levels-key', 'inventory.levels-value', mine])
        .and.not.include('deals.registrations-value')
      // Contoso never accepted its offer: it sees nothing.
      expect((await sr('GET', '/subjects', as('contoso'))).body).to.deep.equal([])
      expect((await sr('GET', '/subjects/deals.registrations-value/versions', as('contoso'))).status).to.equal(403)
    },
  )

  it('@kafkajs/confluent-schema-registry with auth: {username, password} registers, encodes and decodes', async () => {
    const client = new SchemaRegistry({ host: url, auth: { username: 'apikey', password: key.acme! } })
    const subject = `${org.acme}.${uniqueName('kafkajs')}-value`
    const { id } = await client.register({ type: SchemaType.AVRO, schema: schema('Kjs').schema }, { subject })
    const buf = await client.encode(id, { a: 'x' })
    expect(
      await new SchemaRegistry({ host: url, auth: { username: 'apikey', password: key.northwind! } }).decode(buf),
    ).to.deep.include({ a: 'x' })
  })
})

describe('schema registry anonymous loopback reads (development setting)', function () {
  let reg: RegistryServer
  const topic = uniqueName('schemas')
  before(async () => {
    reg = await startSchemaRegistry(testConfig(), quiet, {
      port: 0,
      host: '127.0.0.1',
      topic,
      auth: { anonymousLoopbackReads: true, authenticate: async () => null },
    })
  })
  after(async () => {
    await reg?.close()
    await deleteTopics(topic)
  })

  it('lets a loopback caller without credentials read, and still refuses its writes', async () => {
    expect((await fetch(`${reg.url}/subjects`)).status).to.equal(200)
    expect((await fetch(`${reg.url}/config`)).status).to.equal(200)
    const w = await fetch(`${reg.url}/subjects/anon-value/versions`, {
      method: 'POST',
      body: JSON.stringify({ schema: '"string"' }),
    })
    expect(w.status).to.equal(403)
    expect((await fetch(`${reg.url}/subjects`, { headers: { authorization: basic('a', 'b') } })).status).to.equal(401)
  })
})
