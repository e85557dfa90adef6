/**
 * The platform on Node.js 24 (issue 22): this machine runs Node 20, CI runs the unit tests and a
 * smoke of the platform on Node 24 too, with the official binary from the npm registry (cached per
 * user). The smoke: `distributary start` on the local stack, ready, an event accepted and read back
 * through the API's delivery of a subscription... kept short: ready, a publisher, an event accepted,
 * a clean shutdown, and no runtime warning on stderr (kafkajs' negative timeouts warn on Node 24).
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { expect } from 'chai'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { kafkaBrokers, loadConfig, mongoUri } from '../../config/index.ts'
import { defaultCacheDir, PROJECT_ROOT } from '../../stack/index.ts'
import { NODE_VERSIONS, nodeRuntime } from '../../stack/node-runtime.ts'
import { dropDatabaseLater, uniqueName, waitFor } from '../helpers/env.ts'
import { closedPort } from '../helpers/sources.ts'

describe('Node.js 24', function () {
  this.timeout(600_000)
  let node = ''
  before(async function () {
    this.timeout(600_000)
    node = await nodeRuntime(NODE_VERSIONS[24], defaultCacheDir(), (msg) =>
      process.stdout.write(`  [node 24] ${msg}\n`),
    )
    expect(spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()).to.equal(`v${NODE_VERSIONS[24]}`)
  })

  it('runs the unit tests', () => {
    const res = spawnSync(
      node,
      ['node_modules/mocha/bin/mocha.js', '--config', '.mocharc.unit.json', '--reporter', 'dot'],
      {
        cwd: PROJECT_ROOT,
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: '', PATH: `${node.replace(/\/node$/, '')}:${process.env.PATH}` },
        timeout: 540_000,
        maxBuffer: 32 << 20,
      },
    )
    const tail = (res.stdout + res.stderr).slice(-3000)
    expect(res.status, tail).to.equal(0)
    expect(res.stdout, tail).to.match(/\d+ passing/)
    expect(res.stdout + res.stderr, 'no runtime warning').to.not.match(/\(node:\d+\) \w*Warning/)
  })

  it('runs the platform: ready, an event accepted, a clean stop, no runtime warning', async () => {
    const base = loadConfig()
    const db = uniqueName('node24').slice(0, 60)
    dropDatabaseLater(db)
    const adminKey = randomBytes(32).toString('base64url')
    const port = await closedPort()
    const child = spawn(node, ['cli/bin.js', 'start'], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        KAFKA_BROKERS: kafkaBrokers(base).join(','),
        MONGODB_URI: mongoUri(base),
        MONGODB_DATABASE: db,
        ADMIN_API_KEY: adminKey,
        SECRETS_ENCRYPTION_KEYS: generateKeyRingEntry('n24'),
        HTTP_PORT: String(port),
        SCHEMA_REGISTRY_PORT: String(await closedPort()),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    const api = `http://127.0.0.1:${port}`
    try {
      await waitFor(async () => (await fetch(`${api}/ready`).catch(() => null))?.status === 200, {
        timeoutMs: 120_000,
        what: () => `ready on Node 24:\n${out.slice(-3000)}`,
      })
      const call = async (path: string, body: unknown, key = adminKey) => {
        const res = await fetch(api + path, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
        return { status: res.status, body: (await res.json()) as any }
      }
      const pub = await call('/v1/organizations', { kind: 'publisher', name: 'Acme 24', slug: `acme-${db.slice(-8)}` })
      expect(pub.status).to.equal(201)
      const key = await call('/v1/api-keys', { scope: 'publisher', name: 'erp', organizationId: pub.body.id })
      const event = {
        manufacturerId: pub.body.id,
        sku: 'SKU-24',
        locationId: 'L1',
        locationType: 'WAREHOUSE',
        unitOfMeasure: 'EA',
        onHand: 24,
        reserved: 0,
        available: 24,
        incoming: [],
        sequence: 1,
        occurredAt: new Date().toISOString(),
      }
      const accepted = await call('/v1/events/inventory.level.changed', [event], key.body.key)
      expect(accepted.status, JSON.stringify(accepted.body)).to.equal(202)
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited, out.slice(-3000)).to.equal(0)
    expect(out, 'no runtime warning').to.not.match(/\(node:\d+\) \w*Warning/)
  })
})
