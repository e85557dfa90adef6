import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express'
import type { Logger } from '../common/logger.ts'
import type { Metrics } from '../common/metrics.ts'
import { healthRouter, type ReadinessChecks } from './health.ts'
import { docsRouter } from './management/docs.ts'
import { managementRouter, type ManagementOptions } from './management/router.ts'
import { sendProblem, sendStoreUnavailable } from './problem.ts'
import { consoleRouter, type ConsoleOptions } from '../console/index.ts'
import { isStoreUnavailable } from '../common/store-errors.ts'

export interface AppDeps {
  logger: Logger
  readiness: ReadinessChecks
  /** The management API under /v1 and its docs at /docs (absent: health routes only). */
  management?: ManagementOptions
  /** Served at GET /metrics (Prometheus text format), beside /health and /ready: no API key. */
  metrics?: Metrics
  /** Routers with their own authentication (event ingestion), mounted before the management API. */
  routers?: RequestHandler[]
  /** The web console under /console (docs/console.md); absent: none. */
  console?: ConsoleOptions
}

export function createApp(deps: AppDeps): express.Express {
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  const metrics = deps.metrics
  if (metrics) {
    app.use((req: Request, res: Response, next: NextFunction) => {
      const end = metrics.httpDuration.startTimer()
      res.once('finish', () => {
        // The route template (/v1/subscriptions/:id), never the raw path: ids must not become labels.
        const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched'
        end({ method: req.method, route })
        metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) })
      })
      next()
    })
    app.get('/metrics', async (_req: Request, res: Response) => {
      const { contentType, body } = await metrics.render()
      res.type(contentType).send(body)
    })
  }
  app.use(healthRouter(deps.readiness))
  for (const router of deps.routers ?? []) app.use(router)
  if (deps.management) {
    app.use('/v1', managementRouter(deps.management))
    app.use(docsRouter())
  }
  if (deps.console) app.use('/console', consoleRouter(deps.console))
  app.use((req: Request, res: Response) => {
    sendProblem(res, { title: 'Not Found', status: 404, detail: `no route for ${req.method} ${req.path}` })
  })
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendProblem(res, { title: (err as Error).message, status })
      return
    }
    if (isStoreUnavailable(err)) {
      // e.g. an API key checked against the store while it is away: the request was not accepted
      const message = 'request held: the store is unreachable (503)'
      sendStoreUnavailable(res, 'accepted', { logger: deps.logger, message, req, err })
      return
    }
    deps.logger.error('request failed', { method: req.method, path: req.path, err })
    sendProblem(res, { title: 'Internal Server Error', status: 500 })
  })
  return app
}
