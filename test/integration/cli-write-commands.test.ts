/**
 * The CLI's create, update and delete commands over a running platform's management API, as an
 * operator runs them (a separate process, the shipped bundle): flags or --from-file with the API's
 * JSON (a file, or stdin), a line by default and the API's JSON with --json, each round trip read
 * back with list or show, and the API's validation errors printed as one line naming the field.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { runCli } from '../helpers/cli.ts'
import { testPlatformConfig } from '../helpers/env.ts'

describe('CLI: create and update organizations, keys, grants and subscriptions', function () {
  this.timeout(120_000)
  const { config, adminKey } = testPlatformConfig('cli-write')
  let platform: Platform
  let env: NodeJS.ProcessEnv
  let tmp: string
  const cli = (args: string[], e: NodeJS.ProcessEnv = env, input?: string) => runCli(args, e, 60_000, input)
  /** Runs a command with --json and returns its parsed stdout (exit 0 asserted). */
  const cliJson = async <T>(args: string[], e: NodeJS.ProcessEnv = env, input?: string): Promise<T> => {
    const r = await cli([...args, '--json'], e, input)
    expect(r.code, `${args.join(' ')}: ${r.err}`).to.equal(0)
    return JSON.parse(r.out) as T
  }
  // shared between the steps below, in order
  let publisherId: string
  let partnerId: string
  let partnerEnv: NodeJS.ProcessEnv
  let grantId: string

  before(async () => {
    platform = await startPlatform(config, createLogger({ level: 'error', write: () => undefined }), {
      stopStackOnClose: false,
      roles: 'api',
    })
    env = { DISTRIBUTARY_API_URL: platform.url, DISTRIBUTARY_API_KEY: adminKey }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-write-'))
  })

  after(async () => {
    await platform?.close()
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('organizations: create with flags and from a file, list, show, update', async () => {
    const created = await cli([
      'organizations',
      'create',
      '--kind',
      'publisher',
      '--name',
      'Acme Components',
      '--slug',
      'acme-write',
    ])
    expect(created.code, created.err).to.equal(0)
    expect(created.out).to.match(/^org_[0-9a-f]{24}: created publisher acme-write \(Acme Components\)\n$/)
    publisherId = created.out.slice(0, 28)

    const file = path.join(tmp, 'northwind.json')
    fs.writeFileSync(
      file,
      JSON.stringify({
        kind: 'partner',
        name: 'Northwind',
        slug: 'northwind-write',
        profile: { partnerType: 'DISTRIBUTOR', tier: 'GOLD', headquartersCountry: 'DE' },
      }),
    )
    const partner = await cliJson<{ id: string; slug: string; profile: { tier: string; partnerType: string } }>([
      'organizations',
      'create',
      '--from-file',
      file,
    ])
    expect([partner.slug, partner.profile.partnerType, partner.profile.tier]).to.deep.equal([
      'northwind-write',
      'DISTRIBUTOR',
      'GOLD',
    ])
    partnerId = partner.id

    const all = await cliJson<Array<{ id: string }>>(['organizations'])
    expect(all.map((o) => o.id).sort()).to.deep.equal([publisherId, partnerId].sort())
    const publishers = await cli(['organizations', 'list', '--kind', 'publisher'])
    expect(publishers.out.split('\n')[0]).to.match(/^ID\s+SLUG\s+NAME\s+KIND\s+CREATED$/)
    expect(publishers.out).to.contain('acme-write').and.not.contain('northwind-write')

    // a flag replaces the file's field; the profile comes from stdin
    const updated = await cli(
      ['organizations', 'update', partnerId, '--from-file', '-', '--name', 'Northwind Distribution'],
      env,
      JSON.stringify({ name: 'ignored', profile: { tier: 'PLATINUM' } }),
    )
    expect(updated.code, updated.err).to.equal(0)
    expect(updated.out).to.equal(`${partnerId}: updated partner northwind-write (Northwind Distribution)\n`)
    const shown = await cliJson<{ name: string; profile: { tier: string } }>(['organizations', 'show', partnerId])
    expect([shown.name, shown.profile.tier]).to.deep.equal(['Northwind Distribution', 'PLATINUM'])
  })

  it('keys: create (the key shown once, and it works), list, rotate, revoke', async () => {
    const created = await cli([
      'keys',
      'create',
      '--scope',
      'partner',
      '--organization-id',
      partnerId,
      '--name',
      'northwind ops',
    ])
    expect(created.code, created.err).to.equal(0)
    const [line, keyLine] = created.out.split('\n')
    expect(line).to.match(new RegExp(`^key_[0-9a-f]{24}: created partner key "northwind ops" of ${partnerId}$`))
    expect(keyLine).to.match(/^key: dk_[0-9a-f]{12}\.\S+$/)
    const keyId = line!.slice(0, 28)
    partnerEnv = { ...env, DISTRIBUTARY_API_KEY: keyLine!.slice('key: '.length) }
    expect((await cli(['subscriptions'], partnerEnv)).code, 'the new key works').to.equal(0)

    const listed = await cliJson<Array<{ id: string; name: string }>>(['keys', 'list', '--organization-id', partnerId])
    expect(listed.map((k) => [k.id, k.name])).to.deep.equal([[keyId, 'northwind ops']])

    const rotated = await cliJson<{ id: string; key: string; rotatedFrom: string }>([
      'keys',
      'rotate',
      keyId,
      '--overlap-seconds',
      '0',
    ])
    expect(rotated.rotatedFrom).to.equal(keyId)
    partnerEnv = { ...env, DISTRIBUTARY_API_KEY: rotated.key }
    const revoked = await cli(['keys', 'revoke', keyId])
    expect([revoked.code, revoked.out]).to.deep.equal([0, `${keyId}: revoked\n`])
    expect((await cliJson<{ revokedAt: string | null }>(['keys', 'show', keyId])).revokedAt).to.be.a('string')
  })

  it(
    'grants: create with flags (fields and a filter), the partner accepts, update ' + 'adds a pending event type',
    async () => {
      const created = await cli([
        'grants',
        'create',
        '--publisher-id',
        publisherId,
        '--partner-id',
        partnerId,
        '--event-type',
        'inventory.level.changed',
        '--fields',
        'sku,available',
        '--filter',
        'locationId=DE-HAM-1,FR-PAR-1',
      ])
      expect(created.code, created.err).to.equal(0)
      expect(created.out).to.match(
        new RegExp(
          `^grt_[0-9a-f]{24}: offered inventory.level.changed to ${partnerId} ` +
            `\\(offered; the partner accepts it with distributary grants accept ` +
            `grt_[0-9a-f]{24}\\)\\n$`,
        ),
      )
      grantId = created.out.slice(0, 28)
      const shown = await cliJson<{ status: string; entitlements: unknown[] }>(['grants', 'show', grantId])
      expect(shown.status).to.equal('offered')
      expect(shown.entitlements).to.deep.equal([
        {
          eventType: 'inventory.level.changed',
          filter: { locationId: { in: ['DE-HAM-1', 'FR-PAR-1'] } },
          fields: ['sku', 'available'],
        },
      ])

      expect((await cli(['grants', 'accept', grantId], partnerEnv)).code).to.equal(0)
      const updated = await cli([
        'grants',
        'update',
        grantId,
        '--event-type',
        'inventory.level.changed,deal.registered',
      ])
      expect(updated.code, updated.err).to.equal(0)
      expect(updated.out).to.match(
        new RegExp(
          `^${grantId}: updated \\(version \\d+\\); delivered: ` +
            `inventory.level.changed; pending the partner's acceptance: ` +
            `deal.registered\\n$`,
        ),
      )
      const listed = await cliJson<Array<{ id: string; pendingEventTypes: string[] }>>([
        'grants',
        'list',
        '--partner-id',
        partnerId,
      ])
      expect(listed.map((g) => [g.id, g.pendingEventTypes])).to.deep.equal([[grantId, ['deal.registered']]])
    },
  )

  it(
    'subscriptions: create with flags (the webhook secret shown once) or a REST ' +
      'sink from stdin, show, update from a file and flags, delete',
    async () => {
      const created = await cli([
        'subscriptions',
        'create',
        '--partner-id',
        partnerId,
        '--name',
        'erp',
        '--event-type',
        'inventory.level.changed',
        '--webhook-url',
        'http://127.0.0.1:9/hook',
        '--fields',
        'sku',
      ])
      expect(created.code, created.err).to.equal(0)
      const [line, secretLine] = created.out.split('\n')
      expect(line).to.match(
        new RegExp(
          `^sub_[0-9a-f]{24}: created erp for ${partnerId} \\(inventory.level.changed\\) → webhook http://127.0.0.1:9/hook$`,
        ),
      )
      expect(secretLine).to.match(/^webhook secret: whsec_\S+$/)
      const subId = line!.slice(0, 28)

      const file = path.join(tmp, 'erp-patch.json')
      fs.writeFileSync(file, JSON.stringify({ deliveryPolicy: { timeoutMs: 8000, concurrency: 4 } }))
      const updated = await cliJson<{ name: string; deliveryPolicy: unknown; sink: { url: string } }>([
        'subscriptions',
        'update',
        subId,
        '--from-file',
        file,
        '--name',
        'erp-stock',
        '--webhook-url',
        'http://127.0.0.1:9/stock',
      ])
      expect([updated.name, updated.deliveryPolicy, updated.sink.url]).to.deep.equal([
        'erp-stock',
        { timeoutMs: 8000, concurrency: 4 },
        'http://127.0.0.1:9/stock',
      ])
      const shown = await cliJson<{ name: string; fields: string[] }>(['subscriptions', 'show', subId], partnerEnv)
      expect([shown.name, shown.fields]).to.deep.equal(['erp-stock', ['sku']])
      const listed = await cli(['subscriptions', 'list', '--partner-id', partnerId])
      expect(listed.out).to.match(
        new RegExp(
          `^${subId}\\s+${partnerId}\\s+erp-stock\\s+\\["inventory.level.changed"\\]\\s+webhook\\s+http://127.0.0.1:9/stock$`,
          'm',
        ),
      )

      // a sink the flags do not cover, from stdin
      const rest = {
        partnerId,
        name: 'crm',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'rest', url: 'http://127.0.0.1:9/stock/{value.sku}', method: 'PUT' },
        deliveryPolicy: { timeoutMs: 8000 },
      }
      const restSub = await cliJson<{ id: string; sink: { type: string; method: string }; webhookSecret?: string }>(
        ['subscriptions', 'create', '--from-file', '-'],
        env,
        JSON.stringify(rest),
      )
      expect([restSub.sink.type, restSub.sink.method, restSub.webhookSecret]).to.deep.equal(['rest', 'PUT', undefined])

      const deleted = await cli(['subscriptions', 'delete', subId])
      expect([deleted.code, deleted.out]).to.deep.equal([0, `${subId}: deleted, with its connector\n`])
      const gone = await cli(['subscriptions', 'show', subId])
      expect([gone.code, gone.err]).to.deep.equal([1, 'distributary: 404 Not Found: subscription not found\n'])
    },
  )

  it('inbound connectors: create (the secret shown once), list, update, rotate the secret, delete', async () => {
    const created = await cli([
      'inbound',
      'create',
      '--name',
      'salesforce',
      '--publisher-id',
      publisherId,
      '--mapping',
      '{ "dealId": Id, "action": $lowercase(Decision) }',
    ])
    expect(created.code, created.err).to.equal(0)
    const m = /^(inb_[0-9a-f]{24}): \/v1\/inbound\/inb_[0-9a-f]{24}\nsecret: (whsec_\S+)\n\(shown only now/.exec(
      created.out,
    )
    expect(m, created.out).to.not.equal(null)
    const [, id, secret] = m!
    const listed = await cli(['inbound', 'list'])
    expect(listed.out).to.include(id).and.include('salesforce').and.not.include(secret!)

    const noChange = await cli(['inbound', 'update', id!])
    expect(noChange.code).to.equal(2)
    const badTolerance = await cli(['inbound', 'update', id!, '--tolerance-seconds', 'soon'])
    expect([badTolerance.code, badTolerance.err]).to.deep.equal([
      2,
      'distributary: --tolerance-seconds must be a whole number of seconds (got "soon") ' +
        '(see distributary inbound --help)\n',
    ])
    const badMapping = await cli(['inbound', 'update', id!, '--mapping', '{ "dealId": '])
    expect(badMapping.code).to.equal(1)
    expect(badMapping.err).to.match(/^distributary: 422 Unprocessable Content: mapping: /)
    const updated = await cliJson<{ toleranceSeconds: number; name: string }>([
      'inbound',
      'update',
      id!,
      '--tolerance-seconds',
      '60',
    ])
    expect(updated).to.include({ toleranceSeconds: 60, name: 'salesforce' })

    const rotated = await cliJson<{ secret: string; previousSecrets: unknown[] }>([
      'inbound',
      'rotate-secret',
      id!,
      '--overlap-seconds',
      '0',
    ])
    expect(rotated.secret)
      .to.match(/^whsec_/)
      .and.not.equal(secret)
    expect(rotated.previousSecrets).to.deep.equal([])
    const shown = await cliJson<Record<string, unknown>>(['inbound', 'show', id!])
    expect(shown).to.include({ id, toleranceSeconds: 60 }).and.not.have.property('secret')

    const deleted = await cli(['inbound', 'delete', id!])
    expect([deleted.code, deleted.out]).to.deep.equal([0, `${id}: deleted\n`])
    expect((await cli(['inbound', 'show', id!])).code).to.equal(1)
  })

  it('a validation error of the API is one line naming the field, exit 1', async () => {
    const badSlug = await cli([
      'organizations',
      'create',
      '--kind',
      'partner',
      '--name',
      'Contoso',
      '--slug',
      'Contoso Supply',
    ])
    expect([badSlug.code, badSlug.out]).to.deep.equal([1, ''])
    expect(badSlug.err).to.equal(
      'distributary: 400 Bad Request: slug: must match pattern "^[a-z0-9][a-z0-9-]{1,62}$"\n',
    )

    const missing = await cli(['organizations', 'create', '--kind', 'partner', '--name', 'Contoso'])
    expect(missing.err).to.equal("distributary: 400 Bad Request: slug: must have required property 'slug'\n")

    const badProfile = await cli(
      ['organizations', 'update', partnerId, '--from-file', '-'],
      env,
      JSON.stringify({ profile: { tier: 'DIAMOND' } }),
    )
    expect(badProfile.code).to.equal(1)
    expect(badProfile.err).to.match(
      /^distributary: 422 Unprocessable Content: profile\.tier: must be one of .*, got "DIAMOND"\n$/,
    )

    const notGranted = await cli([
      'subscriptions',
      'create',
      '--partner-id',
      partnerId,
      '--name',
      'deals',
      '--event-type',
      'deal.won',
      '--webhook-url',
      'http://127.0.0.1:9/deals',
    ])
    expect(notGranted.code).to.equal(1)
    expect(notGranted.err).to.equal(
      'distributary: 422 Unprocessable Content: eventTypes[0]: event type deal.won is not granted to this partner\n',
    )

    const duplicate = await cli([
      'organizations',
      'create',
      '--kind',
      'partner',
      '--name',
      'Again',
      '--slug',
      'northwind-write',
    ])
    expect(duplicate.code).to.equal(1)
    expect(duplicate.err).to.equal(
      'distributary: 409 Conflict: slug: an organization with slug northwind-write exists\n',
    )

    const notJson = await cli(['grants', 'create', '--from-file', '-'], env, '{"partnerId": ')
    expect(notJson.code).to.equal(2)
    expect(notJson.err).to.match(/^distributary: --from-file -: not JSON \(.*\) \(see distributary grants --help\)\n$/)
  })
})
