export {
  HttpSinkClient,
  classifyStatus,
  classifyFailure,
  attemptOutcome,
  MIN_HTTP_TIMEOUT_MS,
  MAX_HTTP_TIMEOUT_MS,
  DEFAULT_HTTP_TIMEOUT_MS,
} from './client.ts'
export type { HttpSinkClientOptions, HttpCall, AttemptResult } from './client.ts'
export { httpUrlProblem } from './url.ts'
