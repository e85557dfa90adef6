/**
 * GET /health: the process is up (no dependency checked, no auth).
 * GET /ready: every dependency answers a real request right now; 503 otherwise, saying which.
 */
import { Router } from 'express'

export type Check = () => Promise<void>

export interface ReadinessChecks {
  [dependency: string]: Check
}

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()),
  ])

export function healthRouter(checks: ReadinessChecks, timeoutMs = 3000): Router {
  const router = Router()
  const startedAt = Date.now()
  router.get('/health', (_req, res) => {
    res.json({ status: 'ok', uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) })
  })
  router.get('/ready', async (_req, res) => {
    const entries = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        const t0 = Date.now()
        try {
          await withTimeout(check(), timeoutMs)
          return [name, { status: 'up', latencyMs: Date.now() - t0 }] as const
        } catch (err) {
          return [
            name,
            { status: 'down', latencyMs: Date.now() - t0, error: err instanceof Error ? err.message : String(err) },
          ] as const
        }
      }),
    )
    const ready = entries.every(([, c]) => c.status === 'up')
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks: Object.fromEntries(entries) })
  })
  return router
}
