/**
 * A three-broker local cluster (STACK_KAFKA_BROKERS=3), provisioned by the test itself through the
 * stack API on ports and in a folder of its own (the shared stack is untouched): the platform runs
 * on it, its topics get three replicas and min.insync.replicas=2, and the broker leading the most
 * partitions of inventory.levels is killed (SIGKILL) while events are ingested. No event that got a
 * 202 is lost, ingestion answers 503 only for a moment and recovers by itself, deliveries to a
 * partner's webhook go on, and `stack up` restarts the killed node.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { ConfigResourceTypes, ConfigSource, type Admin } from 'kafkajs'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createKafka } from '../../common/kafka/index.ts'
import { createLogger } from '../../common/logger.ts'
import { kafkaBrokers, loadConfig, mongoUri } from '../../config/index.ts'
import { DEAD_LETTERS } from '../../schemas/topics.ts'
import { HEADER } from '../../schemas/headers.ts'
import { kafkaNodes, stackDown, stackSettings, stackStatus, stackUp, type StackSettings } from '../../stack/index.ts'
import { readPid } from '../../stack/processes.ts'
import { freePortRange, testConfig, testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { expectPerKeyOrder, verified } from '../helpers/sink-assertions.ts'

interface Answer {
  loop: number
  start: number
  end: number
  status: number
  ids: string[]
}

/** The runs of answers other than 202 of one ingestion loop, as [first request's start, last answer's end]. */
function failureWindows(answers: Answer[]): Array<{ from: number; to: number; count: number }> {
  const out: Array<{ from: number; to: number; count: number }> = []
  let run: { from: number; to: number; count: number } | undefined
  for (const a of answers) {
    if (a.status === 202) {
      if (run) out.push(run)
      run = undefined
    } else if (run) {
      run.to = a.end
      run.count++
    } else run = { from: a.start, to: a.end, count: 1 }
  }
  if (run) out.push(run)
  return out
}

describe('three-broker local cluster: a broker killed during ingestion', function () {
  this.timeout(240_000)
  const lines: string[] = []
  const logger = createLogger({ level: 'warn', write: (l) => lines.push(l) })
  let dir: string
  let settings: StackSettings
  let env: NodeJS.ProcessEnv
  let platform: Platform | undefined
  let rx: Receiver | undefined
  let admin: Admin | undefined
  let startupMs = 0

  before(async function () {
    this.timeout(180_000)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distributary-three-brokers-'))
    // three broker ports, three controller ports, three partner listener ports (STACK_KAFKA_CONTROLLER_PORT=0,
    // STACK_KAFKA_PARTNER_PORT=0)
    const first = await freePortRange(9)
    env = {
      ...process.env,
      STACK_DIR: dir,
      STACK_KAFKA_BROKERS: '3',
      STACK_KAFKA_PORT: String(first),
      STACK_KAFKA_CONTROLLER_PORT: '0',
      STACK_KAFKA_PARTNER_PORT: '0',
      STACK_KAFKA_HEAP: '384m',
      KAFKA_BROKERS: '', // the platform derives the brokers from the stack settings
      MONGODB_URI: mongoUri(testConfig()), // the store the other tests use
    }
    settings = stackSettings(loadConfig({ env }))
    expect(settings.services).to.deep.equal(['kafka'])
    const t0 = Date.now()
    const results = await stackUp(settings, (msg) => process.stdout.write(`  [three-brokers] ${msg}\n`))
    startupMs = Date.now() - t0
    process.stdout.write(`  [three-brokers] three-node cluster ready in ${startupMs} ms\n`)
    expect(results).to.deep.equal(['kafka-1', 'kafka-2', 'kafka-3'].map((name) => ({ name, action: 'started' })))
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed')
      process.stdout.write(`  [three-brokers] platform log (last lines):\n${lines.slice(-30).join('\n')}\n`)
  })

  after(async () => {
    await admin?.disconnect().catch(() => undefined)
    await platform?.close().catch(() => undefined)
    await rx?.close().catch(() => undefined)
    if (settings)
      await stackDown(settings, (msg) => process.stdout.write(`  [three-brokers] ${msg}\n`)).catch(() => undefined)
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('`stack status` shows each node, and the platform is pointed at all three brokers', async () => {
    const status = await stackStatus(settings)
    expect(status.map((s) => [s.name, s.state, s.address])).to.deep.equal(
      kafkaNodes(settings).map((n) => [n.name, 'running', `127.0.0.1:${n.port}`]),
    )
    const nodes = kafkaNodes(settings)
    expect(new Set(nodes.map((n) => n.controllerPort)).size).to.equal(3)
    expect(nodes[0]!.controllerPort, 'controllers after the brokers').to.equal(settings.kafka.port + 3)
    expect(kafkaBrokers(loadConfig({ env }))).to.deep.equal(nodes.map((n) => `127.0.0.1:${n.port}`))
    for (const n of nodes)
      expect(
        fs.existsSync(path.join(dir, `kafka-${n.id}`, 'data', 'meta.properties')),
        `${n.name} formatted in its own folder`,
      ).to.equal(true)
    const clusterIds = nodes.map(
      (n) => /^cluster\.id=(.+)$/m.exec(fs.readFileSync(path.join(n.home, 'data', 'meta.properties'), 'utf8'))?.[1],
    )
    expect(new Set(clusterIds).size, 'one cluster id').to.equal(1)
  })

  // One run of the full suite once saw an accepted (202) event missing after the kill: kafkajs gave a
  // failed request's sequence numbers back although the broker had appended it, and the next batch,
  // with the same sequences, was answered "duplicate" and dropped. The source runner now starts a new
  // producer after any failed produce (test/integration/source-runner.test.ts reproduces the loss).
  it(
    'loses no accepted event and answers 503 only briefly when the busiest broker ' + 'is killed; deliveries go on',
    async () => {
      const { config, adminKey } = testPlatformConfig('three-brokers', env)
      platform = await startPlatform(config, logger, { stopStackOnClose: false })
      const p = platform
      await p.contracts
      await p.worker
      admin = createKafka(config, undefined, uniqueName('three-brokers-admin')).admin()
      await admin.connect()

      // Topics created on a cluster of three: three replicas of every partition, two to acknowledge a write.
      const topics = ['inventory.levels', config.schemaRegistry.topic, DEAD_LETTERS.name]
      const meta = await admin.fetchTopicMetadata({ topics })
      for (const t of meta.topics)
        for (const part of t.partitions)
          expect(part.replicas, `${t.name}/${part.partitionId} replicas`).to.have.length(3)
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((name) => ({
          type: ConfigResourceTypes.TOPIC,
          name,
          configNames: ['min.insync.replicas'],
        })),
      })
      for (const r of described.resources) {
        const isr = r.configEntries.find((e) => e.configName === 'min.insync.replicas')
        expect(
          [isr?.configValue, isr?.configSource],
          `${r.resourceName} min.insync.replicas, set on the topic by the platform`,
        ).to.deep.equal(['2', ConfigSource.TOPIC_CONFIG])
      }

      const call = async (method: string, urlPath: string, body?: unknown, key = adminKey) => {
        const res = await fetch(p.url + urlPath, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          ...(body ? { body: JSON.stringify(body) } : {}),
        })
        return { status: res.status, body: (await res.json().catch(() => null)) as any }
      }
      const pub = await call('POST', '/v1/organizations', {
        kind: 'publisher',
        name: 'Acme',
        slug: uniqueName('acme').slice(0, 40),
      })
      const partner = await call('POST', '/v1/organizations', {
        kind: 'partner',
        name: 'Northwind',
        slug: uniqueName('nw').slice(0, 40),
      })
      expect([pub.status, partner.status]).to.deep.equal([201, 201])
      const pubKey = (
        await call('POST', '/v1/api-keys', { scope: 'publisher', organizationId: pub.body.id, name: 'erp' })
      ).body.key as string
      const grant = await call('POST', '/v1/grants', {
        publisherId: pub.body.id,
        partnerId: partner.body.id,
        entitlements: [{ eventType: 'inventory.level.changed' }],
      })
      expect((await call('POST', `/v1/grants/${grant.body.id}/accept`)).status).to.equal(200)
      rx = await startReceiver()
      const receiver = rx
      const sub = await call('POST', '/v1/subscriptions', {
        partnerId: partner.body.id,
        name: 'stock',
        eventTypes: ['inventory.level.changed'],
        startFrom: 'earliest',
        sink: { type: 'webhook', url: receiver.url },
      })
      expect(sub.status).to.equal(201)
      const secret = sub.body.webhookSecret as string
      await waitFor(async () => (await call('GET', `/v1/connectors/${sub.body.id}/status`)).body?.state === 'running', {
        timeoutMs: 30_000,
        what: 'the connector running',
      })

      // Ingestion: two loops, each with keys of its own, one event per request, as fast as answered.
      const answers: Answer[] = []
      const accepted = new Set<string>()
      let stop = false
      let seq = 0
      const loop = async (n: number) => {
        for (let i = 0; !stop; i++) {
          const event = {
            manufacturerId: pub.body.id as string,
            sku: `SKU-${n}-${i % 8}`,
            locationId: 'L1',
            locationType: 'WAREHOUSE',
            unitOfMeasure: 'EA',
            onHand: i,
            reserved: 0,
            available: i,
            incoming: [],
            sequence: ++seq,
            occurredAt: new Date().toISOString(),
          }
          const start = Date.now()
          let status: number
          let ids: string[] = []
          try {
            const res = await fetch(`${p.url}/v1/events/inventory.level.changed`, {
              method: 'POST',
              headers: { authorization: `Bearer ${pubKey}`, 'content-type': 'application/json' },
              body: JSON.stringify([event]),
              signal: AbortSignal.timeout(60_000),
            })
            status = res.status
            const body = (await res.json().catch(() => ({}))) as { eventIds?: string[] }
            if (status === 202) ids = body.eventIds ?? []
          } catch {
            status = -1 // no answer: counted as not accepted
          }
          answers.push({ loop: n, start, end: Date.now(), status, ids })
          for (const id of ids) accepted.add(id)
          if (status !== 202) await new Promise((r) => setTimeout(r, 100)) // a client backing off a little
        }
      }
      // The first accepted event opens the stream; the subscription delivers it.
      await waitFor(
        async () =>
          (
            await call(
              'POST',
              '/v1/events/inventory.level.changed',
              [
                {
                  manufacturerId: pub.body.id,
                  sku: 'SKU-warm',
                  locationId: 'L1',
                  locationType: 'WAREHOUSE',
                  unitOfMeasure: 'EA',
                  onHand: 0,
                  reserved: 0,
                  available: 0,
                  incoming: [],
                  sequence: 0,
                  occurredAt: new Date().toISOString(),
                },
              ],
              pubKey,
            )
          ).status === 202,
        { what: 'ingestion ready' },
      )
      await waitFor(() => receiver.received.length > 0, { timeoutMs: 30_000, what: 'the first delivery' })
      const loops = [loop(1), loop(2)]
      try {
        await new Promise((r) => setTimeout(r, 5000))

        // Kill the broker that leads the most partitions of inventory.levels.
        const leaders = new Map<number, number>()
        for (const part of (await admin.fetchTopicMetadata({ topics: ['inventory.levels'] })).topics[0]!.partitions)
          leaders.set(part.leader, (leaders.get(part.leader) ?? 0) + 1)
        const [victimId, led] = [...leaders].sort((a, b) => b[1] - a[1])[0]!
        const victim = kafkaNodes(settings).find((n) => n.id === victimId)!
        const pid = readPid(path.join(settings.dir, `${victim.name}.pid`))!.pid
        const acceptedBeforeKill = accepted.size
        const killedAt = Date.now()
        process.kill(pid, 'SIGKILL')
        process.stdout.write(
          `  [three-brokers] killed ${victim.name} (pid ${pid}), leader of ${led} of ` +
            `6 partitions, after ${acceptedBeforeKill} accepted events\n`,
        )

        // Ingestion goes on by itself: 202s again for a while after the kill.
        await waitFor(
          () =>
            answers.filter((a) => a.start > killedAt && a.status === 202).length >= 100 &&
            Date.now() - killedAt > 15_000,
          { timeoutMs: 60_000, what: '202s after the kill' },
        )
        stop = true
        await Promise.all(loops)

        const windows = [1, 2].flatMap((n) => failureWindows(answers.filter((a) => a.loop === n)))
        const longest = windows.reduce((m, w) => Math.max(m, w.to - w.from), 0)
        // The longest time without any acceptance: 503s and requests held while the partitions move.
        const acceptedAt = answers
          .filter((a) => a.status === 202)
          .map((a) => a.end)
          .sort((a, b) => a - b)
        const gap = acceptedAt.slice(1).reduce((m, t, i) => Math.max(m, t - acceptedAt[i]!), 0)
        const slowest202 = answers.filter((a) => a.status === 202).reduce((m, a) => Math.max(m, a.end - a.start), 0)
        const statuses = [...new Set(answers.map((a) => a.status))].sort()
        process.stdout.write(
          `  [three-brokers] ${answers.length} requests, ${accepted.size} accepted, ` +
            `non-202 answers: ${answers.filter((a) => a.status !== 202).length} ` +
            `(statuses ${statuses.join(', ')}), longest non-202 window ${longest} ms, ` +
            `slowest 202 ${slowest202} ms, longest time without an acceptance ${gap} ` +
            `ms\n`,
        )
        expect(
          statuses.filter((s) => s !== 202 && s !== 503),
          'answers other than 202 and 503',
        ).to.deep.equal([])
        expect(longest, 'longest run of 503s (ms)').to.be.below(10_000)
        expect(gap, 'longest time without an acceptance (ms)').to.be.below(20_000)
        for (const n of [1, 2]) {
          const mine = answers.filter((a) => a.loop === n)
          expect(
            mine.slice(-20).map((a) => a.status),
            `loop ${n} recovered by itself`,
          ).to.deep.equal(Array(20).fill(202))
        }
        expect(accepted.size - acceptedBeforeKill, 'events accepted after the kill').to.be.greaterThan(100)

        // Every event that got a 202 is in the topic (read from every partition's start, by ce_id).
        const inTopic = new Set<string>()
        const consumer = createKafka(config, undefined, uniqueName('three-brokers-reader')).consumer({
          groupId: uniqueName('three-brokers-reader'),
        })
        await consumer.connect()
        try {
          await consumer.subscribe({ topic: 'inventory.levels', fromBeginning: true })
          await consumer.run({
            eachMessage: async ({ message }) => void inTopic.add(String(message.headers?.[HEADER.id] ?? '')),
          })
          await waitFor(() => [...accepted].every((id) => inTopic.has(id)), {
            timeoutMs: 60_000,
            what: () =>
              `${[...accepted].filter((id) => !inTopic.has(id)).length} accepted events missing from inventory.levels`,
          })
        } finally {
          await consumer.disconnect()
        }
        const lost = [...accepted].filter((id) => !inTopic.has(id))
        process.stdout.write(`  [three-brokers] events lost: ${lost.length}\n`)
        expect(lost).to.deep.equal([])

        // Deliveries go on: every accepted event reaches the partner's webhook, in order per key.
        await waitFor(
          () => [...accepted].every((id) => receiver.received.some((r) => r.headers['webhook-id'] === id)),
          {
            timeoutMs: 90_000,
            what: () => {
              const missing = [...accepted].filter(
                (id) => !receiver.received.some((r) => r.headers['webhook-id'] === id),
              )
              return `${missing.length} accepted events not delivered`
            },
          },
        )
        expect(
          receiver.received.filter((r) => r.at > killedAt + 5_000).length,
          'deliveries after the failover',
        ).to.be.greaterThan(50)
        expectPerKeyOrder(verified(secret, receiver))

        // `stack up` restarts the killed node (and only it).
        const up = await stackUp(settings, (msg) => process.stdout.write(`  [three-brokers] ${msg}\n`))
        expect(up).to.deep.equal(
          kafkaNodes(settings).map((n) => ({
            name: n.name,
            action: n.id === victimId ? 'restarted' : 'already running',
          })),
        )
        expect((await stackStatus(settings)).map((s) => s.state)).to.deep.equal(['running', 'running', 'running'])
      } finally {
        stop = true
        await Promise.allSettled(loops)
      }
    },
  )
})
