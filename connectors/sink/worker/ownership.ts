/**
 * Which subscriptions this worker may deliver for (docs/sink-workers.md, "Worker ids and restarts" and
 * "Hand-over"). Subscriptions are spread over the worker processes by leases in MongoDB (store.ts): each
 * worker holds its share, and a lease lasts as long as its holder's heartbeat, renewed every heartbeat
 * (one document, whatever the number of subscriptions). A killed worker's heartbeat expires after about
 * `leaseTtlMs` and the others take its leases over; its subscriptions resume there from their cursors.
 * A process restarted under the same worker id takes its previous incarnation's leases over at once
 * (identity.ts: how it tells a gone predecessor from a live process misconfigured with its id). The
 * lease FENCE aborts every partner call in flight when the heartbeat is not renewed in time: two workers
 * never call a partner for one subscription at once.
 *
 * Claiming reads every connector and lease, so it runs only when there may be something to claim or give
 * up: the connectors changed (the control plane's change token), a worker came or went, the last pass
 * left something over, or FULL_CLAIM_MS passed. An idle subscription costs the store nothing per heartbeat.
 */
import { RetriableError } from '../../../common/errors.ts'
import type { Logger } from '../../../common/logger.ts'
import type { ControlPlane } from '../../../control-plane/service.ts'
import type { ConnectorDoc } from '../../../control-plane/types.ts'
import { identityLost, releaseIdentity, takeIdentity, tryTakeIdentity } from '../identity.ts'
import { holderKey, type LeaseDoc, type SinkStore, type WorkerDoc } from '../store.ts'
import type { SinkWorkerSettings } from './config.ts'
import { fenceCalls, type HeldRuns, type Run, type StopOptions } from './run.ts'

export interface OwnershipOptions {
  /** This process start (identity.ts): held in the heartbeat and in every lease. */
  incarnation: string
  store: SinkStore
  controlPlane: ControlPlane
  settings: SinkWorkerSettings
  log: Logger
  held: HeldRuns
  /** The run leaves this worker (control-loop.ts): no partner call starts, its stop is queued. */
  leave(run: Run, opts: StopOptions): void
  /** `leave` for many runs, stopped together (one cursor write, status report and release). */
  leaveMany(runs: Run[], opts: StopOptions): void
  /**
   * Stops every run here, each in its turn, writing no cursor and releasing no lease (they are another process's now).
   */
  stopAll(): Promise<void>
}

/** At most this long between two full claim passes while nothing signals a change. */
export const FULL_CLAIM_MS = 60_000

/** What a claim pass starts from: the connectors' change token and the live heartbeats (two small reads). */
export interface ClaimView {
  token: string | null
  live: Array<Pick<WorkerDoc, '_id' | 'incarnation'>>
  /** The live heartbeats as one string (holderKey, sorted). */
  liveKey: string
}

export class Ownership {
  readonly incarnation: string
  /** Whether this incarnation holds its worker id (false after another process took it over). */
  identity = false
  /** When the leases were last renewed (the lease pass's start). */
  renewedAt = 0
  startedAt = new Date()
  /** The lease fence aborted the calls in flight and the leases were not renewed since (#fencePass). */
  #fenced = false
  /** The last full claim pass: the token and live heartbeats it started from, and when. */
  #lastFull: { token: string | null; liveKey: string; at: number } | null = null
  /** The last full claim pass left something to do (a share not reached yet, a claim lost, a stray lease). */
  #again = false
  /** Leases of this incarnation no run held at the last full claim pass (released when seen twice). */
  #unheld = new Set<string>()
  readonly #o: OwnershipOptions

  constructor(o: OwnershipOptions) {
    this.#o = o
    this.incarnation = o.incarnation
  }

  #identityOptions() {
    const s = this.#o.settings
    return { workerId: s.workerId, incarnation: this.incarnation, startedAt: this.startedAt, ttlMs: s.leaseTtlMs }
  }

  /** The worker id first (a predecessor under the same id: gone, or start fails before connecting anything). */
  async takeIdentity(): Promise<void> {
    const { previous, reason } = await takeIdentity(this.#o.store, {
      ...this.#identityOptions(),
      pollMs: this.#o.settings.heartbeatMs,
    })
    this.identity = true
    if (previous)
      this.#o.log.info('worker id taken over from a previous process', {
        previousIncarnation: previous.incarnation ?? null,
        previousHost: previous.host ?? null,
        reason,
      })
  }

  /** Gives the worker id up (a stop, a failed start). */
  async releaseIdentity(): Promise<void> {
    if (this.identity)
      await releaseIdentity(this.#o.store, this.#o.settings.workerId, this.incarnation).catch(() => undefined)
    this.identity = false
  }

  /** The first heartbeat, before anything is claimed. */
  async firstHeartbeat(): Promise<void> {
    const s = this.#o.settings
    if (!(await this.#o.store.heartbeat(s.workerId, this.incarnation, s.leaseTtlMs)))
      throw new RetriableError('this worker id was taken over by another process while this one started', 1000, {
        workerId: s.workerId,
      })
    this.renewedAt = Date.now()
  }

  /**
   * The view a full claim pass starts from, or null when it has nothing to do: the connectors' change
   * token and the live heartbeats are those of the last full pass, which left nothing over and is less
   * than FULL_CLAIM_MS old. `force`: the first claim at start.
   */
  async claimView(force = false): Promise<ClaimView | null> {
    const token = await this.#o.controlPlane.connectorsChangeToken()
    const live = await this.#o.store.liveWorkers()
    const liveKey = live
      .map((w) => holderKey(w._id, w.incarnation))
      .sort()
      .join(',')
    const last = this.#lastFull
    const quiet =
      last !== null && last.token === token && last.liveKey === liveKey && Date.now() - last.at < FULL_CLAIM_MS
    return force || this.#again || !quiet ? { token, live, liveKey } : null
  }

  /**
   * Claims free leases up to this worker's share, and every lease a previous incarnation of this
   * worker id left (it is gone: identity.ts), first; hands its runs beyond its share over; returns the ids
   * it claimed. A lease of another incarnation is free once its holder's heartbeat is gone (or, written
   * by an earlier version that renewed each lease, once it expired). `connectors`: every connector (read by
   * the caller, which reconciles its runs with the same read).
   */
  async claimShare(view: ClaimView, connectors: ReadonlyArray<Pick<ConnectorDoc, '_id' | 'desiredState'>>) {
    const { store, settings: s, held, log } = this.#o
    if (!this.identity) return []
    const now = new Date()
    const alive = new Set(view.live.map((w) => holderKey(w._id, w.incarnation)))
    const running = connectors.filter((c) => c.desiredState !== 'stopped')
    const leases = new Map((await store.all()).map((l) => [l._id, l] as [string, LeaseDoc]))
    const ours = (l: LeaseDoc) => l.workerId === s.workerId && l.incarnation === this.incarnation
    const predecessor = (l: LeaseDoc | undefined) =>
      l !== undefined && l.workerId === s.workerId && l.incarnation !== this.incarnation
    const orphaned = (l: LeaseDoc) => !alive.has(holderKey(l.workerId, l.incarnation)) || l.expiresAt <= now
    this.#lastFull = { token: view.token, liveKey: view.liveKey, at: now.getTime() }
    this.#leaveLost(leases, ours)
    const stray = await this.#releaseStray(leases, ours)
    const mine = [...leases.values()].filter((l) => ours(l) && !stray.has(l._id)).length
    const share = this.#share(view, running.length)
    // an own lease is never free: its run is restarting (control-loop.ts, apply)
    const free = running.filter((c) => {
      const l = leases.get(c._id)
      return !l || predecessor(l) || (!ours(l) && orphaned(l))
    })
    // A predecessor's first; then those this worker is the first choice of, the most wanted first; then
    // the others, those their first choice wants least first: workers claiming at the same time with the
    // same view want different ones (rendezvous), also for what one takes beyond its first choices.
    const me = holderKey(s.workerId, this.incarnation)
    const keys = view.live.map((w) => holderKey(w._id, w.incarnation))
    const order = new Map(
      free.map((c) => {
        const { key, score } = firstChoice(c._id, keys)
        return [c._id, predecessor(leases.get(c._id)) ? -Infinity : key === me ? -2 - score : score] as const
      }),
    )
    free.sort((a, b) => order.get(a._id)! - order.get(b._id)!)
    // One batch (two commands), not a round trip per subscription: 10,000 are claimed in seconds.
    const wanted = free
      .filter((c) => !held.runs.has(c._id) && !held.starting.has(c._id))
      .slice(0, Math.max(0, share - mine))
      .map((c) => c._id)
    const claimed = [...(await store.claimMany(wanted, s.workerId, s.leaseTtlMs, leases, now))]
    // More than its share (another worker joined): hand the surplus over, together.
    const runs = [...held.runs.values()].filter((r) => !r.leaving && !r.stopped)
    if (runs.length > share) {
      const surplus = runs.slice(0, runs.length - share)
      log.info('handing subscriptions over to balance the workers', {
        subscriptions: surplus.length,
        share,
        workers: view.live.length,
      })
      this.#o.leaveMany(surplus, { flush: true, release: true, state: 'unassigned' })
    }
    // Again at the next heartbeat while its share is not reached (another worker hands its surplus over,
    // or a claim was lost to another worker) or a stray lease waits for its second sighting.
    this.#again = mine + claimed.length < share || this.#unheld.size > 0
    return claimed
  }

  /**
   * This worker's share of `count` subscriptions: the live workers, ordered by id and incarnation, take
   * `count / workers` each, the first `count % workers` one more, so that the shares add up to the count
   * and every worker computes the same ones.
   */
  #share(view: ClaimView, count: number): number {
    const keys = view.live.map((w) => holderKey(w._id, w.incarnation)).sort()
    const workers = Math.max(1, keys.length)
    const at = keys.indexOf(holderKey(this.#o.settings.workerId, this.incarnation))
    const base = Math.floor(count / workers)
    return base + ((at < 0 ? keys.length : at) < count % workers ? 1 : 0)
  }

  /** Held runs whose lease is no longer this incarnation's (taken over while its heartbeat had lapsed) leave. */
  #leaveLost(leases: ReadonlyMap<string, LeaseDoc>, ours: (l: LeaseDoc) => boolean): void {
    for (const run of [...this.#o.held.runs.values()]) {
      const l = leases.get(run.id)
      if (run.leaving || run.stopped || (l && ours(l))) continue
      this.#o.log.warn('lease lost (taken over while this worker was not renewing its heartbeat): stopping here', {
        subscriptionId: run.id,
      })
      this.#o.leave(run, { flush: false, release: false })
    }
  }

  /**
   * Releases leases of this incarnation that no run holds at two full passes in a row (a start that
   * failed and could not release its lease): they no longer expire by themselves. Returns their ids.
   */
  async #releaseStray(leases: ReadonlyMap<string, LeaseDoc>, ours: (l: LeaseDoc) => boolean): Promise<Set<string>> {
    const { held, store, settings, log } = this.#o
    const unheld = new Set<string>()
    for (const l of leases.values())
      if (ours(l) && !held.runs.has(l._id) && !held.starting.has(l._id)) unheld.add(l._id)
    const stray = new Set([...unheld].filter((id) => this.#unheld.has(id)))
    this.#unheld = new Set([...unheld].filter((id) => !stray.has(id)))
    if (stray.size > 0) {
      log.warn('leases of this worker that no subscription runs on: released', { subscriptions: stray.size })
      await store.releaseMany([...stray], settings.workerId)
    }
    return stray
  }

  /**
   * Renews the heartbeat, which holds every lease of this worker, and nothing else that could wait: a
   * lease pass that waited for slow stops (a catch-up reader's disconnect, a cursor flush) renewed late,
   * the leases moved between the workers, and the fence fired again and again (the first full chaos run:
   * delivery never caught up after a store outage). After a lapse (not renewed for 0.8 x leaseTtlMs:
   * another worker may have taken leases over), the leases are read back and runs that lost theirs leave;
   * their stop runs in the run's own turn, and claiming in a pass of its own (control-loop.ts, claimPass).
   */
  async leasePass(): Promise<void> {
    const { store, settings: s, held } = this.#o
    const lapsed = !this.leaseValid()
    const t0 = Date.now()
    if (!(await store.heartbeat(s.workerId, this.incarnation, s.leaseTtlMs)) && !(await this.#retakeIdentity())) return
    this.renewedAt = t0
    if (!lapsed) return
    this.#again = true
    const ours = await store.heldBy(s.workerId)
    for (const run of [...held.runs.values()]) {
      if (!ours.has(run.id) && !run.leaving && !run.stopped) {
        this.#o.log.warn('lease lost (taken over after expiry): stopping the subscription here', {
          subscriptionId: run.id,
        })
        this.#o.leave(run, { flush: false, release: false })
      }
    }
  }

  /**
   * The heartbeat is no longer this incarnation's: another process took the worker id over (this one
   * could not renew it for a lease TTL), or it was swept. Takes it back when it is free again; else
   * stops every subscription here (their leases are the other process's now) and claims nothing.
   */
  async #retakeIdentity(): Promise<boolean> {
    const log = this.#o.log
    const r = await tryTakeIdentity(this.#o.store, this.#identityOptions())
    if (r.taken) {
      if (!this.identity) log.warn('worker id free again: this process holds it and claims subscriptions again')
      this.identity = true
      return true
    }
    if (this.identity) {
      this.identity = false
      identityLost(this.incarnation)
      log.error(
        'another process holds this worker id now: every subscription stops here, and ' +
          'none is claimed while it holds the id',
        { holderIncarnation: r.holder?.incarnation ?? null, holderHost: r.holder?.host ?? null },
      )
    }
    await this.#o.stopAll()
    return false
  }

  /** Cursor writes only while the leases are surely ours (renewed within the TTL, with a margin). */
  leaseValid(): boolean {
    return Date.now() - this.renewedAt < this.#o.settings.leaseTtlMs * 0.8
  }

  /**
   * The lease fence: leases not renewed for 0.8 x leaseTtlMs may soon be another worker's, so the
   * partner calls in flight are aborted (sent again once the leases are renewed, not counted as
   * attempts: delivery.ts, outcomes.ts) while no new one starts (delivery.ts, the holds). Two workers
   * never call a partner for one subscription at once, also when this one is cut off from the store.
   */
  fencePass(): void {
    const runs = this.#o.held.runs
    if (this.leaseValid() || runs.size === 0) {
      this.#fenced = false
      return
    }
    if (this.#fenced) return
    this.#fenced = true
    let aborted = 0
    for (const run of runs.values()) {
      aborted += run.inflight.size
      fenceCalls(run)
    }
    this.#o.log.warn(
      'leases not renewed: no partner call starts, and those in flight were aborted ' +
        '(they are sent again once the leases are renewed)',
      { aborted },
    )
  }
}

/**
 * The first choice among the live workers (`keys`) for a subscription, and its score in [0, 1): rendezvous
 * hashing, the highest hash of worker and subscription. Every worker computes the same choices from the
 * same live workers, so that workers claiming at once want different subscriptions: two workers started
 * together lost 1 % of their claims to each other when each picked at random, and took another claim
 * pass, a few seconds, to settle.
 */
function firstChoice(id: string, keys: readonly string[]): { key: string; score: number } {
  let key = ''
  let best = -1
  for (const k of keys) {
    const h = fnv1a(`${k}\u0000${id}`)
    if (h > best || (h === best && k < key)) {
      best = h
      key = k
    }
  }
  return { key, score: best / 2 ** 32 }
}

/** FNV-1a, 32 bits, mixed by MurmurHash3's finalizer (FNV alone split ids of one shape 46:54). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
