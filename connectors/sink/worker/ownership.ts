/**
 * Which subscriptions this worker may deliver for (docs/sink-workers.md, "Worker ids and restarts" and
 * "Hand-over"). Subscriptions are spread over the worker processes by leases in MongoDB (store.ts):
 * each worker holds about its fair share, renews its leases every heartbeat, and takes over expired
 * ones, so a killed worker's subscriptions resume elsewhere after about `leaseTtlMs`, from their
 * cursors. A process restarted under the same worker id takes its previous incarnation's leases over
 * at once (identity.ts: how it tells a gone predecessor from a live process misconfigured with its
 * id). The lease FENCE aborts every partner call in flight when the leases are not renewed in time:
 * two workers never call a partner for one subscription at once.
 */
import { RetriableError } from '../../../common/errors.ts'
import type { Logger } from '../../../common/logger.ts'
import type { ControlPlane } from '../../../control-plane/service.ts'
import { identityLost, releaseIdentity, takeIdentity, tryTakeIdentity } from '../identity.ts'
import type { LeaseDoc, SinkStore } from '../store.ts'
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
  /**
   * Stops every run here, each in its turn, writing no cursor and releasing no lease (they are another process's now).
   */
  stopAll(): Promise<void>
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
   * Claims free or expired leases up to this worker's fair share, and every lease a previous
   * incarnation of this worker id left (it is gone: identity.ts), first; returns the ids it claimed.
   */
  async claimShare(): Promise<string[]> {
    const { store, settings: s, held } = this.#o
    if (!this.identity) return []
    const now = new Date()
    const workers = Math.max(1, (await store.liveWorkers(now)).length)
    const connectors = await this.#o.controlPlane.cols.connectors
      .find({ desiredState: { $ne: 'stopped' } }, { projection: { _id: 1 } })
      .toArray()
    const leases = new Map((await store.all()).map((l) => [l._id, l] as [string, LeaseDoc]))
    const ours = (l: LeaseDoc) => l.workerId === s.workerId && l.incarnation === this.incarnation
    const predecessor = (l: LeaseDoc | undefined) =>
      l !== undefined && l.workerId === s.workerId && l.incarnation !== this.incarnation
    const mine = [...leases.values()].filter(ours).length
    const target = Math.ceil(connectors.length / workers)
    const free = connectors.filter((c) => {
      const l = leases.get(c._id)
      // an expired lease of this incarnation is one of its runs restarting (control-loop.ts, apply), not free
      return !l || (l.expiresAt <= now && !ours(l)) || predecessor(l)
    })
    shuffle(free)
    free.sort((a, b) => Number(predecessor(leases.get(b._id))) - Number(predecessor(leases.get(a._id))))
    // One batch (two commands), not a round trip per subscription: 1,000 are claimed in seconds.
    const wanted = free
      .filter((c) => !held.runs.has(c._id) && !held.starting.has(c._id))
      .slice(0, Math.max(0, target - mine))
      .map((c) => c._id)
    const claimed = [...(await store.claimMany(wanted, s.workerId, s.leaseTtlMs, leases, now))]
    // More than the fair share (another worker joined): hand the surplus over.
    const running = [...held.runs.values()].filter((r) => !r.leaving && !r.stopped)
    if (workers > 1 && running.length > target) {
      for (const run of running.slice(0, running.length - target)) {
        this.#o.log.info('handing a subscription over to balance the workers', { subscriptionId: run.id })
        this.#o.leave(run, { flush: true, release: true, state: 'unassigned' })
      }
    }
    return claimed
  }

  /**
   * Renews the heartbeat and the leases, and nothing else that could wait: a lease pass that waited
   * for slow stops (a catch-up reader's disconnect, a cursor flush, a run's queued operations) renewed
   * late, the other leases expired too and moved between the workers, and the fence fired again and
   * again (the first full chaos run: delivery never caught up after a store outage). A lost lease
   * stops its run's partner calls at once (leave); the stop itself runs in the run's own turn, and
   * reconciliation and claiming run in a pass of their own (control-loop.ts, claimPass).
   */
  async leasePass(): Promise<void> {
    const { store, settings: s, held } = this.#o
    if (!(await store.heartbeat(s.workerId, this.incarnation, s.leaseTtlMs)) && !(await this.#retakeIdentity())) return
    const ids = [...held.runs.keys(), ...held.starting.keys()]
    const t0 = Date.now()
    const renewed = await store.renew(s.workerId, ids, s.leaseTtlMs)
    this.renewedAt = t0
    for (const run of [...held.runs.values()]) {
      if (!renewed.has(run.id) && !run.leaving && !run.stopped) {
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

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
}
