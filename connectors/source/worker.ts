/**
 * The source runtime of the platform's worker role: runs the declared source connectors (control
 * plane `sources`), each in a SourceRunner, exactly one instance per source across the worker
 * processes (leases, ./leases.ts), and applies changes within one pass (`passMs`, about a second)
 * without a restart:
 *  - desired state running / paused / stopped: start, pause (after the batch in flight), resume, or
 *    stop and release the lease; paused and stopped are stored, so they survive restarts;
 *  - a changed config: the instance stops and starts again with it (resume points are the plug-in's);
 *  - a deleted source: stopped and released;
 *  - a start that fails or a runner that fails: reported (status lastError), retried with backoff.
 * Status (state, position, counts, last error) is written to `source_status` by the lease holder,
 * on every change and at least every `statusIntervalMs`.
 */
import { randomUUID } from 'node:crypto'
import os from 'node:os'
import { type Admin, createAdmin, type Kafka } from '../../common/kafka/index.ts'
import type { Db } from 'mongodb'
import type { Logger } from '../../common/logger.ts'
import type { UrlGuard } from '../../common/url-guard.ts'
import type { SourceDeclaration, SourceRegistry } from '../../control-plane/sources.ts'
import type { SourceDoc, SourceStatus } from '../../control-plane/types.ts'
import { buildSource, type BuiltSource } from '../../producers/plugins.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import type { SourceConnector } from './types.ts'
import { ensureTopics } from '../../schemas/topics.ts'
import { SourceLeases, type SourceLeaseDoc } from './leases.ts'
import { SourceRunner } from './runner.ts'
import { backoffDelay, type Backoff } from '../retry.ts'

export interface SourceWorkerOptions {
  registry: SourceRegistry
  /** The control plane's database (leases). */
  db: Db
  kafka: Kafka
  serde: AvroSerde
  logger: Logger
  /** The SSRF guard the sources' outbound connections go through (MongoDB connection strings). */
  urlGuard: UrlGuard
  /** Empty: <hostname>-<pid>-<random>. */
  workerId?: string
  /** Sources declared in configuration, upserted at start (retried while their publisher is missing). */
  declarations?: SourceDeclaration[]
  leaseTtlMs?: number
  /** Interval of the pass that renews leases and applies changes. */
  passMs?: number
  statusIntervalMs?: number
  /** Pause of a runner after an empty poll (ms). */
  idleMs?: number
}

interface Run {
  id: string
  name: string
  doc: SourceDoc
  runner: SourceRunner | null
  built: BuiltSource | null
  configVersion: number
  /** A start or stop in progress: the pass leaves the run alone until it settles. */
  busy: Promise<void> | null
  lastError: SourceStatus['lastError']
  retryAt: number
  /** Failed starts and runs in a row (their restarts back off: RESTART_BACKOFF). */
  failures: number
  lastReport: string
  lastReportAt: number
}

/** Restarts of a failed source: 1 s, doubling up to a minute. */
const RESTART_BACKOFF: Backoff = { initialDelayMs: 1000, maxDelayMs: 60_000 }

/**
 * The connector behind a gate: while closed, `poll` finds nothing. A source whose desired state is
 * paused starts with the gate closed, so not one record is taken between the runner's start and its
 * pause (SourceRunner.pause applies only to a running runner). Optional methods stay optional: the
 * runner tells push from pull sources by `fail`.
 */
function gated<C, V>(inner: SourceConnector<C, V>, gate: { open: boolean }): SourceConnector<C, V> {
  const g: SourceConnector<C, V> = {
    kind: 'source',
    start: (config, ctx) => inner.start(config, ctx),
    poll: () => (gate.open ? inner.poll() : Promise.resolve([])),
    stop: () => inner.stop(),
  }
  if (inner.commit) g.commit = (records) => inner.commit!(records)
  if (inner.fail) g.fail = (records, err) => inner.fail!(records, err)
  if (inner.recovery) g.recovery = () => inner.recovery!()
  if (inner.reconcile) g.reconcile = (positions) => inner.reconcile!(positions)
  if (inner.position) g.position = () => inner.position!()
  return g
}

export class SourceWorker {
  readonly workerId: string
  private readonly log: Logger
  private readonly leases: SourceLeases
  private readonly runs = new Map<string, Run>()
  private readonly ttl: number
  private readonly passMs: number
  private readonly statusMs: number
  private pending: SourceDeclaration[]
  private timer: NodeJS.Timeout | undefined
  private pass: Promise<void> | null = null
  private stopped = false
  private admin: Admin | undefined

  constructor(private readonly opts: SourceWorkerOptions) {
    this.workerId = opts.workerId || `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`
    this.log = opts.logger.child({ component: 'source-worker', workerId: this.workerId })
    this.leases = new SourceLeases(opts.db)
    this.ttl = opts.leaseTtlMs ?? 6000
    this.passMs = opts.passMs ?? 1000
    this.statusMs = opts.statusIntervalMs ?? 5000
    this.pending = [...(opts.declarations ?? [])]
  }

  /** Upserts the declared sources, runs a first pass, then one every `passMs`. */
  async start(): Promise<void> {
    await this.runPass()
    const tick = () => {
      if (this.stopped) return
      this.timer = setTimeout(() => {
        this.runPass()
          .catch((err: unknown) => this.log.warn('source pass failed', { code: 'RETRIABLE', err }))
          .finally(tick)
      }, this.passMs)
    }
    tick()
    this.log.info('source worker started', { sources: this.runs.size })
  }

  /** Stops every source here (committing what is acked), reports them unassigned and releases their leases. */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.pass?.catch(() => undefined)
    await Promise.allSettled(
      [...this.runs.values()].map(async (run) => {
        await run.busy?.catch(() => undefined)
        await this.stopRunner(run)
        await this.report(run, 'unassigned', true).catch(() => undefined)
        await this.leases.release(run.id, this.workerId).catch(() => undefined)
      }),
    )
    this.runs.clear()
    await this.admin?.disconnect().catch(() => undefined)
    this.log.info('source worker stopped')
  }

  /** The runner of a source held here (tests, status). */
  runnerOf(name: string): SourceRunner | undefined {
    for (const r of this.runs.values()) if (r.name === name) return r.runner ?? undefined
    return undefined
  }

  private runPass(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    this.pass = this.doPass().finally(() => (this.pass = null))
    return this.pass
  }

  private async doPass(): Promise<void> {
    const reg = this.opts.registry
    if (this.pending.length > 0) this.pending = await reg.upsertDeclared(this.pending, this.log)
    const docs = await reg.all()
    const held = await this.leases.renew(this.workerId, [...this.runs.keys()], this.ttl)
    const byId = new Map(docs.map((d) => [d._id, d]))
    for (const run of [...this.runs.values()]) {
      if (!held.has(run.id)) {
        this.log.warn('source lease lost (taken over after expiry): stopping it here', { source: run.name })
        this.runs.delete(run.id)
        void this.settle(run, () => this.stopRunner(run))
      } else if (!byId.has(run.id)) {
        this.log.info('source deleted: stopping it', { source: run.name })
        this.runs.delete(run.id)
        void this.settle(run, async () => {
          await this.stopRunner(run)
          await this.leases.release(run.id, this.workerId)
        })
      }
    }
    let leases: Map<string, SourceLeaseDoc> | undefined
    const now = Date.now()
    for (const doc of docs) {
      let run = this.runs.get(doc._id)
      if (!run) {
        if (doc.desiredState === 'stopped') continue
        leases ??= new Map((await this.leases.all()).map((l) => [l._id, l]))
        const lease = leases.get(doc._id)
        if (lease && lease.expiresAt.getTime() > now) continue // another worker runs it
        if (!(await this.leases.claim(doc._id, this.workerId, this.ttl, lease))) continue
        run = {
          id: doc._id,
          name: doc.name,
          doc,
          runner: null,
          built: null,
          configVersion: doc.configVersion,
          busy: null,
          lastError: null,
          retryAt: 0,
          failures: 0,
          lastReport: '',
          lastReportAt: 0,
        }
        this.runs.set(doc._id, run)
        this.log.info('source claimed', { source: doc.name, kind: doc.kind })
      }
      run.doc = doc
      if (run.busy) continue
      await this.apply(run)
    }
  }

  /** The run failed once more: its next start waits longer. */
  private retryLater(run: Run): void {
    run.failures++
    run.retryAt = Date.now() + backoffDelay(RESTART_BACKOFF, run.failures)
  }

  /** Runs `op` as the run's one operation in progress; errors become its last error. */
  private settle(run: Run, op: () => Promise<void>): Promise<void> {
    const p = op()
      .catch((err: unknown) => {
        const e = err as { code?: string; message?: string }
        run.lastError = { code: e.code ?? 'SOURCE_FAILED', message: e.message ?? String(err), at: new Date() }
        this.retryLater(run)
        this.log.error('source failed; retrying', {
          code: e.code ?? 'SOURCE_FAILED',
          source: run.name,
          retryInMs: run.retryAt - Date.now(),
          err,
        })
      })
      .finally(() => {
        if (run.busy === p) run.busy = null
      })
    run.busy = p
    return p
  }

  private async apply(run: Run): Promise<void> {
    const doc = run.doc
    if (doc.desiredState === 'stopped') {
      this.runs.delete(run.id)
      await this.settle(run, async () => {
        await this.stopRunner(run)
        await this.report(run, 'stopped', true)
        await this.leases.release(run.id, this.workerId)
        this.log.info('source stopped', { source: run.name })
      })
      return
    }
    const r = run.runner
    if (r && r.state === 'failed') {
      const err = r.error
      run.lastError = {
        code: (err as { code?: string } | undefined)?.code ?? 'SOURCE_FAILED',
        message: err?.message ?? 'failed',
        at: new Date(),
      }
      this.retryLater(run)
      await this.stopRunner(run)
    } else if (r && doc.configVersion !== run.configVersion) {
      this.log.info('source config changed: restarting it', { source: run.name })
      void this.settle(run, () => this.stopRunner(run))
      return
    }
    if (!run.runner) {
      if (Date.now() < run.retryAt) return void (await this.report(run, 'failed'))
      void this.settle(run, () => this.startRunner(run))
      await this.report(run, 'starting')
      return
    }
    const runner = run.runner
    if (doc.desiredState === 'paused' && runner.state === 'running') {
      runner.pause()
      this.log.info('source paused', { source: run.name })
    } else if (doc.desiredState === 'running' && runner.state === 'paused') {
      runner.resume()
      this.log.info('source resumed', { source: run.name })
    }
    await this.report(run, runner.state === 'paused' ? 'paused' : runner.state === 'running' ? 'running' : 'failed')
  }

  private async startRunner(run: Run): Promise<void> {
    const doc = run.doc
    const owner = this.opts.registry.ownerOf(doc.publisherId)
    // checked again: the topic and folders it may use
    const built = buildSource(doc.kind, this.opts.registry.openConfig(doc), { guard: this.opts.urlGuard, owner })
    try {
      if (!this.admin) {
        const admin = createAdmin(this.opts.kafka)
        await admin.connect()
        this.admin = admin
      }
      await ensureTopics(this.admin, built.topics)
      const gate = { open: run.doc.desiredState !== 'paused' }
      const runner = new SourceRunner(gated(built.connector, gate), built.config, {
        name: doc.name,
        source: `/sources/${doc.kind}/${doc.name}`,
        publisherId: doc.publisherId, // every record carries the source's owner, whatever its rows say
        kafka: this.opts.kafka,
        serde: this.opts.serde,
        topics: built.topics,
        logger: this.opts.logger,
        ...(this.opts.idleMs !== undefined ? { idleMs: this.opts.idleMs } : {}),
      })
      await runner.start()
      if (this.stopped || !this.runs.has(run.id)) {
        await runner.stop()
        await built.close()
        return
      }
      if (run.doc.desiredState === 'paused') runner.pause()
      gate.open = true
      run.runner = runner
      run.built = built
      run.configVersion = doc.configVersion
      run.lastError = null
      run.failures = 0
      this.log.info('source running', { source: doc.name, kind: doc.kind, topics: built.topics.map((t) => t.name) })
    } catch (err) {
      await built.close().catch(() => undefined)
      throw err
    }
  }

  private async stopRunner(run: Run): Promise<void> {
    const { runner, built } = run
    run.runner = null
    run.built = null
    await runner?.stop()
    await built?.close().catch(() => undefined)
  }

  /** Writes the status when it changed, or when the last report is older than statusIntervalMs. */
  private async report(run: Run, state: SourceStatus['state'], force = false): Promise<void> {
    const runner = run.runner
    const stats = runner?.stats
    const position = runner?.connector.position?.() ?? null
    const status: Omit<SourceStatus, 'reportedAt'> = {
      state,
      workerId: state === 'unassigned' ? null : this.workerId,
      position,
      counts: {
        produced: stats?.produced ?? 0,
        batches: stats?.batches ?? 0,
        failedBatches: stats?.failedBatches ?? 0,
      },
      lastError: run.lastError,
      appliedGeneration: state === 'starting' ? run.doc.generation - 1 : run.doc.generation,
    }
    const key = JSON.stringify(status)
    if (!force && key === run.lastReport && Date.now() - run.lastReportAt < this.statusMs) return
    await this.opts.registry.reportStatus(run.id, { ...status, reportedAt: new Date() })
    run.lastReport = key
    run.lastReportAt = Date.now()
  }
}
