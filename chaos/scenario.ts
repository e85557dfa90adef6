/**
 * The chaos scenario: the platform as separate processes (one api, two workers) on a stack of its
 * own (three Kafka brokers, a FerretDB), two publishers publishing keyed events at a steady rate to
 * six partners with different grants, and one fault after another, each followed by a quiet phase:
 *
 *   warm-up             no fault, not measured
 *   baseline            no fault: the healthy partners' latency every fault is compared with
 *   worker-kill-new-id  kill -9 of worker w1; a new worker, w3, starts
 *   worker-kill-same-id kill -9 of worker w2; it starts again as w2 (systemd, a StatefulSet)
 *   broker-kill         kill -9 of the broker leading the most partitions; `stack up` restarts it
 *   broker-restart      the same broker role, gracefully: SIGTERM, wait, `stack up`
 *   store-outage        the control-plane store (FerretDB) stopped, then started again
 *   partner-failing     partner C answers 500
 *   partner-hanging     partner D accepts requests and never answers
 *   partner-dns         partner E's host name stops resolving
 *
 * Then it waits for every accepted event to arrive and checks what the partners got (report.ts).
 */
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { generateKeyRingEntry } from '../common/secret-box.ts'
import { knownEnvNames } from '../config/index.ts'
import { closedPort } from '../test/helpers/sources.ts'
import { MAX_PUBLISH_MS, type ChaosOptions } from './options.ts'
import { Partner, type PartnerMode, type WebhookPayload } from './partners.ts'
import { PlatformProcesses, type PlatformProcess } from './processes.ts'
import { Publisher, type Accepted } from './publisher.ts'
import { analyse, type ChaosReport, type PartnerSpec, type PhaseRecord } from './report.ts'
import { startChaosStack, type ChaosStack } from './stack.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const EVENT_TYPE = 'inventory.level.changed'
/** Partner E's endpoint is reached by this name, resolved by the runner's hosts file (dns-preload.mjs). */
export const CHAOS_HOST = 'partner-e.chaos.invalid'

/**
 * Platform settings of the run beyond its defaults: none. The platform's own timings are short
 * enough (leases of 6 s, positions saved every second); a first full run with leases of 4 s made the
 * lease fence (0.8 x TTL) fire whenever a lease pass took more than 3.2 s on the loaded machine.
 * Kept in the report, so that a run with other settings says so.
 */
export const COMPRESSED_TIME: Record<string, string> = {}

/**
 * Each subscription's own delivery policy: the retry schedule (Standard Webhooks: 5s, 5m, 30m, 2h,
 * ...) in seconds, long enough in total (about 4 minutes) that no fault of the scenario exhausts it,
 * and a hanging partner's call timing out after 5 s. Set on the subscriptions because the platform's
 * defaults (DELIVERY_RETRY_SCHEDULE, WEBHOOK_TIMEOUT_MS) do not reach subscriptions created through
 * the API: the control plane stores the standard policy in every one of them (docs/chaos.md).
 */
export const COMPRESSED_POLICY = { retrySchedule: [1, 2, 5, 10, 20, 30, 30, 30, 30, 30, 30, 30], timeoutMs: 5000 }

interface Phase {
  name: string
  what: string
  /** Partners whose deliveries the fault holds up (recovery is measured for them). */
  affects: string[]
  faultMs?: number
  inject?: () => Promise<string>
  heal?: () => Promise<string>
  quietMs: number
}

/** The run's abort signal (Ctrl-C, or the run's time bound): every wait of the scenario ends with it. */
let runSignal: AbortSignal = new AbortController().signal

function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (runSignal.aborted) return reject(runSignal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(runSignal.reason)
    }
    const timer = setTimeout(() => {
      runSignal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    runSignal.addEventListener('abort', onAbort, { once: true })
  })
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined)
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(250)
  }
}

/** The environment of the platform processes: this process's, without any platform setting, plus `own`. */
function platformEnv(own: Record<string, string>): NodeJS.ProcessEnv {
  const known = knownEnvNames()
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !known.has(k) && !k.startsWith('CHAOS_')))
  return { ...env, ...own }
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const say = o.say
  const t = o.timings
  const runId = new Date().toISOString().replace(/[:.]/g, '-')
  const runDir = path.join(o.dir, runId)
  fs.mkdirSync(runDir, { recursive: true })
  say(`chaos: ${o.mode} run ${runId}: ${o.events} events at ${o.rate}/s; folder ${runDir}`)
  const undo: Array<() => Promise<void>> = []
  let stack: ChaosStack | undefined
  let passed = false
  // bounded in time whatever happens: provisioning, publishing, the drain, and a margin
  const boundMs = MAX_PUBLISH_MS[o.mode] + t.drainMs + 10 * 60_000
  const bound = new AbortController()
  const boundTimer = setTimeout(
    () => bound.abort(new Error(`the run exceeded its bound of ${Math.round(boundMs / 60_000)} min`)),
    boundMs,
  )
  runSignal = o.signal ? AbortSignal.any([o.signal, bound.signal]) : bound.signal
  undo.push(async () => clearTimeout(boundTimer))
  try {
    // 1. A stack of its own.
    const t0 = Date.now()
    stack = await startChaosStack(path.join(runDir, 'stack'), say)
    const s = stack
    undo.push(() => s.down())
    say(`chaos: stack ready in ${Date.now() - t0} ms: brokers ${s.brokers.join(', ')}, store ${s.mongoUri}`)

    // 2. The partners' endpoints, on 127.0.0.1.
    const partners = new Map<string, Partner>()
    undo.push(async () => void (await Promise.all([...partners.values()].map((p) => p.close()))))
    const hostsFile = path.join(runDir, 'hosts')
    const dnsUp = () => fs.writeFileSync(hostsFile, `127.0.0.1 ${CHAOS_HOST}\n`)
    const dnsDown = () => fs.writeFileSync(hostsFile, `# chaos: ${CHAOS_HOST} removed (the DNS fault)\n`)
    dnsUp()

    // 3. The platform: one api process, two workers.
    const adminKey = randomBytes(32).toString('base64url')
    const apiPort = await closedPort()
    const registryPort = await closedPort()
    const api = `http://127.0.0.1:${apiPort}`
    const procs = new PlatformProcesses(
      path.join(runDir, 'logs'),
      platformEnv({
        KAFKA_BROKERS: s.brokers.join(','),
        MONGODB_URI: s.mongoUri,
        MONGODB_DATABASE: 'distributary_chaos',
        STACK_DIR: s.settings.dir,
        ADMIN_API_KEY: adminKey,
        SECRETS_ENCRYPTION_KEYS: generateKeyRingEntry('chaos1'),
        // the partners' receivers listen on 127.0.0.1 (partner E's name resolves there too)
        URL_GUARD_ALLOWLIST: '127.0.0.1',
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(apiPort),
        SCHEMA_REGISTRY_PORT: String(registryPort), // served by the api process, used by the workers
        MANAGEMENT_RATE_LIMIT_PER_SECOND: '200',
        MANAGEMENT_RATE_LIMIT_BURST: '400',
        LOG_LEVEL: 'info',
        ...COMPRESSED_TIME,
        // fault injection at the resolver: partner E's name resolves from the run's hosts file
        NODE_OPTIONS:
          `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(path.join(here, 'dns-preload.mjs')).href}`.trim(),
        CHAOS_HOSTS_FILE: hostsFile,
        CHAOS_DNS_NAMES: CHAOS_HOST,
      }),
    )
    undo.push(() => procs.stopAll())
    const workers = new Map<string, PlatformProcess>()
    const startWorker = (id: string) => workers.set(id, procs.start(`worker-${id}`, 'worker', { WORKER_ID: id }))
    const apiProc = procs.start('api', 'api')
    await waitFor('the api process to answer GET /ready', 120_000, async () => {
      if (!apiProc.alive()) throw new Error('the api process exited')
      return (await fetch(`${api}/ready`)).status === 200
    }).catch((err: Error) => {
      throw new Error(`${err.message}; see ${apiProc.log}`)
    })
    startWorker('w1')
    startWorker('w2')
    say(
      `chaos: platform up at ${api} (api pid ${apiProc.child.pid}, workers w1 pid ` +
        `${workers.get('w1')!.child.pid}, w2 pid ${workers.get('w2')!.child.pid}); ` +
        `logs in ${path.join(runDir, 'logs')}`,
    )

    // 4. Organizations, grants and subscriptions, through the management API.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the scenario reads fields of untyped JSON answers
    const call = async (method: string, p: string, body?: unknown, key = adminKey): Promise<any> => {
      for (let attempt = 1; ; attempt++) {
        const res = await fetch(api + p, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        })
        const text = await res.text()
        if (res.ok) return text ? JSON.parse(text) : undefined
        if ((res.status === 429 || res.status === 503) && attempt < 20) {
          await sleep(500)
          continue
        }
        throw new Error(`${method} ${p}: ${res.status} ${text}`)
      }
    }
    const org = (kind: 'publisher' | 'partner', name: string, slug: string) =>
      call('POST', '/v1/organizations', { kind, name, slug }).then((b) => b.id as string)
    const acme = await org('publisher', 'Acme (chaos)', 'acme-chaos')
    const globex = await org('publisher', 'Globex (chaos)', 'globex-chaos')
    const publisherKey = async (id: string) =>
      (await call('POST', '/v1/api-keys', { scope: 'publisher', organizationId: id, name: 'chaos' })).key as string
    const accepted = new Map<string, Accepted>()
    const publishers = [
      new Publisher('acme', api, await publisherKey(acme), acme, accepted),
      new Publisher('globex', api, await publisherKey(globex), globex, accepted),
    ]
    const pubName = (orgId: unknown) =>
      orgId === acme ? 'acme' : orgId === globex ? 'globex' : `unknown ${String(orgId)}`

    const B_FIELDS = ['manufacturerId', 'sku', 'locationId', 'available', 'sequence']
    /** Acme's events only (a partner with no grant from Globex, or one granted Acme only). */
    const acmeOnly = (p: WebhookPayload) =>
      p.data.manufacturerId !== acme
        ? `an event of ${pubName(p.data.manufacturerId)}, which granted nothing to this partner`
        : undefined
    // the grant of four partners: Acme's every inventory event (none of Globex's)
    const everyAcmeEvent: Pick<PartnerSpec, 'grants' | 'entitled' | 'outside'> = {
      grants: [{ from: acme }],
      entitled: (e) => e.publisher === 'acme',
      outside: acmeOnly,
    }
    const specs: PartnerSpec[] = [
      {
        name: 'healthy-a',
        what: 'Acme and Globex: every inventory event',
        healthy: true,
        grants: [{ from: acme }, { from: globex }],
        entitled: () => true,
        outside: () => undefined,
      },
      {
        name: 'healthy-b',
        what: `Acme: rows of DC1 only, fields ${B_FIELDS.join(', ')}`,
        healthy: true,
        grants: [{ from: acme, filter: { locationId: { in: ['DC1'] } }, fields: B_FIELDS }],
        entitled: (e) => e.publisher === 'acme' && e.locationId === 'DC1',
        outside: (p) =>
          acmeOnly(p) ??
          (p.data.locationId !== 'DC1' ? `a row of ${String(p.data.locationId)}, outside the row filter` : undefined) ??
          (Object.keys(p.data).some((k) => !B_FIELDS.includes(k))
            ? `fields outside the projection: ${Object.keys(p.data)
                .filter((k) => !B_FIELDS.includes(k))
                .join(', ')}`
            : undefined),
      },
      {
        name: 'failing-c',
        what: 'Acme: every inventory event; answers 500 for a while',
        healthy: false,
        ...everyAcmeEvent,
      },
      {
        name: 'hanging-d',
        what: 'Acme: every inventory event; hangs for a while',
        healthy: false,
        ...everyAcmeEvent,
      },
      {
        name: 'dns-e',
        what: `Acme: every inventory event; at ${CHAOS_HOST}, whose name stops resolving for a while`,
        healthy: false,
        ...everyAcmeEvent,
      },
      {
        name: 'acme-only-f',
        what: 'Acme: every inventory event; no grant from Globex',
        healthy: true,
        ...everyAcmeEvent,
      },
    ]
    for (const spec of specs) {
      const partner = await Partner.start(spec.name, spec.outside)
      partners.set(spec.name, partner)
      partner.organizationId = await org('partner', spec.name, `${spec.name}-chaos`)
      for (const g of spec.grants) {
        const grant = await call('POST', '/v1/grants', {
          publisherId: g.from,
          partnerId: partner.organizationId,
          entitlements: [
            {
              eventType: EVENT_TYPE,
              ...(g.filter ? { filter: g.filter } : {}),
              ...(g.fields ? { fields: g.fields } : {}),
            },
          ],
        })
        await call('POST', `/v1/grants/${grant.id}/accept`, {})
      }
      const url = spec.name === 'dns-e' ? `http://${CHAOS_HOST}:${partner.receiver.port}/hooks` : partner.receiver.url
      const sub = await call('POST', '/v1/subscriptions', {
        partnerId: partner.organizationId,
        name: `${spec.name}-stock`,
        eventTypes: [EVENT_TYPE],
        startFrom: 'earliest',
        sink: { type: 'webhook', url },
        deliveryPolicy: COMPRESSED_POLICY,
      })
      partner.subscriptionId = sub.id
      partner.setSecret(sub.webhookSecret)
    }
    // running, and shared by both workers (so that the baseline sees no hand-over of a worker joining)
    await waitFor('every subscription running, on both workers', 90_000, async () => {
      const holders = new Set<string>()
      for (const p of partners.values()) {
        const st = await call('GET', `/v1/connectors/${p.subscriptionId}/status`)
        if (st?.state !== 'running') return false
        holders.add(st.workerId)
      }
      return holders.size === 2
    })
    say(`chaos: ${specs.length} partners subscribed (${specs.map((x) => x.name).join(', ')}); publishing`)

    // 5. Publishing, with the faults one after another.
    const partner = (name: string) => partners.get(name)!
    const setMode = (name: string, mode: PartnerMode) => partner(name).setMode(mode)
    const everyone = specs.map((x) => x.name)
    /** The broker leading the most partitions of inventory.levels taken down by `down`, restarted by `stack up`. */
    const brokerFault = (
      name: string,
      what: string,
      down: (b: Awaited<ReturnType<typeof s.busiestLeader>>) => Promise<string>,
    ): Phase => {
      let victim = ''
      return {
        name,
        what,
        affects: everyone,
        faultMs: t.brokerDownMs,
        inject: async () => {
          const b = await s.busiestLeader('inventory.levels')
          victim = b.node.name
          return down(b)
        },
        heal: async () => (await s.up(), `stack up restarted ${victim}`),
        quietMs: t.quietMs,
      }
    }
    /** A partner's endpoint behaving as `mode` for the partner-fault time, then answering again. */
    const partnerFault = (name: string, who: string, mode: PartnerMode, what: string): Phase => ({
      name,
      what: `partner ${who} ${what}, for ${t.partnerFaultMs / 1000} s`,
      affects: [who],
      faultMs: t.partnerFaultMs,
      inject: async () => (setMode(who, mode), `${who} ${what}`),
      heal: async () => (setMode(who, 'ok'), `${who} answers 204 again`),
      quietMs: t.quietMs,
    })
    const phases: Phase[] = [
      {
        name: 'warm-up',
        what: 'no fault, not measured: readers join the shared stream, the JIT warms up',
        affects: [],
        quietMs: t.warmupMs,
      },
      { name: 'baseline', what: 'no fault', affects: [], quietMs: t.baselineMs },
      {
        name: 'worker-kill-new-id',
        what: 'kill -9 of worker w1; a new worker w3 starts',
        affects: everyone,
        faultMs: t.workerDownMs,
        inject: async () => `killed w1 (pid ${await procs.kill9(workers.get('w1')!)})`,
        heal: async () => (startWorker('w3'), `started w3 (pid ${workers.get('w3')!.child.pid})`),
        quietMs: t.quietMs,
      },
      {
        name: 'worker-kill-same-id',
        what: 'kill -9 of worker w2; started again with WORKER_ID w2',
        affects: everyone,
        faultMs: t.workerDownMs,
        inject: async () => `killed w2 (pid ${await procs.kill9(workers.get('w2')!)})`,
        heal: async () => (startWorker('w2'), `started w2 again (pid ${workers.get('w2')!.child.pid})`),
        quietMs: t.quietMs,
      },
      brokerFault(
        'broker-kill',
        'kill -9 of the broker leading the most partitions of inventory.levels; stack up restarts it',
        async (b) =>
          `killed ${b.node.name} (pid ${s.killBroker(b.node)}), leader of ${b.led} of ${b.partitions} partitions`,
      ),
      brokerFault(
        'broker-restart',
        'graceful restart of the broker leading the most partitions: SIGTERM, wait, stack up',
        async (b) => {
          const t1 = Date.now()
          const pid = await s.stopBroker(b.node)
          return (
            `stopped ${b.node.name} (pid ${pid}, leader of ${b.led} of ${b.partitions} ` +
            `partitions) with SIGTERM in ${Date.now() - t1} ms`
          )
        },
      ),
      {
        name: 'store-outage',
        what: `the control-plane store (FerretDB) stopped for ${t.storeDownMs / 1000} s`,
        affects: everyone,
        faultMs: t.storeDownMs,
        inject: async () => (await s.stopStore(), 'stopped FerretDB'),
        heal: async () => (await s.startStore(), 'started FerretDB'),
        quietMs: t.quietMs,
      },
      partnerFault('partner-failing', 'failing-c', 'fail', 'answers 500'),
      partnerFault('partner-hanging', 'hanging-d', 'hang', 'accepts requests and never answers'),
      {
        name: 'partner-dns',
        what: `partner dns-e's host name ${CHAOS_HOST} does not resolve, for ${t.partnerFaultMs / 1000} s`,
        affects: ['dns-e'],
        faultMs: t.partnerFaultMs,
        // Connection: close on every answer, so that each next call needs a new connection (and a lookup)
        inject: async () => (
          setMode('dns-e', 'close'),
          dnsDown(),
          `${CHAOS_HOST} removed from the hosts file; dns-e closes its connections`
        ),
        heal: async () => (dnsUp(), setMode('dns-e', 'ok'), `${CHAOS_HOST} resolves again`),
        quietMs: t.quietMs,
      },
    ]

    let faultsDone = false
    const publishing = publishers.map((p) =>
      p.run(o.rate / publishers.length, Math.ceil(o.events / publishers.length), () => !faultsDone),
    )
    // a publisher that fails (an unexpected answer) stops the run at once
    let publisherError: unknown
    const publishDone = Promise.all(publishing).catch((err) => {
      publisherError = err
      for (const p of publishers) p.stop()
    })
    const stopPublishing = () => publishers.forEach((p) => p.stop())
    runSignal.addEventListener('abort', stopPublishing, { once: true })
    undo.push(async () => {
      stopPublishing()
      await publishDone
    })
    const records: PhaseRecord[] = []
    const progress = setInterval(() => {
      const got = specs.map((x) => `${x.name} ${partner(x.name).arrivals.size}`).join(', ')
      say(`chaos:   ${accepted.size} accepted; arrived: ${got}`)
    }, 30_000)
    undo.push(async () => clearInterval(progress))
    for (const ph of phases) {
      if (publisherError) break
      const rec: PhaseRecord = {
        name: ph.name,
        what: ph.what,
        affects: ph.affects,
        start: Date.now(),
        end: 0,
        notes: [],
      }
      records.push(rec)
      say(`chaos: phase ${ph.name}: ${ph.what}`)
      if (ph.inject && ph.heal) {
        rec.faultStart = Date.now()
        rec.notes.push(await ph.inject())
        say(`chaos:   ${rec.notes.at(-1)}`)
        await sleep(Math.max(0, rec.faultStart + ph.faultMs! - Date.now()))
        rec.notes.push(await ph.heal())
        rec.faultEnd = Date.now()
        say(`chaos:   ${rec.notes.at(-1)} (fault lasted ${rec.faultEnd - rec.faultStart} ms)`)
      }
      await sleep(ph.quietMs)
      rec.end = Date.now()
    }
    faultsDone = true
    await publishDone
    if (publisherError) throw publisherError
    const publishedAt = Date.now()
    say(
      `chaos: publishing done: ${accepted.size} events accepted; waiting up to ` +
        `${t.drainMs / 1000} s for every entitled event to arrive`,
    )

    // 6. The drain: every entitled accepted event acknowledged by each partner entitled to it.
    const missing = () => {
      let n = 0
      for (const spec of specs) {
        const got = partner(spec.name).arrivals
        for (const [id, e] of accepted) if (spec.entitled(e) && !(got.get(id)?.ack ?? 0)) n++
      }
      return n
    }
    const drainDeadline = publishedAt + t.drainMs
    let left = missing()
    while (left > 0 && Date.now() < drainDeadline) {
      await sleep(2000)
      left = missing()
    }
    await sleep(2000) // late redeliveries (duplicates) of the last events
    say(
      left === 0
        ? `chaos: everything arrived ${Date.now() - publishedAt} ms after publishing ended`
        : `chaos: ${left} entitled deliveries still missing after ${t.drainMs / 1000} s`,
    )

    const report = analyse({
      mode: o.mode,
      runId,
      runDir,
      options: {
        events: o.events,
        rate: o.rate,
        timings: t,
        compressedTime: COMPRESSED_TIME,
        deliveryPolicy: COMPRESSED_POLICY,
      },
      specs,
      partners,
      accepted,
      publishers: publishers.map((p) => ({ name: p.name, ...p.stats })),
      phases: records,
      drainMs: Date.now() - publishedAt,
      platformLogs: procs.all.map((p) => p.log).filter((l, i, all) => all.indexOf(l) === i),
      unexpectedExits: procs.all
        .filter((p) => !p.alive() && !p.killed)
        .map((p) => ({
          name: p.name,
          pid: p.child.pid ?? 0,
          code: p.child.exitCode,
          signal: p.child.signalCode,
          log: p.log,
        })),
    })
    fs.writeFileSync(path.join(runDir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
    passed = report.passed
    return report
  } finally {
    for (const u of undo.reverse())
      await u().catch((err: unknown) => say(`chaos: cleanup step failed: ${(err as Error).message}`))
    if (passed && !o.keepData) fs.rmSync(path.join(runDir, 'stack'), { recursive: true, force: true })
    else if (stack) say(`chaos: the run's stack data and server logs are kept in ${path.join(runDir, 'stack')}`)
  }
}
