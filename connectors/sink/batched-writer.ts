/**
 * Writes that may lag a little (the delivery log) gathered into batches: one command per batch
 * instead of one round trip per write. Per key (a delivery-log document) the writes keep their
 * order: a batch holds at most one write per key (a second write of a key seals the batch), and
 * batches are written one after the other. A batch goes out when it holds `maxBatch` writes or
 * `delayMs` after its first write.
 *
 * Best effort, like the single writes it replaces: a failed batch is reported to `onError` and its
 * writes' promises resolve all the same (the caller must not wait forever on a log line).
 */
export interface BatchedWriterOptions<Op> {
  write: (ops: Op[]) => Promise<void>
  onError: (err: unknown, ops: Op[]) => void
  maxBatch?: number
  delayMs?: number
}

interface Batch<Op> {
  ops: Op[]
  keys: Set<string>
  done: Array<() => void>
}

export class BatchedWriter<Op> {
  readonly #write: (ops: Op[]) => Promise<void>
  readonly #onError: (err: unknown, ops: Op[]) => void
  readonly #maxBatch: number
  readonly #delayMs: number
  #current: Batch<Op> | null = null
  readonly #sealed: Batch<Op>[] = []
  #timer: NodeJS.Timeout | undefined
  #draining: Promise<void> | null = null
  #pending = 0

  constructor(options: BatchedWriterOptions<Op>) {
    this.#write = options.write
    this.#onError = options.onError
    this.#maxBatch = Math.max(1, options.maxBatch ?? 200)
    this.#delayMs = Math.max(0, options.delayMs ?? 50)
  }

  /** Writes not written yet (queued or in flight). */
  get pending(): number {
    return this.#pending
  }

  /** Queues a write; resolves once the batch holding it was written (or failed, reported to onError). */
  add(key: string, op: Op): Promise<void> {
    if (this.#current?.keys.has(key)) this.#seal()
    const batch = (this.#current ??= { ops: [], keys: new Set(), done: [] })
    batch.ops.push(op)
    batch.keys.add(key)
    this.#pending++
    const done = new Promise<void>((resolve) => batch.done.push(resolve))
    if (batch.ops.length >= this.#maxBatch) this.#seal()
    else this.#timer ??= setTimeout(() => this.#seal(), this.#delayMs)
    return done
  }

  /** Writes everything queued now; resolves when it is written. */
  async flush(): Promise<void> {
    if (this.#current) this.#seal()
    while (this.#draining) await this.#draining
  }

  #seal(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = this.#current
    this.#current = null
    if (!batch || batch.ops.length === 0) return
    this.#sealed.push(batch)
    this.#kick()
  }

  #kick(): void {
    if (this.#draining || this.#sealed.length === 0) return
    this.#draining = this.#drain().finally(() => {
      this.#draining = null
      this.#kick() // a batch sealed while the last write was settling
    })
  }

  async #drain(): Promise<void> {
    for (let batch = this.#sealed.shift(); batch; batch = this.#sealed.shift()) {
      try {
        await this.#write(batch.ops)
      } catch (err) {
        this.#onError(err, batch.ops)
      }
      this.#pending -= batch.ops.length
      for (const resolve of batch.done) resolve()
    }
  }
}
