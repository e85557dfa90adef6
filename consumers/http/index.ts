export { HttpSinkClient, classifyStatus, classifyFailure, attemptOutcome } from './client.ts'
export type { UrlGuard, HttpSinkClientOptions, HttpCall, AttemptResult } from './client.ts'
