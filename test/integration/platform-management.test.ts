import { expect } from 'chai'
import crypto from 'node:crypto'
import { startPlatform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { loadConfig } from '../../config/index.ts'
import { testMongo, uniqueName } from '../helpers/env.ts'

describe('platform: management API wiring', function () {
  const dbName = uniqueName('platform').slice(0, 60)
  const adminKey = crypto.randomBytes(32).toString('base64url')
  const config = loadConfig({
    overrides: {
      http: { host: '127.0.0.1', port: 0 },
      mongodb: { database: dbName },
      management: { adminApiKey: adminKey },
      secrets: { encryptionKeys: generateKeyRingEntry('p1') },
      urlGuard: { allowlist: '127.0.0.1' },
    },
  })
  const lines: string[] = []
  const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) })

  after(async () => {
    const mongo = testMongo()
    await mongo.connect()
    await mongo.db(dbName).dropDatabase().catch(() => undefined)
    await mongo.close()
  })

  it('bootstraps with ADMIN_API_KEY, and a paused connector stays paused across a platform restart', async () => {
    const call = async (url: string, method: string, path: string, body?: unknown, key = adminKey) => {
      const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) })
      return { status: res.status, body: (await res.json().catch(() => null)) as any }
    }
    const p1 = await startPlatform(config, logger, { stopStackOnClose: false })
    let subId: string
    try {
      const org = await call(p1.url, 'POST', '/v1/organizations', { kind: 'partner', name: 'A', slug: 'partner-a' })
      expect(org.status).to.equal(201)
      const pub = await call(p1.url, 'POST', '/v1/organizations', { kind: 'publisher', name: 'P', slug: 'publisher-p' })
      await call(p1.url, 'POST', '/v1/grants', { publisherId: pub.body.id, partnerId: org.body.id, entitlements: [{ eventType: 'inventory.levels' }] })
      const sub = await call(p1.url, 'POST', '/v1/subscriptions', { partnerId: org.body.id, name: 's', eventTypes: ['inventory.levels'], sink: { type: 'webhook', url: 'http://127.0.0.1:9/h' } })
      expect(sub.status).to.equal(201)
      subId = sub.body.id
      expect((await call(p1.url, 'PUT', `/v1/connectors/${subId}/pause`)).body.desiredState).to.equal('paused')
      const docs = await fetch(p1.url + '/docs')
      expect(docs.status).to.equal(200)
      expect(await docs.text()).to.include('swagger-ui')
    } finally {
      await p1.close()
    }
    const p2 = await startPlatform(config, logger, { stopStackOnClose: false })
    try {
      const status = await call(p2.url, 'GET', `/v1/connectors/${subId}/status`)
      expect(status.status).to.equal(200)
      expect(status.body.desiredState).to.equal('paused')
      expect((await call(p2.url, 'GET', '/v1/organizations', undefined, 'wrong')).status).to.equal(401)
    } finally {
      await p2.close()
    }
    expect(lines.join('\n')).to.not.include(adminKey)
  })
})
