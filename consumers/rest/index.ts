export { RestSink } from './sink.ts'
export { restSinkFactory, restSinkConfig } from './factory.ts'
export {
  restSinkProblems,
  REST_SECRET_PATHS,
  REST_METHODS,
  DEFAULT_BATCH_WAIT_MS,
  MAX_BATCH_WAIT_MS,
  MAX_BATCH_EVENTS,
  type RestSinkConfig,
  type RestAuth,
  type RestMethod,
} from './config.ts'
export { OAuth2TokenCache, TokenError, type OAuth2Credentials, type OAuth2TokenCacheOptions } from './oauth2.ts'
export { BodyMapping, mappingProblem, mappingInput, eventBody, type MappingProblem } from './mapping.ts'
export {
  MappingSandbox,
  DEFAULT_MAPPING_SANDBOX,
  KILL_GRACE_MS,
  SANDBOX_SCRIPT,
  describeFailure,
  inProcessEvaluator,
  type MappingSandboxSettings,
  type MappingEvaluator,
  type SandboxResult,
} from './mapping-sandbox.ts'
export { parseUrlTemplate, renderUrl, urlTemplateProblem, type UrlTemplate } from './template.ts'
export { MicroBatcher } from './batcher.ts'
