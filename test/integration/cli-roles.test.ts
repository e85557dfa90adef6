/**
 * `distributary start --role api` and two `distributary start --role worker` processes, as an operator
 * runs them: separate processes on the same Kafka and MongoDB. The API process takes the events, the
 * workers share the subscriptions between them and deliver everything; when one worker is killed, its
 * subscriptions resume on the other and nothing is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { expect } from 'chai'
import { MongoClient } from 'mongodb'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { SINK_COLLECTIONS, type LeaseDoc } from '../../connectors/sink/store.ts'
import { kafkaBrokers, loadConfig, mongoUri } from '../../config/index.ts'
import { PROJECT_ROOT } from '../../stack/index.ts'
import { dropDatabaseLater, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { closedPort } from '../helpers/sources.ts'
import { cliArgs, runCli } from '../helpers/cli.ts'

interface Proc {
  child: ChildProcess
  role: string
  output: () => string
}

function startRole(role: 'api' | 'worker', env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, cliArgs('start', '--role', role), {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const keep = (d: Buffer) => {
    out += d.toString()
    if (out.length > 200_000) out = out.slice(-100_000)
  }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  return { child, role, output: () => out }
}

const cli = (args: string[], env: NodeJS.ProcessEnv) => runCli(args, env, 60_000)

function exited(p: Proc): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve(p.child.exitCode)
  return new Promise((resolve) => p.child.once('exit', (code) => resolve(code)))
}

describe('CLI roles: one api process and two worker processes', function () {
  this.timeout(300_000)
  const base = loadConfig()
  const db = uniqueName('roles').slice(0, 60)
  const adminKey = randomBytes(32).toString('base64url')
  const procs: Proc[] = []
  const receivers: Receiver[] = []
  let api = ''
  let env: NodeJS.ProcessEnv
  let mongo: MongoClient

  const call = async (method: string, p: string, body?: unknown, key = adminKey) => {
    const res = await fetch(api + p, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, body: text ? (JSON.parse(text) as any) : undefined, text }
  }

  before(async () => {
    dropDatabaseLater(db)
    mongo = await new MongoClient(mongoUri(base)).connect()
    const port = await closedPort()
    const registryPort = await closedPort()
    api = `http://127.0.0.1:${port}`
    env = {
      KAFKA_BROKERS: kafkaBrokers(base).join(','),
      MONGODB_URI: mongoUri(base),
      MONGODB_DATABASE: db,
      ADMIN_API_KEY: adminKey,
      SECRETS_ENCRYPTION_KEYS: generateKeyRingEntry('roles1'),
      URL_GUARD_ALLOWLIST: '127.0.0.1',
      // The workers use the api process's built-in registry.
      SCHEMA_REGISTRY_PORT: String(registryPort),
      LOG_LEVEL: process.env.ROLES_LOG_LEVEL ?? 'warn',
      WORKER_LEASE_TTL_MS: '4000',
      WORKER_CURSOR_FLUSH_MS: '500',
    }
    procs.push(startRole('api', { ...env, HTTP_PORT: String(port) }))
    procs.push(startRole('worker', { ...env, WORKER_ID: 'roles-w1' }))
    procs.push(startRole('worker', { ...env, WORKER_ID: 'roles-w2' }))
    await waitFor(
      async () => {
        const r = await fetch(`${api}/ready`).catch(() => null)
        return r?.status === 200
      },
      { timeoutMs: 90_000, what: () => `the api process never became ready:\n${procs[0]!.output().slice(-3000)}` },
    )
  })

  after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM')
    await Promise.all(procs.map((p) => Promise.race([exited(p), new Promise((r) => setTimeout(r, 20_000))])))
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    if (process.env.ROLES_LOG_DIR)
      for (const [i, p] of procs.entries())
        (await import('node:fs')).writeFileSync(path.join(process.env.ROLES_LOG_DIR, `${i}-${p.role}.log`), p.output())
    await Promise.all(receivers.map((r) => r.close()))
    await mongo?.close()
  })

  it('delivers every event to every subscription, shares the subscriptions, and survives a killed worker', async () => {
    const pub = await call('POST', '/v1/organizations', {
      kind: 'publisher',
      name: 'Acme Roles',
      slug: `acme-${db.slice(-8)}`,
    })
    expect(pub.status, pub.text).to.equal(201)
    const pubKey = await call('POST', '/v1/api-keys', { scope: 'publisher', name: 'erp', organizationId: pub.body.id })
    expect(pubKey.status, pubKey.text).to.equal(201)

    // Four partners, one webhook subscription each: enough for both workers to hold some.
    const subs: Array<{ id: string; receiver: Receiver }> = []
    for (let i = 0; i < 4; i++) {
      const partner = await call('POST', '/v1/organizations', {
        kind: 'partner',
        name: `Partner ${i}`,
        slug: `p${i}-${db.slice(-8)}`,
      })
      expect(partner.status, partner.text).to.equal(201)
      const grant = await call('POST', '/v1/grants', {
        publisherId: pub.body.id,
        partnerId: partner.body.id,
        entitlements: [{ eventType: 'inventory.level.changed' }],
      })
      expect(grant.status, grant.text).to.equal(201)
      expect((await call('POST', `/v1/grants/${grant.body.id}/accept`)).status).to.equal(200)
      const receiver = await startReceiver()
      receivers.push(receiver)
      const sub = await call('POST', '/v1/subscriptions', {
        partnerId: partner.body.id,
        name: `stock-${i}`,
        eventTypes: ['inventory.level.changed'],
        startFrom: 'latest',
        sink: { type: 'webhook', url: receiver.url },
      })
      expect(sub.status, sub.text).to.equal(201)
      subs.push({ id: sub.body.id, receiver })
    }

    // Both workers hold subscriptions, and every subscription is running before events flow.
    const leases = mongo.db(db).collection<LeaseDoc>(SINK_COLLECTIONS.leases)
    await waitFor(
      async () => {
        const held = await leases
          .find({ _id: { $in: subs.map((s) => s.id) }, expiresAt: { $gt: new Date() } })
          .toArray()
        return held.length === subs.length && new Set(held.map((l) => l.workerId)).size === 2
      },
      {
        timeoutMs: 60_000,
        what: async () =>
          [
            `leases: ${JSON.stringify(await leases.find({}).toArray())}`,
            procs[1]!.output().slice(-2000),
            procs[2]!.output().slice(-2000),
          ].join('\n'),
      },
    )
    await waitFor(
      async () => {
        for (const s of subs) {
          const st = await call('GET', `/v1/connectors/${s.id}/status`)
          if (st.body?.state !== 'running') return false
        }
        return true
      },
      { timeoutMs: 60_000, what: 'not every connector reports running' },
    )

    const tag = db.slice(-8)
    const publish = async (from: number, to: number) => {
      for (let n = from; n < to; n += 50) {
        const batch = []
        for (let i = n; i < Math.min(to, n + 50); i++) {
          batch.push({
            manufacturerId: pub.body.id,
            sku: `SKU-${tag}-${i % 10}`,
            locationId: 'DC1',
            locationType: 'WAREHOUSE',
            unitOfMeasure: 'EA',
            onHand: i,
            reserved: 0,
            available: i,
            incoming: [],
            sequence: i,
            occurredAt: new Date().toISOString(),
          })
        }
        const r = await call('POST', '/v1/events/inventory.level.changed', batch, pubKey.body.key)
        expect(r.status, r.text).to.equal(202)
      }
    }
    const seqs = (r: Receiver) =>
      r.received
        .map((x) => JSON.parse(x.body) as { data: { sku: string; sequence: number } })
        .filter((b) => b.data.sku.includes(tag))
    const allArrived = (total: number) => async () =>
      subs.every((s) => new Set(seqs(s.receiver).map((b) => b.data.sequence)).size === total)

    const firstPublish = new Date()
    await publish(0, 200)
    await waitFor(allArrived(200), {
      timeoutMs: 60_000,
      what: () =>
        `received: ${subs.map((s) => new Set(seqs(s.receiver).map((b) => b.data.sequence)).size).join(', ')} of 200`,
    })

    // Kill -9 one worker; the other takes its subscriptions over and everything still arrives.
    const victim = procs[1]!
    victim.child.kill('SIGKILL')
    await exited(victim)
    await publish(200, 400)
    await waitFor(allArrived(400), {
      timeoutMs: 90_000,
      what: () =>
        `after the kill: ${subs.map((s) => new Set(seqs(s.receiver).map((b) => b.data.sequence)).size).join(', ')} ` +
        `of 400\n${procs[2]!.output().slice(-3000)}`,
    })
    const held = await leases.find({ _id: { $in: subs.map((s) => s.id) } }).toArray()
    expect(new Set(held.map((l) => l.workerId))).to.deep.equal(new Set(['roles-w2']))

    // `connectors replay --follow` from before the first event: a progress line until caught up, and
    // the partner receives every event again.
    const target = subs[0]!
    const before = seqs(target.receiver).length
    const replay = await cli(
      ['connectors', 'replay', target.id, '--from', new Date(firstPublish.getTime() - 1000).toISOString(), '--follow'],
      {
        ...env,
        DISTRIBUTARY_API_URL: api,
        DISTRIBUTARY_API_KEY: adminKey,
      },
    )
    expect(replay.code, replay.err + replay.out).to.equal(0)
    expect(replay.err).to.match(new RegExp(`replay ${target.id}: caught up: \\d+ events replayed`))
    await waitFor(() => seqs(target.receiver).length >= before + 400, {
      timeoutMs: 30_000,
      what: 'the replayed events',
    })
    const counts = new Map<number, number>()
    for (const b of seqs(target.receiver)) counts.set(b.data.sequence, (counts.get(b.data.sequence) ?? 0) + 1)
    expect(
      [...counts.values()].every((n) => n >= 2),
      'every event arrived again',
    ).to.equal(true)

    // Per-key order for every partner (redeliveries after the kill may repeat, never reorder what was new).
    for (const s of subs) {
      const lastBySku = new Map<string, number>()
      const firstSeen = new Set<number>()
      for (const b of seqs(s.receiver)) {
        if (firstSeen.has(b.data.sequence)) continue
        firstSeen.add(b.data.sequence)
        const prev = lastBySku.get(b.data.sku) ?? -1
        expect(b.data.sequence, `order of ${b.data.sku} at subscription ${s.id}`).to.be.greaterThan(prev)
        lastBySku.set(b.data.sku, b.data.sequence)
      }
    }
  })
})
