import type { Server } from 'node:http'
import type { Request, Response } from 'express'
import { answerParseErrors } from '../common/http-parse-errors.ts'
import type { Logger } from '../common/logger.ts'
import { STORE_RETRY_AFTER_SECONDS } from '../common/store-errors.ts'

/** RFC 9457 problem details; `errors` names each field at fault. */
export interface Problem {
  type?: string
  title: string
  status: number
  detail?: string
  instance?: string
  errors?: Array<{ field: string; message: string; in?: string }>
  [extra: string]: unknown
}

const problemJson = (problem: Problem) => JSON.stringify({ type: 'about:blank', ...problem })

export function sendProblem(res: Response, problem: Problem): void {
  res.status(problem.status).type('application/problem+json').send(problemJson(problem))
}

/**
 * A request Node's HTTP parser refuses (e.g. a control character in a header value) never reaches express: it is
 * answered as a problem here too, naming the header when the parser says which (common/http-parse-errors.ts).
 */
export function answerParseErrorsAsProblems(server: Server): void {
  answerParseErrors(server, ({ status, title, detail, header }) => ({
    contentType: 'application/problem+json; charset=utf-8',
    body: problemJson({
      title,
      status,
      detail,
      ...(header !== undefined
        ? {
            errors: [
              { field: header, in: 'header', message: 'holds a character HTTP does not allow in a header value' },
            ],
          }
        : {}),
    }),
  }))
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
