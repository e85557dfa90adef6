export { WebhookClient } from './client.ts'
export type { WebhookClientOptions, WebhookTarget, WebhookMessage } from './client.ts'
export { classifyStatus, classifyFailure } from '../http/index.ts'
export type { AttemptResult } from '../http/index.ts'
export {
  WebhookSink,
  webhookConfigProblems,
  webhookBody,
  webhookBodyBytes,
  DEFAULT_WEBHOOK_TIMEOUT_MS,
  MIN_WEBHOOK_TIMEOUT_MS,
  MAX_WEBHOOK_TIMEOUT_MS,
} from './sink.ts'
export type { WebhookSinkConfig, WebhookSecret, FieldProblem } from './sink.ts'
export { generateSecret, secretKey, sign, signatureHeader, SECRET_PREFIX, MIN_SECRET_BYTES } from './signature.ts'
export { webhookSinkFactory, webhookSinkConfig } from './factory.ts'
