/**
 * Body mappings (JSONata) run in a small pool of sandbox processes, never on the worker's event loop:
 * a mapping that runs a catastrophic regular expression or builds a 300 MB string costs one sandbox
 * process (killed and replaced) and dead-letters its own event, and every other subscription's
 * mappings go on in the other processes.
 *
 * Why processes and not worker_threads: a worker thread's `resourceLimits` only contains a heap that
 * grows step by step. One large allocation in a worker (`$uppercase($pad("", 300000000))` flattens a
 * 300 MB string at once) takes V8 past the limit plus the 16 MB node allows and aborts the WHOLE
 * process (FATAL ERROR: Reached heap limit; nodejs/node#47224, reproduced on node 20). A process
 * with `--max-old-space-size` dies alone.
 *
 * - Limits: each evaluation has `timeLimitMs` (jsonata's cooperative timeout stops loops without a
 *   kill; a request still running `KILL_GRACE_MS` after the limit gets its process SIGKILLed), the
 *   process heap `memoryLimitMb` (V8 aborts the process), and the mapped body `maxOutputBytes`
 *   (counted while it is written in the sandbox: a huge result is refused there, never sent back).
 * - Batching: the REST sink maps one record per call, concurrently across keys; the calls waiting for
 *   one subscription go to a process together (up to MAX_BATCH events), one message each way.
 * - Attribution: a request of several events that times out or kills its process is re-run one event
 *   per request, so only an event that exceeds a limit alone is dead-lettered (DataError naming the
 *   subscription and the limit). A process that dies for another reason fails the event retriably.
 * - Fairness: a subscription has at most one request in a process at a time and subscriptions take
 *   turns (round robin), so a hostile mapping occupies one process, and the others keep flowing
 *   through the rest of the pool. A killed process is replaced at once, and while that one starts
 *   the subscription whose request was killed does not take the last idle process from the others,
 *   so they do not wait for a process to start either. `processes` should be at least 2.
 *
 * Processes are started on first use (a worker without body mappings starts none) and run plain
 * node on consumers/rest/mapping-sandbox-process.cjs with an empty environment.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { DataError, RetriableError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { PROJECT_ROOT } from '../../common/paths.ts'

export const SANDBOX_SCRIPT = path.join(PROJECT_ROOT, 'consumers', 'rest', 'mapping-sandbox-process.cjs')

export interface MappingSandboxSettings {
  /** Sandbox processes at most (each about 40 MB of RSS once started). */
  processes: number
  /** Time one evaluation may take, in ms. */
  timeLimitMs: number
  /** Heap of a sandbox process (V8 old generation), in MB. */
  memoryLimitMb: number
  /** Largest mapped body of one event, in bytes (UTF-8). */
  maxOutputBytes: number
}

export const DEFAULT_MAPPING_SANDBOX: MappingSandboxSettings = {
  processes: 2,
  timeLimitMs: 1000,
  memoryLimitMb: 64,
  maxOutputBytes: 1024 * 1024,
}

/** How long after the time limit a request's process is killed (jsonata's own timeout usually answers first). */
export const KILL_GRACE_MS = 100
/** Events per request at most, and their envelopes' JSON text at most (one event always goes). */
const MAX_BATCH = 100
const MAX_BATCH_CHARS = 4 * 1024 * 1024
/** A process that does not say ready within this long is killed (a start failure). */
const START_TIMEOUT_MS = 15_000
/** After a failed start, no new process for this long: the waiting events fail retriably meanwhile. */
const START_BACKOFF_MS = 1000

/** What the sandbox answers for one event (see mapping-sandbox-process.cjs). */
export type SandboxResult =
  | { body: string }
  | { fail: 'error'; message: string; code?: string; position?: number }
  | { fail: 'no-value' | 'function' | 'output-limit'; bytes?: number }
  | { fail: 'not-json'; message: string }

/** The evaluator the sandbox process runs, for running it in-process (benchmarks, comparisons). */
export interface MappingEvaluator {
  (source: string, inputs: string[]): Promise<SandboxResult[]>
}

/**
 * The sandbox's own evaluator loaded into this process, with jsonata's cooperative limits only: for
 * benchmarks and comparisons, never for deliveries (nothing stops a runaway step here).
 */
export function inProcessEvaluator(
  settings: Pick<MappingSandboxSettings, 'timeLimitMs' | 'maxOutputBytes'> = DEFAULT_MAPPING_SANDBOX,
): MappingEvaluator {
  const { createEvaluator } = createRequire(import.meta.url)(SANDBOX_SCRIPT) as {
    createEvaluator(o: { timeLimitMs: number; maxOutputBytes: number }): MappingEvaluator
  }
  return createEvaluator({ timeLimitMs: settings.timeLimitMs, maxOutputBytes: settings.maxOutputBytes })
}

interface Job {
  owner: string
  source: string
  input: string
  eventId: string
  /** Re-run on its own after the request it was in failed. */
  alone: boolean
  resolve(body: string): void
  reject(err: unknown): void
  signal: AbortSignal | undefined
}

interface Request {
  id: number
  owner: string
  jobs: Job[]
  timer: NodeJS.Timeout
}

interface Proc {
  child: ChildProcess
  ready: boolean
  request: Request | undefined
  stderr: string
  /** Set when the pool gave up on it (killed, died): later events of the child are ignored. */
  gone: boolean
  /** Set when the pool killed it for its request's time. */
  killedFor: Limit | undefined
  startTimer: NodeJS.Timeout | undefined
}

type Limit = 'time' | 'memory'

export class MappingSandbox {
  readonly settings: MappingSandboxSettings
  readonly #logger: Logger | undefined
  readonly #procs = new Set<Proc>()
  /** Waiting events per subscription (owner). */
  readonly #queues = new Map<string, Job[]>()
  /** Owners with waiting events and no request in a process, in turn order. */
  readonly #turns: string[] = []
  readonly #inTurns = new Set<string>()
  readonly #inProcess = new Set<string>()
  /** Owners whose last request was killed or lost its process. */
  readonly #suspects = new Set<string>()
  #nextId = 1
  #closed = false
  #noStartUntil = 0
  #retryTimer: NodeJS.Timeout | undefined
  /** Processes killed or lost so far, by cause (for logs and tests). */
  readonly replaced = { time: 0, memory: 0, crash: 0 }

  constructor(settings: Partial<MappingSandboxSettings> = {}, logger?: Logger) {
    const s = { ...DEFAULT_MAPPING_SANDBOX, ...settings }
    this.settings = {
      processes: Math.max(1, s.processes),
      timeLimitMs: Math.max(1, s.timeLimitMs),
      memoryLimitMb: Math.max(16, s.memoryLimitMb),
      maxOutputBytes: Math.max(1, s.maxOutputBytes),
    }
    this.#logger = logger
  }

  /**
   * The JSON body `source` maps the envelope `input` (JSON text) to. Rejects with a DataError when
   * the mapping fails for this event or exceeds a limit, a RetriableError when the sandbox could not
   * run it (stopped, aborted, a process lost for a reason of its own).
   */
  map(owner: string, source: string, input: string, eventId: string, signal?: AbortSignal): Promise<string> {
    if (this.#closed) return Promise.reject(new RetriableError('mapping sandbox closed'))
    if (signal?.aborted) return Promise.reject(aborted())
    return new Promise<string>((resolve, reject) => {
      // an abort is looked at when the event's turn comes (no listener per event on the subscription's signal)
      this.#enqueue({ owner, source, input, eventId, alone: false, resolve, reject, signal }, false)
      this.#dispatch()
    })
  }

  /**
   * Starts the pool's processes ahead of the first mapping (a REST sink with a mapping starting), so it need not wait
   * for them.
   */
  warm(): void {
    while (!this.#closed && this.#procs.size < this.settings.processes && this.#start());
  }

  /** Sandbox processes running or starting. */
  get size(): number {
    return this.#procs.size
  }

  /** Kills the processes; waiting and running evaluations fail retriably. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retryTimer)
    const closing: Array<Promise<void>> = []
    for (const p of [...this.#procs]) {
      // waited for with the process referenced again: an unreferenced one would let node exit first
      p.child.ref()
      closing.push(
        new Promise<void>((resolve) =>
          p.child.exitCode !== null || p.child.signalCode !== null ? resolve() : p.child.once('close', () => resolve()),
        ),
      )
      this.#drop(p)
      p.child.kill('SIGKILL')
      if (p.request) this.#settleAll(p.request.jobs, () => new RetriableError('mapping sandbox closed'))
    }
    for (const q of this.#queues.values()) this.#settleAll(q, () => new RetriableError('mapping sandbox closed'))
    this.#queues.clear()
    this.#turns.length = 0
    this.#inTurns.clear()
    this.#suspects.clear()
    await Promise.all(closing)
  }

  // ------------------------------------------------------------------ scheduling

  #enqueue(job: Job, front: boolean): void {
    let q = this.#queues.get(job.owner)
    if (!q) this.#queues.set(job.owner, (q = []))
    if (front) q.unshift(job)
    else q.push(job)
    this.#takeTurn(job.owner)
  }

  /**
   * Queues the owner for a request unless it has one in a process (it queues again when that ends) or is queued
   * already.
   */
  #takeTurn(owner: string): void {
    if (this.#inProcess.has(owner) || this.#inTurns.has(owner) || !this.#queues.get(owner)?.length) return
    this.#inTurns.add(owner)
    this.#turns.push(owner)
  }

  #dispatch(): void {
    if (this.#closed) return
    for (let i = 0; i < this.#turns.length;) {
      const idle = this.#idleProcesses()
      if (idle.length === 0) break
      const owner = this.#turns[i]!
      // a subscription whose last request was killed does not take the last idle process while its
      // replacement starts: its next kill would leave the others waiting for a start
      if (this.#suspects.has(owner) && idle.length < 2 && this.#starting() > 0) {
        i++
        continue
      }
      this.#turns.splice(i, 1)
      this.#inTurns.delete(owner)
      const q = this.#queues.get(owner)
      if (!q || q.length === 0) continue
      const jobs = takeBatch(q)
      if (q.length === 0) this.#queues.delete(owner)
      const live: Job[] = []
      for (const j of jobs) {
        if (j.signal?.aborted) j.reject(aborted())
        else live.push(j)
      }
      if (live.length > 0) this.#send(idle[0]!, owner, live)
      else this.#takeTurn(owner)
    }
    // a process for each owner still waiting, as far as the pool allows (each dispatches once ready)
    let starting = this.#starting()
    while (this.#turns.length > starting && this.#procs.size < this.settings.processes && this.#start()) starting++
  }

  #starting(): number {
    let n = 0
    for (const p of this.#procs) if (!p.ready) n++
    return n
  }

  #idleProcesses(): Proc[] {
    const out: Proc[] = []
    for (const p of this.#procs) if (p.ready && !p.request) out.push(p)
    return out
  }

  #send(proc: Proc, owner: string, jobs: Job[]): void {
    this.#inProcess.add(owner)
    const id = this.#nextId++
    const timer = setTimeout(() => this.#kill(proc), this.settings.timeLimitMs + KILL_GRACE_MS)
    proc.request = { id, owner, jobs, timer }
    // referenced while it works (and while it is killed, until it is gone): an idle one never keeps node running
    proc.child.ref()
    try {
      proc.child.send({ id, source: jobs[0]!.source, inputs: jobs.map((j) => j.input) })
    } catch {
      this.#lost(proc, undefined)
    }
  }

  #answered(proc: Proc, message: { id: number; results: SandboxResult[] }): void {
    const r = proc.request
    if (!r || r.id !== message.id) return
    clearTimeout(r.timer)
    proc.request = undefined
    proc.child.unref()
    this.#suspects.delete(r.owner)
    r.jobs.forEach((job, i) => {
      const result = message.results[i]
      if (result && 'body' in result) job.resolve(result.body)
      else job.reject(this.#failure(job, result ?? { fail: 'error', message: 'the sandbox gave no result' }))
    })
    this.#finished(r.owner)
  }

  /** The owner's request is over: its next events wait for their turn behind the others. */
  #finished(owner: string): void {
    this.#inProcess.delete(owner)
    this.#takeTurn(owner)
    this.#dispatch()
  }

  // ------------------------------------------------------------------ processes

  /** Starts a process; false while starts are held back after a failed one. */
  #start(): boolean {
    if (this.#closed) return false
    const wait = this.#noStartUntil - Date.now()
    if (wait > 0) {
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = undefined
        this.#dispatch()
      }, wait)
      return false
    }
    const s = this.settings
    const child = spawn(
      process.execPath,
      [
        `--max-old-space-size=${s.memoryLimitMb}`,
        '--disallow-code-generation-from-strings',
        SANDBOX_SCRIPT,
        JSON.stringify({
          timeLimitMs: s.timeLimitMs,
          maxOutputBytes: s.maxOutputBytes,
          memoryLimitMb: s.memoryLimitMb,
        }),
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'advanced',
        env: {},
      },
    )
    const proc: Proc = {
      child,
      ready: false,
      request: undefined,
      stderr: '',
      gone: false,
      killedFor: undefined,
      startTimer: undefined,
    }
    this.#procs.add(proc)
    // neither an idle process nor its channel keeps node running (see #send)
    child.unref()
    child.channel?.unref()
    child.stderr!.on('data', (d: Buffer) => (proc.stderr = (proc.stderr + d.toString()).slice(-4096)))
    proc.startTimer = setTimeout(() => this.#lost(proc, undefined), START_TIMEOUT_MS)
    child.on('message', (m: { ready?: true; id?: number; results?: SandboxResult[] }) => {
      if (proc.gone) return
      if (m.ready) {
        clearTimeout(proc.startTimer)
        proc.ready = true
        this.#dispatch()
      } else if (m.id !== undefined && m.results) this.#answered(proc, m as { id: number; results: SandboxResult[] })
    })
    child.on('error', () => this.#lost(proc, undefined))
    // 'close': after the exit AND the end of stderr, which says whether V8 ran out of heap
    child.on('close', () =>
      this.#lost(proc, /heap out of memory|Allocation failed/i.test(proc.stderr) ? 'memory' : proc.killedFor),
    )
    return true
  }

  /**
   * A request over its time: SIGKILL, and the loss handled once the process is gone ('close'), so that
   * one already dying of its heap limit is reported as that.
   */
  #kill(proc: Proc): void {
    proc.killedFor = 'time'
    proc.child.kill('SIGKILL')
    setTimeout(() => this.#lost(proc, 'time'), 2000).unref()
  }

  #drop(proc: Proc): void {
    proc.gone = true
    clearTimeout(proc.startTimer)
    if (proc.request) clearTimeout(proc.request.timer)
    this.#procs.delete(proc)
  }

  /**
   * A process is lost: killed for its request's time, dead of its heap limit, or for a reason of its
   * own. Its request's events are re-run one by one, or, when it held one, fail: a DataError when a
   * limit was exceeded, retriable otherwise.
   */
  #lost(proc: Proc, limit: Limit | undefined): void {
    if (proc.gone) return
    this.#drop(proc)
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL')
    if (this.#closed) return
    const r = proc.request
    proc.request = undefined
    if (!proc.ready) {
      this.#noStartUntil = Date.now() + START_BACKOFF_MS
      const why =
        proc.stderr.trim().split('\n').slice(-3).join(' | ') ||
        `exit ${proc.child.exitCode ?? proc.child.signalCode ?? 'unknown'}`
      this.#logger?.error('mapping sandbox process did not start', { script: SANDBOX_SCRIPT, stderr: why })
      // nothing can run until a process starts: the waiting events fail retriably (the runtime retries them)
      for (const q of this.#queues.values())
        this.#settleAll(q, () => new RetriableError(`mapping sandbox could not start: ${why}`))
      this.#queues.clear()
      this.#turns.length = 0
      this.#inTurns.clear()
      return
    }
    // its replacement starts now, not when the next event needs it: while a hostile mapping takes the
    // process that was idle, the others' next events find this one ready
    if (this.#procs.size < this.settings.processes) this.#start()
    if (!r) {
      this.#dispatch()
      return
    }
    this.replaced[limit ?? 'crash']++
    this.#suspects.add(r.owner)
    const [first] = r.jobs
    this.#logger?.warn('mapping sandbox process replaced', {
      subscriptionId: r.owner,
      events: r.jobs.length,
      cause: limit ?? 'crash',
      pid: proc.child.pid,
      ...(limit === undefined ? { stderr: proc.stderr.slice(-500) } : {}),
    })
    if (r.jobs.length > 1) {
      for (const job of [...r.jobs].reverse()) {
        job.alone = true
        if (job.signal?.aborted) job.reject(aborted())
        else this.#enqueue(job, true)
      }
    } else if (first) {
      first.reject(
        limit
          ? this.#limitError(first, limit)
          : new RetriableError(
              `body mapping for event ${first.eventId}: its sandbox process exited ` +
                `(${proc.child.exitCode ?? proc.child.signalCode ?? 'unknown'})`,
              undefined,
              { eventId: first.eventId },
            ),
      )
    }
    this.#finished(r.owner)
  }

  // ------------------------------------------------------------------ errors

  #limitError(job: Job, limit: Limit): DataError {
    const s = this.settings
    const what = limit === 'time' ? `its ${s.timeLimitMs} ms time limit` : `its ${s.memoryLimitMb} MB memory limit`
    return new DataError(
      `body mapping failed for event ${job.eventId}: the mapping of subscription ${job.owner} exceeded ${what}`,
      {
        eventId: job.eventId,
        mappingError: `${limit}-limit`,
        limit: limit === 'time' ? s.timeLimitMs : s.memoryLimitMb,
      },
    )
  }

  #failure(job: Job, r: Exclude<SandboxResult, { body: string }>): DataError {
    const ctx = { eventId: job.eventId }
    switch (r.fail) {
      case 'error':
        // D1012: jsonata's own timeout, the same limit
        if (r.code === 'D1012') return this.#limitError(job, 'time')
        return new DataError(`body mapping failed for event ${job.eventId}: ${describeFailure(r)}`, {
          ...ctx,
          mappingError: r.code,
        })
      case 'no-value':
        return new DataError(
          `body mapping produced no value for event ${job.eventId} (the expression matched nothing)`,
          ctx,
        )
      case 'function':
        return new DataError(`body mapping produced a function for event ${job.eventId}, not JSON`, ctx)
      case 'not-json':
        return new DataError(`event ${job.eventId} cannot be serialised to JSON: ${r.message}`, ctx)
      case 'output-limit':
        return new DataError(
          `body mapping failed for event ${job.eventId}: the mapping of subscription ` +
            `${job.owner} produced ` +
            `${r.bytes !== undefined ? `${r.bytes} bytes, ` : ''}more than its ` +
            `${this.settings.maxOutputBytes}-byte output limit`,
          { ...ctx, mappingError: 'output-limit', limit: this.settings.maxOutputBytes },
        )
    }
  }

  #settleAll(jobs: Job[], error: () => unknown): void {
    for (const j of jobs.splice(0)) j.reject(error())
  }
}

/** jsonata's failure as a message: the text, its code and the position in the expression. */
export function describeFailure(e: { message?: string; code?: string; position?: number }): string {
  const where = [e.code, e.position !== undefined ? `at position ${e.position}` : undefined].filter(Boolean).join(', ')
  return `${e.message ?? String(e)}${where ? ` (${where})` : ''}`
}

const aborted = () => new RetriableError('delivery aborted (subscription stopped)', undefined, { aborted: true })

/**
 * The next request's events of one owner: one re-run alone, or those of the first's expression up to the batch bounds.
 */
function takeBatch(q: Job[]): Job[] {
  const first = q[0]!
  if (first.alone) return q.splice(0, 1)
  let n = 1
  let chars = first.input.length
  while (n < q.length && n < MAX_BATCH) {
    const j = q[n]!
    if (j.alone || j.source !== first.source || chars + j.input.length > MAX_BATCH_CHARS) break
    chars += j.input.length
    n++
  }
  return q.splice(0, n)
}
