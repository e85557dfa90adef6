import type { Response } from 'express'

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
