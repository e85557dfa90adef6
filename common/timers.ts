/**
 * The one sleep of the code base (issue 22: there were six private ones), in the two forms callers need:
 *  - `sleep(ms, signal)`: rejects with the signal's reason when it aborts (a retry loop that must stop);
 *  - `idle(ms, signal)`: resolves early when it aborts (a loop that checks its own stop condition next).
 */

/** setTimeout as a promise that an AbortSignal interrupts (rejecting with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Waits `ms`, or less when the signal aborts; never rejects. */
export function idle(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
