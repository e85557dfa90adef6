export { RestSink } from './sink.ts'
export { restSinkFactory, restSinkConfig } from './factory.ts'
export {
  restSinkProblems,
  REST_SECRET_PATHS,
  REST_METHODS,
  DEFAULT_BATCH_WAIT_MS,
  MAX_BATCH_WAIT_MS,
  MAX_BATCH_EVENTS,
} from './config.ts'
export type { RestSinkConfig, RestAuth, RestMethod } from './config.ts'
export { OAuth2TokenCache, TokenError } from './oauth2.ts'
export type { OAuth2Credentials, OAuth2TokenCacheOptions } from './oauth2.ts'
export { BodyMapping, mappingProblem, mappingInput, eventBody } from './mapping.ts'
export {
  MappingSandbox,
  DEFAULT_MAPPING_SANDBOX,
  KILL_GRACE_MS,
  SANDBOX_SCRIPT,
  describeFailure,
  inProcessEvaluator,
} from './mapping-sandbox.ts'
export type { MappingSandboxSettings, MappingEvaluator, SandboxResult } from './mapping-sandbox.ts'
export type { MappingProblem } from './mapping.ts'
export { parseUrlTemplate, renderUrl, urlTemplateProblem } from './template.ts'
export type { UrlTemplate } from './template.ts'
export { MicroBatcher } from './batcher.ts'
