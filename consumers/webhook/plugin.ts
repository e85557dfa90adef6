/**
 * The webhook sink type (Standard Webhooks): its config, checks and factory (consumers/plugin.ts).
 */
import type { WebhookSink } from '../../control-plane/types.ts'
import { HTTP_URL_PATTERN } from '../http/url.ts'
import { sinkConfig, type SinkPlugin } from '../plugin.ts'
import { webhookSinkFactory } from './factory.ts'

export const webhookPlugin: SinkPlugin<WebhookSink> = {
  ...sinkConfig('webhook', 'WebhookSink', {
    required: ['url'],
    properties: {
      url: {
        type: 'string',
        format: 'uri',
        maxLength: 2000,
        pattern: HTTP_URL_PATTERN,
        description:
          'An http(s) URL without credentials. The SSRF guard refuses it (422) when its ' +
          'host is, or resolves to, an address that is not public (loopback, private, ' +
          'link-local and metadata, CGNAT, NAT64, 6to4, documentation, multicast, ' +
          'reserved...) unless allowlisted; a host that does not resolve yet is ' +
          'accepted. Every delivery connects only to an address the guard approved for ' +
          'that connection.',
      },
    },
  }),
  secretPaths: [],
  urlPaths: ['url'],
  signingSecrets: true,
  // the URL is the guard's (urlPaths); the rest is the schema's
  validate: () => [],
  create: (rt) => webhookSinkFactory(rt.http, rt.secrets, rt.webhookTimeoutMs),
}
