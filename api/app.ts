import express, { type NextFunction, type Request, type Response } from 'express'
import type { Logger } from '../common/logger.ts'
import { healthRouter, type ReadinessChecks } from './health.ts'
import { docsRouter } from './management/docs.ts'
import { managementRouter, type ManagementOptions } from './management/router.ts'
import { sendProblem } from './problem.ts'

export interface AppDeps {
  logger: Logger
  readiness: ReadinessChecks
  /** The management API under /v1 and its docs at /docs (absent: health routes only). */
  management?: ManagementOptions
}

export function createApp(deps: AppDeps): express.Express {
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  app.use(healthRouter(deps.readiness))
  if (deps.management) {
    app.use('/v1', managementRouter(deps.management))
    app.use(docsRouter())
  }
  app.use((req: Request, res: Response) => {
    sendProblem(res, { title: 'Not Found', status: 404, detail: `no route for ${req.method} ${req.path}` })
  })
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendProblem(res, { title: (err as Error).message, status })
      return
    }
    deps.logger.error('request failed', { method: req.method, path: req.path, err })
    sendProblem(res, { title: 'Internal Server Error', status: 500 })
  })
  return app
}
