import { expect } from 'chai'
import { startPlatform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { testKafka, testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'

describe('platform: management API wiring', function () {
  const { config, adminKey } = testPlatformConfig('platform')
  const lines: string[] = []
  const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) })

  it('bootstraps with ADMIN_API_KEY, and a paused connector stays paused across a platform restart', async () => {
    const call = async (url: string, method: string, path: string, body?: unknown, key = adminKey) => {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      })
      return { status: res.status, body: (await res.json().catch(() => null)) as any }
    }
    const p1 = await startPlatform(config, logger, { stopStackOnClose: false })
    let subId: string
    try {
      const org = await call(p1.url, 'POST', '/v1/organizations', { kind: 'partner', name: 'A', slug: 'partner-a' })
      expect(org.status).to.equal(201)
      const pub = await call(p1.url, 'POST', '/v1/organizations', { kind: 'publisher', name: 'P', slug: 'publisher-p' })
      const grant = await call(p1.url, 'POST', '/v1/grants', {
        publisherId: pub.body.id,
        partnerId: org.body.id,
        entitlements: [{ eventType: 'inventory.level.changed' }],
      })
      expect((await call(p1.url, 'POST', `/v1/grants/${grant.body.id}/accept`)).status).to.equal(200)
      const sub = await call(p1.url, 'POST', '/v1/subscriptions', {
        partnerId: org.body.id,
        name: 's',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/h' },
      })
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

  it(
    'mounts event ingestion: a publisher key gets 202 and the events land in ' + 'Kafka; a partner key gets 401',
    async () => {
      const p = await startPlatform(config, logger, { stopStackOnClose: false })
      const admin = testKafka().admin()
      await admin.connect()
      try {
        const call = async (path: string, body: unknown, key = adminKey) => {
          const res = await fetch(p.url + path, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify(body),
          })
          return { status: res.status, body: (await res.json().catch(() => null)) as any }
        }
        await p.contracts
        const pub = await call('/v1/organizations', { kind: 'publisher', name: 'Acme', slug: 'acme-ingest' })
        const partner = await call('/v1/organizations', {
          kind: 'partner',
          name: 'Northwind',
          slug: 'northwind-ingest',
        })
        const pubKey = (await call('/v1/api-keys', { scope: 'publisher', organizationId: pub.body.id, name: 'erp' }))
          .body.key as string
        const partnerKey = (
          await call('/v1/api-keys', { scope: 'partner', organizationId: partner.body.id, name: 'ops' })
        ).body.key as string
        const event = {
          manufacturerId: pub.body.id as string,
          sku: uniqueName('sku'),
          locationId: 'L1',
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand: 5,
          reserved: 0,
          available: 5,
          incoming: [],
          sequence: 1,
          occurredAt: '2026-11-24T10:00:00.000Z',
        }
        const total = async () =>
          (await admin.fetchTopicOffsets('inventory.levels')).reduce((n, o) => n + Number(o.high), 0)
        const before = await total()
        await waitFor(async () => (await call('/v1/events/inventory.level.changed', [event], pubKey)).status !== 503, {
          what: 'ingestion ready',
        })
        const after1 = await total()
        expect(after1 - before).to.equal(1)
        const denied = await call('/v1/events/inventory.level.changed', [event], partnerKey)
        expect(denied.status).to.equal(401)
        expect(await total()).to.equal(after1)
        const metrics = await (await fetch(`${p.url}/metrics`)).text()
        expect(metrics).to.match(
          /^distributary_ingest_events_total\{event_type="inventory.level.changed",outcome="accepted"\} 1$/m,
        )
      } finally {
        await admin.disconnect()
        await p.close()
      }
    },
  )
})
