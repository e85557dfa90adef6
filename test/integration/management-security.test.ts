import { createHmac } from 'node:crypto'
import { expect } from 'chai'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { fill, operations } from '../helpers/openapi-ops.ts'
import { startManagement } from '../helpers/management.ts'
import { buildFixture, type Fixture } from './management-fixture.ts'

describe('management API: organizations are isolated', function () {
  let f: Fixture
  before(async () => {
    f = await buildFixture()
  })
  after(async () => {
    await f?.h.close()
  })

  // Partner A's resources (and publisher P's grant to A and source). A new route with a new id parameter has no
  // entry here, so `fill` throws and the test fails until the route is added and checked.
  const foreignIds = () => ({
    organizationId: f.orgs.A,
    keyId: f.keyIds.A,
    grantId: f.grantPA,
    subscriptionId: f.subA,
    connectorId: f.subA,
    eventId: 'e1',
    sourceId: f.srcP,
    dealId: f.dealA,
    leadId: f.leadPA,
    inboundId: f.inbP,
    requestId: f.rtrA,
  })

  // (public operations carry no organization's key: the CRM's inbound call is signed, see deals.test.ts)
  for (const op of operations().filter((o) => o.pathParams.length > 0 && !o.public)) {
    it(`${op.method} ${op.path}: another organization's id is 404 for a partner and for a publisher`, async () => {
      for (const who of ['B', 'Q'] as const) {
        const r = await f.h.call(op.method, '/v1' + fill(op.path, foreignIds()), {
          key: f.keys[who],
          body: op.hasBody ? op.example : undefined,
        })
        expect(r.status, `${who}: ${r.text}`).to.equal(404)
        expect(r.headers.get('content-type')).to.match(/application\/problem\+json/)
      }
    })
  }

  it('left partner A untouched after every foreign call', async () => {
    const conn = await f.h.call('GET', `/v1/connectors/${f.subA}`, { key: f.keys.A })
    expect(conn.body.desiredState).to.equal('running')
    expect(conn.body.offsetReset).to.equal(null)
    const key = await f.h.call('GET', `/v1/api-keys/${f.keyIds.A}`, { key: f.keys.A })
    expect(key.body.revokedAt).to.equal(null)
    expect((await f.h.call('GET', `/v1/subscriptions/${f.subA}`, { key: f.keys.A })).status).to.equal(200)
    expect((await f.h.call('GET', `/v1/grants/${f.grantPA}`, { key: f.keys.A })).status).to.equal(200)
    // only the fixture's own test event: no foreign call requested anything of A's subscription
    expect((await f.h.cp.deliveries.pendingRetryRequests()).map((r) => r._id)).to.deep.equal([f.rtrA])
    const org = await f.h.call('GET', `/v1/organizations/${f.orgs.A}`, { key: f.keys.A })
    expect(org.body.name).to.equal('PARTNER-A')
    const src = await f.h.call('GET', `/v1/sources/${f.srcP}`, { key: f.keys.P })
    expect(src.body).to.include({ desiredState: 'running', generation: 1 })
    expect(src.body.config).to.deep.equal({ dir: 'p-drop' })
  })

  it('refuses a subscription beyond the grants with 422 naming what exceeds', async () => {
    const base = { name: 'wide', sink: { type: 'webhook', url: 'http://127.0.0.1:9/h' } }
    const cases: Array<[object, string, RegExp]> = [
      // a declared event type the grant does not cover (an undeclared one is refused by the schema: 400)
      [{ eventTypes: ['inventory.level.changed', 'deal.won'] }, 'eventTypes[1]', /deal\.won is not granted/],
      [{ eventTypes: ['inventory.level.changed'], fields: ['sku', 'onHand'] }, 'fields[1]', /onHand/],
      [
        { eventTypes: ['inventory.level.changed'], filter: { region: { in: ['EU', 'APAC'] } } },
        'filter.region',
        /"APAC"/,
      ],
      [
        { eventTypes: ['deal.registered'], filter: { partnerId: { in: ['someone-else'] } } },
        'filter.partnerId',
        /someone-else/,
      ],
      [
        { eventTypes: ['inventory.level.changed'], schemaVersions: { 'deal.registered': 2 } },
        'schemaVersions.deal.registered',
        /does not subscribe/,
      ],
    ]
    for (const [body, field, message] of cases) {
      const r = await f.h.call('POST', '/v1/subscriptions', { key: f.keys.A, body: { ...base, ...body } })
      expect(r.status, r.text).to.equal(422)
      const e = r.body.errors.find((x: any) => x.field === field)
      expect(e, r.text).to.not.equal(undefined)
      expect(e.message).to.match(message)
    }
    const narrower = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        ...base,
        eventTypes: ['inventory.level.changed'],
        fields: ['sku', 'warehouse.id'],
        filter: { region: { in: ['US'] }, sku: { in: ['A'] } },
      },
    })
    expect(narrower.status, narrower.text).to.equal(201)
    const partnerB = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.B,
      body: { ...base, eventTypes: ['inventory.level.changed'] },
    })
    expect(partnerB.status, 'B holds no grant').to.equal(422)
  })

  it('refuses webhook and REST URLs the SSRF guard refuses with 422 naming the field', async () => {
    const urls = [
      'http://10.1.2.3/h',
      'http://169.254.169.254/latest/meta-data',
      'http://[::ffff:169.254.169.254]/',
      'http://[fd00::1]/',
      'http://100.64.0.1/',
      'http://0.0.0.0/',
      'ftp://127.0.0.1/x',
      'http://224.0.0.1/',
    ]
    for (const url of urls) {
      const r = await f.h.call('POST', '/v1/subscriptions', {
        key: f.keys.A,
        body: { name: 'ssrf', eventTypes: ['inventory.level.changed'], sink: { type: 'webhook', url } },
      })
      expect(r.status, `${url}: ${r.text}`).to.be.oneOf([422, 400])
      expect(r.body.errors[0].field, url).to.equal('sink.url')
    }
    const rest = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        name: 'ssrf-rest',
        eventTypes: ['inventory.level.changed'],
        sink: {
          type: 'rest',
          url: 'http://127.0.0.1:9/api',
          method: 'PUT',
          auth: { type: 'oauth2', tokenUrl: 'http://192.168.1.1/token', clientId: 'c', clientSecret: 's3cr3t-value' },
        },
      },
    })
    expect(rest.status, rest.text).to.equal(422)
    expect(rest.body.errors[0].field).to.equal('sink.auth.tokenUrl')
    const patch = await f.h.call('PATCH', `/v1/subscriptions/${f.subA}`, {
      key: f.keys.A,
      body: { sink: { type: 'webhook', url: 'http://169.254.169.254/' } },
    })
    expect(patch.status).to.equal(422)
    expect(patch.body.errors[0].field).to.equal('sink.url')
  })

  it('refuses a sink URL the WHATWG parser reads as http anyway (no //, a leading space): 400', async () => {
    // the document says it (pattern), so an API fuzzer's schema-valid URLs are the ones the API takes
    for (const url of [
      'http:hooks.example.com/h',
      ' https://hooks.example.com/h',
      'http:\\\\hooks.example.com',
      'https://hooks.example.com/a b',
      'https://hooks.exa\u0000mple.com/',
    ]) {
      for (const sink of [
        { type: 'webhook', url },
        { type: 'rest', url, method: 'PUT' },
      ]) {
        const r = await f.h.call('POST', '/v1/subscriptions', {
          key: f.keys.A,
          body: { name: 'not-absolute', eventTypes: ['inventory.level.changed'], sink },
        })
        expect(r.status, `${sink.type} ${url}: ${r.text}`).to.equal(400)
        // (the other sink types' complaints follow: the validator does not narrow a nested oneOf by its type)
        expect(r.body.errors).to.deep.include({
          field: 'sink.url',
          in: 'body',
          message: 'must be an absolute http:// or https:// URL without spaces or control characters',
        })
      }
    }
    // the scheme in capitals is a URL like any other (only its form is checked here: the guard then refuses the host)
    const caps = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        name: 'caps',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'HTTPS://10.0.0.1/h' },
      },
    })
    expect(caps.status, caps.text).to.equal(422)
    expect(caps.body.errors[0].field).to.equal('sink.url')
  })

  it('keeps sink credentials encrypted at rest and out of every response and log line', async () => {
    const secret = 'crm-client-secret-' + Math.random().toString(36).slice(2)
    const mongoUri = 'mongodb://user:pw-' + Math.random().toString(36).slice(2) + '@partner-db.example:27017/'
    const rest = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        name: 'crm',
        eventTypes: ['inventory.level.changed'],
        sink: {
          type: 'rest',
          url: 'http://127.0.0.1:9/api/{key}',
          method: 'PUT',
          auth: { type: 'oauth2', tokenUrl: 'http://127.0.0.1:9/token', clientId: 'cid', clientSecret: secret },
        },
      },
    })
    expect(rest.status, rest.text).to.equal(201)
    expect(rest.text).to.not.include(secret)
    expect(rest.body.sink.secretsSet).to.deep.equal(['auth.clientSecret'])
    const mongo = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        name: 'mirror',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'mongodb', connectionString: mongoUri, database: 'd', collection: 'c' },
      },
    })
    expect(mongo.status, mongo.text).to.equal(201)
    expect(mongo.text).to.not.include(mongoUri)
    // A sink change that leaves the secret out keeps it.
    const patched = await f.h.call('PATCH', `/v1/subscriptions/${rest.body.id}`, {
      key: f.keys.A,
      body: {
        sink: {
          type: 'rest',
          url: 'http://127.0.0.1:9/v2/{key}',
          method: 'PATCH',
          auth: { type: 'oauth2', tokenUrl: 'http://127.0.0.1:9/token', clientId: 'cid' },
        },
      },
    })
    expect(patched.status, patched.text).to.equal(200)
    const stored = await f.h.cp.cols.subscriptions.findOne({ _id: rest.body.id })
    const storedText = JSON.stringify(stored)
    expect(storedText).to.not.include(secret)
    expect((f.h.cp.openSink(stored!.sink) as any).auth.clientSecret).to.equal(secret)
    const storedMongo = await f.h.cp.cols.subscriptions.findOne({ _id: mongo.body.id })
    expect(JSON.stringify(storedMongo)).to.not.include('partner-db.example')
    for (const path of [
      '/v1/subscriptions',
      `/v1/subscriptions/${rest.body.id}`,
      `/v1/subscriptions/${mongo.body.id}`,
      `/v1/connectors/${rest.body.id}`,
    ]) {
      const r = await f.h.call('GET', path, { key: f.keys.A })
      expect(r.text).to.not.include(secret)
      expect(r.text).to.not.include(mongoUri)
      expect(r.text).to.not.include('whsec_')
    }
    // No key, webhook secret or credential in any log line of this whole run.
    const logs = f.h.logLines.join('\n')
    for (const s of [secret, mongoUri, f.webhookSecretA, f.keys.A, f.keys.B, f.keys.P, f.h.adminKey])
      expect(logs).to.not.include(s)
  })

  it('no log line carries the API key of a request that failed inside the handler', async () => {
    const before = f.h.logLines.length
    const r = await f.h.call('GET', '/v1/subscriptions?cursor=' + 'x'.repeat(20), { key: f.keys.A })
    expect(r.status).to.equal(422)
    expect(r.body.errors[0].field).to.equal('cursor')
    expect(f.h.logLines.slice(before).join('\n')).to.not.include(f.keys.A)
  })
})

describe('management API: limits and idempotency', function () {
  it('answers 429 with Retry-After once a key exceeds its rate', async () => {
    const h = await startManagement({ overrides: { management: { rateLimit: { perSecond: 1, burst: 3 } } } })
    try {
      const statuses: number[] = []
      let retryAfter: string | null = null
      for (let i = 0; i < 5; i++) {
        const r = await h.call('GET', '/v1/organizations')
        statuses.push(r.status)
        if (r.status === 429) {
          retryAfter = r.headers.get('retry-after')
          expect(r.headers.get('content-type')).to.match(/problem\+json/)
        }
      }
      expect(statuses.slice(0, 3)).to.deep.equal([200, 200, 200])
      expect(statuses).to.include(429)
      expect(Number(retryAfter)).to.be.at.least(1)
    } finally {
      await h.close()
    }
  })

  it('refuses a body over the limit with 413 and replays an idempotent create', async () => {
    const h = await startManagement({ overrides: { management: { bodyLimit: '2kb' } } })
    try {
      const big = await h.call('POST', '/v1/organizations', {
        body: { kind: 'partner', name: 'x', slug: 'big-one', profile: { blob: 'x'.repeat(4000) } },
      })
      expect(big.status).to.equal(413)
      expect(big.body.errors[0].field).to.equal('body')

      const headers = { 'Idempotency-Key': 'create-key-0001' }
      const org = await h.call('POST', '/v1/organizations', {
        headers,
        body: { kind: 'partner', name: 'Once', slug: 'once' },
      })
      expect(org.status).to.equal(201)
      const again = await h.call('POST', '/v1/organizations', {
        headers,
        body: { kind: 'partner', name: 'Once', slug: 'once' },
      })
      expect(again.status).to.equal(201)
      expect(again.headers.get('idempotent-replayed')).to.equal('true')
      expect(again.body.id).to.equal(org.body.id)
      expect(await h.db.collection('organizations').countDocuments({ slug: 'once' })).to.equal(1)
      const other = await h.call('POST', '/v1/organizations', {
        headers,
        body: { kind: 'partner', name: 'Other', slug: 'other' },
      })
      expect(other.status).to.equal(422)
      expect(other.body.errors[0].field).to.equal('Idempotency-Key')

      // A created key is replayed (sealed in the record, never stored in clear).
      const kh = { 'Idempotency-Key': 'create-key-0002' }
      const k1 = await h.call('POST', '/v1/api-keys', {
        headers: kh,
        body: { scope: 'partner', organizationId: org.body.id, name: 'k' },
      })
      const k2 = await h.call('POST', '/v1/api-keys', {
        headers: kh,
        body: { scope: 'partner', organizationId: org.body.id, name: 'k' },
      })
      expect(k2.body.key).to.equal(k1.body.key)
      const records = await h.db.collection('idempotency').find({}).toArray()
      expect(JSON.stringify(records)).to.not.include(k1.body.key.split('.')[1])

      // A failed create forgets the key, so a corrected retry runs.
      const fh = { 'Idempotency-Key': 'create-key-0003' }
      const dup = await h.call('POST', '/v1/organizations', {
        headers: fh,
        body: { kind: 'partner', name: 'Dup', slug: 'once' },
      })
      expect(dup.status).to.equal(409)
      expect(
        (
          await h.call('POST', '/v1/organizations', {
            headers: fh,
            body: { kind: 'partner', name: 'Dup', slug: 'once' },
          })
        ).status,
      ).to.equal(409)

      // The sweep deletes expired records (no TTL index in the store).
      const swept = await h.cp.sweep(new Date(Date.now() + 2 * 86400_000))
      expect(swept.idempotency).to.equal(2)
      expect(await h.db.collection('idempotency').countDocuments({})).to.equal(0)
    } finally {
      await h.close()
    }
  })
})

describe('management API: state survives a restart', function () {
  it('keeps a paused connector paused and secrets readable under a rotated key ring', async () => {
    const k1 = generateKeyRingEntry('k1')
    const f = await buildFixture({ encryptionKeys: k1 })
    const dbName = f.h.dbName
    try {
      const paused = await f.h.call('PUT', `/v1/connectors/${f.subA}/pause`, { key: f.keys.A })
      expect(paused.body.desiredState).to.equal('paused')
      const stopped = await f.h.call('POST', '/v1/subscriptions', {
        key: f.keys.A,
        body: {
          name: 'second',
          eventTypes: ['inventory.level.changed'],
          sink: { type: 'webhook', url: 'http://127.0.0.1:9/2' },
        },
      })
      await f.h.call('PUT', `/v1/connectors/${stopped.body.id}/stop`, { key: f.keys.A })
      // An idempotent create's answer (a secret shown once) is stored sealed under k1.
      const idem = { 'Idempotency-Key': 'rotate-ring-0001' }
      const third = {
        name: 'third',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/3' },
      }
      const created = await f.h.call('POST', '/v1/subscriptions', { key: f.keys.A, headers: idem, body: third })
      expect(created.status, created.text).to.equal(201)
      // An inbound connector's secret, rotated: the new one and the previous one (in its overlap) are sealed under k1.
      const rotated = await f.h.call('POST', `/v1/inbound-connectors/${f.inbP}/secret/rotate`, {
        key: f.keys.P,
        body: { overlapSeconds: 3600 },
      })
      expect(rotated.status, rotated.text).to.equal(201)
      await f.h.stop()

      // A new platform instance on the same database, with a new current key (k1 kept to decrypt).
      const k2 = generateKeyRingEntry('k2')
      const h2 = await startManagement({ dbName, encryptionKeys: `${k2},${k1}`, adminKey: f.h.adminKey })
      try {
        const c1 = await h2.call('GET', `/v1/connectors/${f.subA}/status`, { key: f.keys.A })
        expect(c1.status, c1.text).to.equal(200)
        expect(c1.body.desiredState).to.equal('paused')
        const c2 = await h2.call('GET', `/v1/connectors/${stopped.body.id}`, { key: f.keys.A })
        expect(c2.body.desiredState).to.equal('stopped')
        const changed = await h2.cp.connectorsChangedSince(new Date(0))
        expect(changed.find((c) => c._id === f.subA)?.desiredState).to.equal('paused')
        // The harness re-sealed at start: everything is under k2 now, and still opens.
        const sub = await h2.cp.cols.subscriptions.findOne({ _id: f.subA })
        expect(sub!.webhookSecrets.every((s) => h2.cp.box.keyIdOf(s.sealed) === 'k2')).to.equal(true)
        expect(h2.cp.webhookSecretsOf(sub!)).to.deep.equal([f.webhookSecretA])
        const resumed = await h2.call('PUT', `/v1/connectors/${f.subA}/resume`, { key: f.keys.A })
        expect(resumed.body.desiredState).to.equal('running')
      } finally {
        await h2.stop()
      }
      // Without k1 in the ring (after re-encryption) the platform still reads every secret.
      const h3 = await startManagement({ dbName, encryptionKeys: k2 })
      try {
        const sub = await h3.cp.cols.subscriptions.findOne({ _id: f.subA })
        expect(h3.cp.webhookSecretsOf(sub!)).to.deep.equal([f.webhookSecretA])
        // the idempotency record was re-sealed too: its replay opens under k2 alone
        const replayed = await h3.call('POST', '/v1/subscriptions', { key: f.keys.A, headers: idem, body: third })
        expect(replayed.status, replayed.text).to.equal(201)
        expect(replayed.headers.get('idempotent-replayed')).to.equal('true')
        expect(replayed.body.webhookSecret).to.equal(created.body.webhookSecret)
        // both of the inbound connector's secrets were re-sealed: a CRM call signed with either still verifies
        // (past the signature: an unknown deal is a 404, a refused signature would be a 401)
        for (const secret of [rotated.body.secret as string, f.inbSecret]) {
          const raw = JSON.stringify({ dealId: 'no-such-deal', action: 'approve' })
          const id = `msg_${secret.slice(-8)}`
          const ts = Math.floor(Date.now() / 1000)
          const sig = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
            .update(`${id}.${ts}.${raw}`)
            .digest('base64')
          const headers = { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` }
          const r = await h3.call('POST', `/v1/inbound/${f.inbP}`, { key: null, rawBody: raw, headers })
          expect(r.status, r.text).to.equal(404)
        }
      } finally {
        await h3.stop()
      }
    } finally {
      await f.h.close()
    }
  })
})
