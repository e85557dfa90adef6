/**
 * The REST sink's micro-batcher. The delivery queue calls `put()` once per record with at most one
 * record in flight per key, concurrently across keys; the batcher gathers those concurrent calls
 * (per target URL) for up to `maxWaitMs` or `maxEvents`, sends them as one request and settles each
 * caller with its own outcome. A batch therefore never holds two records of one key, and a key's
 * next record is only offered after the previous one was confirmed: per-key order holds for free.
 */
import { RetriableError, type SyndicationError } from '../../common/errors.ts'

export interface BatchItem<T> {
  value: T
  resolve(): void
  reject(err: unknown): void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/** Sends one batch; answers one outcome per item, in order (undefined: delivered). */
export type FlushFn<T> = (group: string, items: T[]) => Promise<Array<SyndicationError | undefined>>

interface Pending<T> {
  items: Array<BatchItem<T>>
  timer: { timeout: NodeJS.Timeout } | { immediate: NodeJS.Immediate }
}

function cancel(p: Pending<unknown>): void {
  if ('timeout' in p.timer) clearTimeout(p.timer.timeout)
  else clearImmediate(p.timer.immediate)
}

export class MicroBatcher<T> {
  readonly #pending = new Map<string, Pending<T>>()
  #closed = false

  constructor(
    private readonly maxEvents: number,
    private readonly maxWaitMs: number,
    private readonly flush: FlushFn<T>,
  ) {}

  /** Resolves when the item's batch was delivered; rejects with the item's classified error. */
  add(group: string, value: T, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new RetriableError('REST sink stopped'))
    if (signal?.aborted)
      return Promise.reject(new RetriableError('delivery aborted (subscription stopped)', undefined, { aborted: true }))
    return new Promise<void>((resolve, reject) => {
      const item: BatchItem<T> = { value, resolve, reject, signal, onAbort: undefined }
      let p = this.#pending.get(group)
      if (!p) {
        const timer =
          this.maxWaitMs > 0
            ? { timeout: setTimeout(() => this.#flush(group), this.maxWaitMs) }
            : { immediate: setImmediate(() => this.#flush(group)) }
        this.#pending.set(group, (p = { items: [], timer }))
      }
      p.items.push(item)
      if (signal) {
        const batch = p
        item.onAbort = () => {
          const i = batch.items.indexOf(item)
          if (i >= 0 && this.#pending.get(group) === batch) {
            batch.items.splice(i, 1)
            reject(new RetriableError('delivery aborted (subscription stopped)', undefined, { aborted: true }))
          }
        }
        signal.addEventListener('abort', item.onAbort, { once: true })
      }
      if (p.items.length >= this.maxEvents) this.#flush(group)
    })
  }

  #flush(group: string): void {
    const p = this.#pending.get(group)
    if (!p) return
    this.#pending.delete(group)
    cancel(p)
    const items = p.items
    for (const it of items) if (it.onAbort) it.signal!.removeEventListener('abort', it.onAbort)
    if (items.length === 0) return
    this.flush(
      group,
      items.map((it) => it.value),
    ).then(
      (outcomes) => items.forEach((it, i) => (outcomes[i] ? it.reject(outcomes[i]) : it.resolve())),
      (err: unknown) => items.forEach((it) => it.reject(err)),
    )
  }

  /** Records waiting for their batch. */
  get waiting(): number {
    let n = 0
    for (const p of this.#pending.values()) n += p.items.length
    return n
  }

  /** Fails every waiting record (retriable: the runtime offers them again) and refuses new ones. */
  close(): void {
    this.#closed = true
    for (const [group, p] of [...this.#pending]) {
      this.#pending.delete(group)
      cancel(p)
      for (const it of p.items) {
        if (it.onAbort) it.signal!.removeEventListener('abort', it.onAbort)
        it.reject(new RetriableError('REST sink stopped'))
      }
    }
  }
}
