/**
 * The REST / CRM sink type (docs/rest-sink.md): its config, checks and factory (consumers/plugin.ts).
 */
import type { RestSink } from '../../control-plane/types.ts'
import { HTTP_URL_PATTERN } from '../http/url.ts'
import { sinkConfig, type SinkPlugin } from '../plugin.ts'
import { MAPPING_PATTERN } from './mapping.ts'
import { REST_SECRET_PATHS, restSinkProblems } from './config.ts'
import { restSinkFactory } from './factory.ts'

export const restPlugin: SinkPlugin<RestSink> = {
  ...sinkConfig('rest', 'RestSink', {
    required: ['url', 'method'],
    properties: {
      url: {
        type: 'string',
        maxLength: 2000,
        pattern: HTTP_URL_PATTERN,
        description:
          'URL or URL template: placeholders {key}, {eventId}, {eventType}, {topic} or {value.<field path>} after the host, each URL-encoded (e.g. https://crm.example/api/stock/{value.sku} with PUT: an upsert by external id). An event without a value for a placeholder is dead-lettered. The SSRF guard applies as to a webhook URL (and to auth.tokenUrl).',
      },
      method: { type: 'string', enum: ['POST', 'PUT', 'PATCH'] },
      headers: {
        type: 'object',
        additionalProperties: { type: 'string', maxLength: 2000 },
        description:
          'Extra request headers; Idempotency-Key (the event id), Authorization and ' +
          'Content-Type are set by the platform.',
      },
      bodyMapping: {
        type: 'string',
        maxLength: 20000,
        pattern: MAPPING_PATTERN,
        description:
          'JSONata expression (https://jsonata.org) over {key, value, eventId, eventType, timestamp, topic, partition, offset} giving the JSON body, e.g. {"externalId": value.sku, "available": value.available}. Checked when saved (422 naming sink.bodyMapping with the position). Evaluated in sandbox processes with a time, memory and output limit (MAPPING_TIME_LIMIT_MS, MAPPING_MEMORY_LIMIT_MB, MAPPING_MAX_OUTPUT_BYTES); an event it cannot map, or whose mapping exceeds a limit, is dead-lettered with the reason. Absent: the event value is the body.',
      },
      batchWaitMs: {
        type: 'integer',
        minimum: 0,
        maximum: 10000,
        default: 50,
        description:
          'With deliveryPolicy.batchSize > 1: how long a batch waits for more events. A ' +
          'batch is a JSON array of bodies, never two events of one key; a 2xx delivers ' +
          'all, a rejected batch is re-sent one event per request.',
      },
      auth: {
        type: 'object',
        additionalProperties: false,
        required: ['type'],
        description:
          'token, password, clientSecret and headerValue are write-only (encrypted at rest, never returned).',
        properties: {
          type: { type: 'string', enum: ['none', 'bearer', 'basic', 'oauth2', 'header'] },
          token: { type: 'string', writeOnly: true },
          username: { type: 'string' },
          password: { type: 'string', writeOnly: true },
          tokenUrl: { type: 'string', format: 'uri', pattern: HTTP_URL_PATTERN },
          clientId: { type: 'string' },
          clientSecret: { type: 'string', writeOnly: true },
          scope: { type: 'string' },
          audience: { type: 'string', description: 'OAuth2 audience parameter (e.g. Auth0).' },
          clientAuth: {
            type: 'string',
            enum: ['basic', 'body'],
            default: 'basic',
            description: 'How the client authenticates at the token endpoint: HTTP Basic or form fields.',
          },
          headerName: { type: 'string' },
          headerValue: { type: 'string', writeOnly: true },
        },
      },
    },
  }),
  secretPaths: REST_SECRET_PATHS,
  urlPaths: ['url', 'auth.tokenUrl'],
  /** Its own rules (the URL template, auth, the JSONata mapping) on a sink sent, its secrets as they will be stored. */
  validate: (sink, { sent }) => (sent ? restSinkProblems(sink).map((e) => ({ ...e, field: `sink.${e.field}` })) : []),
  // the REST sink shares the webhook client's keep-alive pools, URL guard and status rules
  create: (rt) => restSinkFactory(rt.http, rt.tokens, rt.mappings, rt.secrets, rt.webhookTimeoutMs),
}
