/**
 * `distributary demo --events N --json`: the newcomer's demo, bounded and non-interactive. What each
 * partner's receiver got is checked against its grant: the tier-2 distributor only its two locations and
 * never on-hand, reserved or incoming; each distributor only its own deals; every webhook signed; the
 * MongoDB projection at the latest version of every key; and the process leaves nothing running.
 */
import { spawn } from 'node:child_process'
import { expect } from 'chai'
import { MongoClient } from 'mongodb'
import { kafkaBrokers, loadConfig, mongoUri } from '../../config/index.ts'
import type { DemoSummary } from '../../cli/demo.ts'
import { PROJECT_ROOT } from '../../stack/index.ts'
import { cliArgs } from '../helpers/cli.ts'

describe('distributary demo (bounded, non-interactive)', function () {
  this.timeout(240_000)
  const base = loadConfig()

  it('streams stock and deals; each partner gets what its grant allows; a deal goes to the CRM and back', async () => {
    const result = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, cliArgs('demo', '--events', '150', '--rate', '100', '--json'), {
        cwd: PROJECT_ROOT,
        env: { ...process.env, KAFKA_BROKERS: kafkaBrokers(base).join(','), MONGODB_URI: mongoUri(base) },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      const timer = setTimeout(() => child.kill('SIGKILL'), 200_000)
      child.once('exit', (code) => {
        clearTimeout(timer)
        resolve({ code, out, err })
      })
    })
    expect(result.code, result.err.slice(-4000)).to.equal(0)
    const summary = JSON.parse(result.out.trim().split('\n').at(-1)!) as DemoSummary
    expect(summary.complete).to.equal(true)
    expect(summary.published.stock).to.equal(150)
    expect(summary.published.deals).to.equal(6)

    const [northwind, contoso] = summary.partners
    // Tier 1: every stock change, every field, its own deals only.
    expect(northwind!.webhook.stockReceived).to.be.at.least(northwind!.webhook.stockExpected)
    expect(northwind!.webhook.stockExpected).to.equal(150)
    expect(northwind!.webhook.fieldsSeen).to.include.members(['onHand', 'reserved', 'available', 'incoming'])
    // Tier 2: only its two locations, only the granted fields.
    expect(contoso!.webhook.stockExpected).to.be.below(150)
    expect(contoso!.webhook.stockWithheldByGrant).to.equal(150 - contoso!.webhook.stockExpected)
    expect(contoso!.webhook.stockReceived).to.be.at.least(contoso!.webhook.stockExpected)
    expect(
      contoso!.webhook.locationsSeen.every((l) => ['DE-HAM-1', 'FR-PAR-1'].includes(l)),
      contoso!.webhook.locationsSeen.join(),
    ).to.equal(true)
    expect(contoso!.webhook.fieldsSeen).to.not.include.members(['onHand'])
    expect(
      contoso!.webhook.fieldsSeen.filter((f) => ['onHand', 'reserved', 'incoming', 'gtin', 'locationType'].includes(f)),
    ).to.deep.equal([])
    for (const p of [northwind!, contoso!]) {
      expect(p.webhook.foreignDeals, `${p.name} got another partner's deal`).to.equal(0)
      expect(p.webhook.dealsReceived).to.be.at.least(p.webhook.dealsExpected)
      expect(p.webhook.dealsExpected).to.equal(3)
      expect(p.webhook.badSignatures).to.equal(0)
    }
    // The projection holds the latest version of every key Northwind may see.
    expect(northwind!.mongodb!.documents).to.equal(northwind!.mongodb!.keysExpected)
    expect(northwind!.mongodb!.upToDate).to.equal(northwind!.mongodb!.keysExpected)

    // Deal registration: Northwind's approved in the CRM, Contoso's conflicting one rejected, each told its own only.
    const d = summary.dealRegistration
    expect(d.northwind.registered).to.equal('submitted')
    expect(d.contoso.registered).to.equal('conflict_review')
    expect(d.contoso.conflict).to.equal(true)
    expect(d.northwind.outcome).to.equal('APPROVED')
    expect(d.contoso.outcome).to.equal('REJECTED')
    expect(d.crmReceived).to.be.at.least(2) // both registrations; the decisions follow
    expect(d.crossDelivered).to.equal(0)

    // Nothing left behind: the demo's databases are gone.
    const mongo = await new MongoClient(mongoUri(base)).connect()
    try {
      const names = (await mongo.db().admin().listDatabases()).databases.map((d) => d.name)
      expect(names.filter((n) => n.startsWith('distributary-demo-'))).to.deep.equal([])
    } finally {
      await mongo.close()
    }
  })
})
