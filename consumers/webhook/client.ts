/**
 * The webhook side of the shared HTTP sink client (consumers/http): a Standard Webhooks message is
 * POSTed with webhook-id, a fresh webhook-timestamp and one signature per key in force; the status
 * rules, keep-alive pool and URL guard are those of every HTTP sink (consumers/http/client.ts).
 */
import {
  HttpSinkClient,
  type AttemptResult,
  type CallTrace,
  type HttpCall,
  type HttpSinkClientOptions,
} from '../http/client.ts'
import { signatureHeader, type SigningKey } from './signature.ts'

export type WebhookClientOptions = HttpSinkClientOptions

/** One endpoint, ready to send: URL, signing keys in force, timeout, extra headers. */
export interface WebhookTarget {
  url: string
  keys: readonly SigningKey[]
  timeoutMs: number
  headers: Readonly<Record<string, string>>
}

export interface WebhookMessage {
  id: string
  /** The JSON text, or its UTF-8 bytes (one Buffer shared by every subscription sending the record). */
  body: string | Buffer
  /** The event's trace context, sent on as traceparent (docs/tracing.md). */
  trace?: CallTrace
}

export class WebhookClient extends HttpSinkClient {
  constructor(options: WebhookClientOptions) {
    super(options, 'Distributary-Webhooks/0.1')
  }

  /** One attempt: signs with a fresh timestamp, posts, classifies. Never throws. */
  send(target: WebhookTarget, message: WebhookMessage, signal?: AbortSignal): Promise<AttemptResult> {
    const timestamp = Math.floor(this.now() / 1000)
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.userAgent,
      'webhook-id': message.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader(target.keys, message.id, timestamp, message.body),
    }
    for (const name in target.headers) headers[name] = target.headers[name]!
    const call: HttpCall = { method: 'POST', url: target.url, headers, body: message.body, timeoutMs: target.timeoutMs }
    if (message.trace !== undefined) call.trace = message.trace
    return this.call(call, message.id, signal)
  }
}
