/**
 * Runs at most `max` async tasks at a time, the others in arrival order. Used where a burst of
 * background writes (e.g. the delivery log) must not take every connection of a shared pool, or
 * every write slot of a store, away from the writes that keep a process alive (leases, heartbeats).
 */
export class Limiter {
  #running = 0
  readonly #waiting: Array<() => void> = []

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`Limiter max must be a positive integer, got ${max}`)
  }

  /** Tasks running or waiting. */
  get size(): number {
    return this.#running + this.#waiting.length
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.max) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    else this.#running++
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next)
        next() // the slot passes on directly
      else this.#running--
    }
  }
}
