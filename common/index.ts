export { SyndicationError, ConfigError, StackError, DataError, RetriableError, PartnerRejectedError, EndpointDisabledError, isRetriable } from './errors.ts'
export type { ErrorCode, ErrorContext, EndpointDisabledReason } from './errors.ts'
export { createLogger, redact } from './logger.ts'
export type { Logger, LogLevel, LoggerOptions } from './logger.ts'
