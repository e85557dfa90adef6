export {
  SyndicationError,
  ConfigError,
  StackError,
  DataError,
  RetriableError,
  PartnerRejectedError,
  UrlRefusedError,
  SecretUnreadableError,
  EndpointDisabledError,
  RateLimitedError,
  isRetriable,
} from './errors.ts'
export type { ErrorCode, ErrorContext, EndpointDisabledReason } from './errors.ts'
export { createLogger, redact } from './logger.ts'
export type { Logger, LogLevel, LoggerOptions } from './logger.ts'
export { createUrlGuard, forbiddenReason, unmapIPv4, parseAllowlist } from './url-guard.ts'
export type { UrlGuard, UrlGuardOptions, CheckedUrl, LookupFn } from './url-guard.ts'
export { createSecretBox, parseKeyRing, generateKeyRingEntry, generateWebhookSecret } from './secret-box.ts'
export type { SecretBox, KeyRing } from './secret-box.ts'
export { LruMap } from './lru-map.ts'
export { TokenBuckets, MAX_TRACKED_BUCKETS } from './token-buckets.ts'
export type { RateLimit } from './token-buckets.ts'
