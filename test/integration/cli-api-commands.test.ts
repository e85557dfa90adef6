/**
 * The CLI's thin commands over a running platform's management API, as an operator runs them:
 * a separate process, tables by default, JSON with --json, problems printed with the field.
 */
import { expect } from 'chai'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { testPlatformConfig } from '../helpers/env.ts'
import { runCli } from '../helpers/cli.ts'

const cli = (args: string[], env: NodeJS.ProcessEnv) => runCli(args, env)

describe('CLI: partners, subscriptions, connectors, dlq over the management API', function () {
  this.timeout(90_000)
  const { config, adminKey } = testPlatformConfig('cli')
  let platform: Platform
  let env: NodeJS.ProcessEnv
  let subId: string
  let offerId: string
  let partnerEnv: Record<string, string>

  before(async () => {
    platform = await startPlatform(config, createLogger({ level: 'error', write: () => undefined }), {
      stopStackOnClose: false,
      roles: 'api',
    })
    env = { DISTRIBUTARY_API_URL: platform.url, DISTRIBUTARY_API_KEY: adminKey }
    const call = async (p: string, body: unknown) => {
      const res = await fetch(platform.url + p, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return (await res.json()) as { id: string }
    }
    const pub = await call('/v1/organizations', { kind: 'publisher', name: 'Acme', slug: 'acme-cli' })
    const partner = await call('/v1/organizations', {
      kind: 'partner',
      name: 'Northwind Distribution',
      slug: 'northwind-cli',
    })
    const grant = await call('/v1/grants', {
      publisherId: pub.id,
      partnerId: partner.id,
      entitlements: [{ eventType: 'inventory.level.changed' }],
    })
    await call(`/v1/grants/${grant.id}/accept`, {})
    // a second publisher's offer, and the partner's own key to answer it with
    const globex = await call('/v1/organizations', { kind: 'publisher', name: 'Globex', slug: 'globex-cli' })
    offerId = (
      await call('/v1/grants', {
        publisherId: globex.id,
        partnerId: partner.id,
        entitlements: [{ eventType: 'deal.registered' }],
      })
    ).id
    const partnerKey = (await call('/v1/api-keys', {
      scope: 'partner',
      organizationId: partner.id,
      name: 'cli',
    })) as unknown as { key: string }
    partnerEnv = { ...env, DISTRIBUTARY_API_KEY: partnerKey.key }
    subId = (
      await call('/v1/subscriptions', {
        partnerId: partner.id,
        name: 'erp',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' },
      })
    ).id
  })

  after(async () => {
    await platform?.close()
  })

  it('lists partners as a table, and as the API JSON with --json', async () => {
    const table = await cli(['partners'], env)
    expect(table.code, table.err).to.equal(0)
    const lines = table.out.trim().split('\n')
    expect(lines[0]).to.match(/^ID\s+SLUG\s+NAME\s+KIND\s+CREATED$/)
    expect(lines.some((l) => /northwind-cli\s+Northwind Distribution\s+partner/.test(l))).to.equal(true)
    expect(
      lines.some((l) => l.includes('acme-cli')),
      'publishers are not partners',
    ).to.equal(false)
    const json = await cli(['partners', 'list', '--json'], env)
    expect((JSON.parse(json.out) as Array<{ slug: string }>).map((p) => p.slug)).to.deep.equal(['northwind-cli'])
  })

  it('lists subscriptions, pauses and resumes a connector, and requests a replay', async () => {
    const subs = await cli(['subscriptions', '--json'], env)
    expect((JSON.parse(subs.out) as Array<{ id: string }>).map((s) => s.id)).to.deep.equal([subId])
    const paused = await cli(['connectors', 'pause', subId], env)
    expect(paused.out).to.equal(`${subId}: desired state paused\n`)
    const status = await cli(['connectors', 'status', subId, '--json'], env)
    expect((JSON.parse(status.out) as { desiredState: string }).desiredState).to.equal('paused')
    const table = await cli(['connectors', 'status', subId], env)
    const lines = table.out.trim().split('\n')
    const [head, row] = [lines[0], lines.at(-1)]
    expect(head).to.match(/^ID\s+DESIRED\s+STATE\s+LAG\s+WORKER/)
    expect(row).to.match(new RegExp(`^${subId}\\s+paused\\s+\\S+`))
    expect((await cli(['connectors', 'resume', subId], env)).out).to.equal(`${subId}: desired state running\n`)
    const replay = await cli(['connectors', 'replay', subId, '--from', '2026-11-24T00:00:00Z'], env)
    expect(replay.code, replay.err).to.equal(0)
    expect(replay.out).to.contain('replay from 2026-11-24T00:00:00Z requested')
    const snapshot = await cli(['connectors', 'replay', subId, '--from', 'snapshot', '--json'], env)
    expect(snapshot.code, snapshot.err).to.equal(0)
    expect((JSON.parse(snapshot.out) as { offsetReset: { to: string } }).offsetReset.to).to.equal('snapshot')
  })

  it('grants: a partner sees an offer as offered, accepts it, and can end it', async () => {
    const table = await cli(['grants'], partnerEnv)
    expect(table.code, table.err).to.equal(0)
    expect(table.out.split('\n')[0]).to.match(/^ID\s+PUBLISHER\s+PARTNER\s+STATUS\s+ACCEPTED\s+PENDING$/)
    expect(table.out.split('\n').find((l) => l.startsWith(offerId))).to.match(
      /\soffered\s+\[\]\s+\["deal.registered"\]$/,
    )
    const accepted = await cli(['grants', 'accept', offerId], partnerEnv)
    expect(accepted.code, accepted.err).to.equal(0)
    expect(accepted.out).to.match(new RegExp(`^${offerId}: accepted \\(deal.registered\\) from org_`))
    const shown = JSON.parse((await cli(['grants', 'show', offerId, '--json'], partnerEnv)).out) as { status: string }
    expect(shown.status).to.equal('active')
    expect((await cli(['grants', 'decline', offerId], partnerEnv)).out).to.equal(
      `${offerId}: ended; nothing more is delivered under it\n`,
    )
    const gone = await cli(['grants', 'show', offerId], partnerEnv)
    expect(gone.code).to.equal(1)
  })

  it('dlq list shows an empty table for a subscription without dead letters; retry is accepted', async () => {
    const list = await cli(['dlq', 'list', subId], env)
    expect(list.code).to.equal(0)
    expect(list.out.trim().split('\n')).to.have.length(2) // header and rule, no rows
    expect((await cli(['dlq', 'retry', subId], env)).code).to.equal(0)
  })

  it("subscriptions test requests a test event; one --event-type at most, one of the subscription's", async () => {
    const sent = await cli(['subscriptions', 'test', subId, '--json'], env)
    expect(sent.code, sent.err).to.equal(0)
    expect(JSON.parse(sent.out)).to.include({ kind: 'test', status: 'pending', subscriptionId: subId })
    const two = await cli(['subscriptions', 'test', subId, '--event-type', 'a.b', '--event-type', 'c.d'], env)
    expect(two.code).to.equal(2)
    expect(two.err).to.contain('--event-type: a test event has one event type')
    const unknown = await cli(['subscriptions', 'test', subId, '--event-type', 'deal.registered'], env)
    expect(unknown.code).to.equal(1)
    expect(unknown.err).to.match(/eventType/)
  })

  it('names what is wrong: a bad --from, an unknown id (the API problem), a wrong key', async () => {
    const badFrom = await cli(['connectors', 'replay', subId, '--from', 'yesterday'], env)
    expect(badFrom.code).to.equal(2)
    expect(badFrom.err).to.contain('--from "yesterday" is not an ISO time')
    const unknown = await cli(['connectors', 'status', 'sub_000000000000000000000000'], env)
    expect(unknown.code).to.equal(1)
    expect(unknown.err).to.match(/404 Not Found/)
    const wrongKey = await cli(['partners'], { ...env, DISTRIBUTARY_API_KEY: 'dk_nope.nope' })
    expect(wrongKey.code).to.equal(1)
    expect(wrongKey.err).to.contain('401 Unauthorized')
    expect(wrongKey.err).to.contain('Authorization: is not a valid API key')
  })
})
