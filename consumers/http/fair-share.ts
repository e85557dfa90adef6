/**
 * Fair shares of one partner origin's connections between the subscriptions calling it.
 *
 * Every HTTP sink of a worker shares one keep-alive pool per origin (consumers/http/client.ts). Left
 * to the pool, calls are served first come, first served: one subscription with many lanes in flight
 * (a replay, a backlog) or a slow origin that many subscriptions call would make every other
 * subscription of that origin wait behind it. Here each origin has `connections` slots, and each
 * caller (a lane: one subscription's run, identified by the object the caller passes, its
 * AbortSignal) is entitled to an equal share of them while others want some: max-min fairness.
 *
 *  - A lane alone at an origin (the usual case: a partner's own endpoint) may use every slot.
 *  - With n lanes active (holding or waiting for a slot), a lane holding `connections / n` (at least
 *    1) waits while another lane is below its share; freed slots go round-robin to the lanes below
 *    their share, one call each per round, in the order they started waiting.
 *  - A waiting call whose signal aborts (the subscription handed over or stopped) leaves the queue.
 *
 * The pool never queues a call itself (at most `connections` are dispatched per origin), so a slow or
 * hanging origin holds up only the slots its own calls hold, and each lane gets its share of those.
 * The common path (free slots, nobody waiting) is two map lookups and two counters; a grant with many
 * lanes waiting costs no pass over them (the active lanes are counted as they come and go).
 */

interface Waiter {
  lane: object
  resolve: () => void
  reject: (err: unknown) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

interface Origin {
  running: number
  /** Calls in flight per lane. */
  held: Map<object, number>
  /** Waiting calls per lane, in arrival order. */
  waiting: Map<object, Waiter[]>
  /** Lanes with waiting calls, in round-robin order. */
  ready: object[]
  /** Lanes holding a slot or waiting for one (kept as they come and go: 1,000 lanes waiting at one origin). */
  active: number
}

/** The lane of calls made without a subscription (e.g. an OAuth2 token request). */
const NO_LANE = {}

export class FairShare {
  readonly #origins = new Map<string, Origin>()

  constructor(readonly connections: number) {
    if (!Number.isInteger(connections) || connections < 1)
      throw new RangeError(`connections per origin must be a positive integer, got ${connections}`)
  }

  /** Calls in flight and waiting at an origin (for tests and status). */
  load(origin: string): { running: number; waiting: number; lanes: number } {
    const o = this.#origins.get(origin)
    if (!o) return { running: 0, waiting: 0, lanes: 0 }
    let waiting = 0
    for (const w of o.waiting.values()) waiting += w.length
    return { running: o.running, waiting, lanes: o.active }
  }

  /**
   * Resolves when the call may be dispatched (undefined: at once, no promise made); rejects with the
   * signal's reason when it aborts while waiting. Every granted call must be followed by `release`.
   */
  acquire(origin: string, lane: object | undefined, signal?: AbortSignal): Promise<void> | undefined {
    const key = lane ?? NO_LANE
    let o = this.#origins.get(origin)
    if (o === undefined) {
      o = { running: 0, held: new Map(), waiting: new Map(), ready: [], active: 0 }
      this.#origins.set(origin, o)
    }
    const held = o.held.get(key) ?? 0
    if (
      o.running < this.connections &&
      (o.ready.length === 0 || (o.waiting.has(key) === false && held < this.#share(o, key)))
    ) {
      o.running++
      o.held.set(key, held + 1)
      if (held === 0) o.active++ // not waiting either: nobody waits, or this lane does not
      return undefined
    }
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { lane: key, resolve, reject, signal, onAbort: undefined }
      if (signal) {
        w.onAbort = () => this.#leave(origin, w)
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      const queue = o.waiting.get(key)
      if (queue) queue.push(w)
      else {
        o.waiting.set(key, [w])
        o.ready.push(key)
        if (held === 0) o.active++
      }
    })
  }

  /** A granted call finished: its slot goes to the next lane below its share, round-robin. */
  release(origin: string, lane: object | undefined): void {
    const key = lane ?? NO_LANE
    const o = this.#origins.get(origin)
    if (!o) return
    o.running--
    const held = (o.held.get(key) ?? 1) - 1
    if (held > 0) o.held.set(key, held)
    else if (o.held.delete(key) && !o.waiting.has(key)) o.active--
    this.#grant(o)
    if (o.running === 0 && o.ready.length === 0) this.#origins.delete(origin)
  }

  /** Hands free slots to waiting lanes: the first in round-robin order below its share, one call each. */
  #grant(o: Origin): void {
    while (o.running < this.connections && o.ready.length > 0) {
      // every lane in `ready` is active: one share for all of them (counted once per slot, not per lane)
      const share = Math.max(1, Math.floor(this.connections / o.active))
      let picked = -1
      for (let i = 0; i < o.ready.length; i++) {
        const lane = o.ready[i]!
        if ((o.held.get(lane) ?? 0) < share) {
          picked = i
          break
        }
      }
      // every waiting lane holds its share already (slots are free because others hold less): the
      // first in line takes it, so that no slot stays idle while calls wait
      if (picked < 0) picked = 0
      const lane = o.ready[picked]!
      if (picked === 0) o.ready.shift()
      else o.ready.splice(picked, 1)
      const queue = o.waiting.get(lane)!
      const w = queue.shift()!
      if (queue.length > 0)
        o.ready.push(lane) // back of the round
      else o.waiting.delete(lane)
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort)
      o.running++
      o.held.set(lane, (o.held.get(lane) ?? 0) + 1)
      w.resolve()
    }
  }

  #leave(origin: string, w: Waiter): void {
    const o = this.#origins.get(origin)
    const queue = o?.waiting.get(w.lane)
    if (!o || !queue) return
    const i = queue.indexOf(w)
    if (i < 0) return
    queue.splice(i, 1)
    if (queue.length === 0) {
      o.waiting.delete(w.lane)
      if (!o.held.has(w.lane)) o.active--
      const r = o.ready.indexOf(w.lane)
      if (r >= 0) o.ready.splice(r, 1)
    }
    w.reject(w.signal?.reason)
    // a lane that left may have lowered everyone's share: slots may be free for others now
    this.#grant(o)
    if (o.running === 0 && o.ready.length === 0) this.#origins.delete(origin)
  }

  #share(o: Origin, lane: object): number {
    const active = o.active + (o.held.has(lane) || o.waiting.has(lane) ? 0 : 1)
    return Math.max(1, Math.floor(this.connections / active))
  }
}
