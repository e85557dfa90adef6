export { SyndicationError, ConfigError, StackError, DataError, RetriableError, PartnerRejectedError, isRetriable } from './errors.ts'
export type { ErrorCode, ErrorContext } from './errors.ts'
export { createLogger, redact } from './logger.ts'
export type { Logger, LogLevel, LoggerOptions } from './logger.ts'
