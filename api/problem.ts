import type { Request, Response } from 'express'
import type { Logger } from '../common/logger.ts'
import { STORE_RETRY_AFTER_SECONDS } from '../common/store-errors.ts'

/** RFC 9457 problem details; `errors` names each field at fault. */
export interface Problem {
  type?: string
  title: string
  status: number
  detail?: string
  instance?: string
  errors?: Array<{ field: string; message: string }>
  [extra: string]: unknown
}

export function sendProblem(res: Response, problem: Problem): void {
  res
    .status(problem.status)
    .type('application/problem+json')
    .send(JSON.stringify({ type: 'about:blank', ...problem }))
}

/**
 * The answer to a store outage (isStoreUnavailable): 503 with Retry-After, never 500. `nothingWas` tells the client
 * what it may rely on ('accepted': the request was held before it was taken; 'changed'). With `held`, the request is
 * logged as a warning (RETRIABLE) under its message.
 */
export function sendStoreUnavailable(
  res: Response,
  nothingWas: 'accepted' | 'changed',
  held?: { logger: Logger; message: string; req: Request; err: unknown },
): void {
  if (held) {
    const { logger, message, req, err } = held
    logger.warn(message, { method: req.method, path: req.path, code: 'RETRIABLE', err })
  }
  res.setHeader('Retry-After', String(STORE_RETRY_AFTER_SECONDS))
  sendProblem(res, {
    title: 'Service Unavailable',
    status: 503,
    detail: `the platform's store is unreachable for a moment; retry later (nothing was ${nothingWas})`,
  })
}
