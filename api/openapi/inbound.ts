/**
 * The inbound-connector part of the management API document (docs/deals.md): a publisher's CRM
 * deciding on deals, signed like Standard Webhooks; spread into document.ts beside deals.ts.
 */
import { PUBLISHER_DECISIONS } from '../../control-plane/deals/index.ts'
import { MAPPING_PATTERN } from '../../consumers/rest/mapping.ts'
import {
  body,
  closed,
  dateTime,
  displayName,
  id,
  object,
  ok,
  operationsOf,
  pathId,
  problems,
  ref,
  rotation,
} from './parts.ts'

const INBOUND = pathId('inboundId', 'inb', 'inbound connector')
const orgId = id('org')
const inbound = operationsOf('inbound')

export const inboundPaths = {
  ...inbound.collection('InboundConnector', INBOUND, {
    list: { summary: 'List inbound connectors (publisher)' },
    create: {
      summary: "Create an inbound connector for the publisher's CRM (its signing secret is shown once)",
      answer: 'Created, with `secret` (once).',
      example: {
        name: 'salesforce',
        mapping: '{ "dealId": Deal_Registration_Id__c, "action": $lowercase(Decision__c), "reason": Comment__c }',
      },
    },
    get: { summary: 'Get an inbound connector', answer: 'The connector (never its secret).' },
    update: {
      summary: "Change an inbound connector's name, mapping or timestamp tolerance (its secret and URL stay)",
      example: { mapping: '{ "dealId": Deal_Id__c, "action": $lowercase(Status__c), "reason": Comment__c }' },
    },
    remove: { summary: 'Delete an inbound connector', answer: 'Deleted: its calls are 404 from now on.' },
  }),
  '/inbound-connectors/{inboundId}/secret/rotate': {
    post: rotation(
      'Rotate the signing secret: the previous one is still accepted during the overlap (0: refused at once)',
      'inbound',
      'rotateInboundSecret',
      INBOUND,
      ok('The connector with its new `secret` (shown only now).', ref('InboundConnector')),
      86400,
    ),
  },
  '/inbound/{inboundId}': {
    post: {
      summary: "A decision from the publisher's CRM (signed; no API key)",
      tags: ['inbound'],
      operationId: 'receiveInbound',
      security: [],
      description:
        "Signed as Standard Webhooks sign: `webhook-id`, `webhook-timestamp` (seconds, within the connector's " +
        'tolerance) and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>">` keyed with ' +
        "the connector's `whsec_` secret. A missing or wrong signature is a 401 and changes nothing. " +
        "The connector's JSONata mapping turns the body into `{ dealId, action, reason }` (action: " +
        PUBLISHER_DECISIONS.join(', ') +
        '). The same `webhook-id` again answers the first answer (`replayed: true`) and changes nothing; ' +
        'the same decision under another id answers `applied: false`. ' +
        'A deal the publisher does not hold is a 404 naming `dealId`.',
      parameters: [
        INBOUND,
        ...['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => ({
          name,
          in: 'header',
          required: true,
          schema: { type: 'string' },
        })),
      ],
      requestBody: body(
        { type: 'object', description: "The CRM's own payload." },
        { dealId: '0193f5a2-7c1e-7b8a-9c3d-2e4f5a6b7c8d', action: 'approve' },
      ),
      responses: {
        '200': ok('Acted on (or already done).', ref('InboundResult')),
        ...problems(400, 401, 404, 409, 413, 415, 422, 503),
      },
    },
  },
}

const connectorName = displayName(100)
const mapping = {
  type: 'string',
  minLength: 1,
  maxLength: 10000,
  pattern: MAPPING_PATTERN,
  description: "JSONata from the CRM's payload to { dealId, action, reason } (default: the payload has those fields).",
}
const toleranceSeconds = {
  type: 'integer',
  minimum: 10,
  maximum: 3600,
  description: 'How far webhook-timestamp may be from now.',
}

export const inboundSchemas = {
  InboundConnectorCreate: closed(['name'], {
    name: connectorName,
    publisherId: { ...orgId, description: 'Required with an admin key.' },
    mapping,
    toleranceSeconds: { ...toleranceSeconds, default: 300 },
  }),
  InboundConnectorPatch: {
    ...closed([], { name: connectorName, mapping, toleranceSeconds }),
    minProperties: 1,
  },
  InboundConnector: object(['id', 'publisherId', 'name', 'mapping', 'toleranceSeconds', 'url', 'createdAt'], {
    id: id('inb'),
    publisherId: orgId,
    name: { type: 'string' },
    mapping: { type: 'string' },
    toleranceSeconds: { type: 'integer' },
    url: { type: 'string', description: 'Where the CRM posts: /v1/inbound/{id}.' },
    secret: {
      type: 'string',
      description: "The whsec_ signing secret: in the create's and the rotation's answer only.",
    },
    previousSecrets: {
      type: 'array',
      description: 'Secrets rotated out that are still accepted, each until its expiresAt.',
      items: closed(['expiresAt'], { expiresAt: dateTime }),
    },
    createdAt: dateTime,
    updatedAt: dateTime,
  }),
  InboundResult: object(['dealId', 'action', 'state', 'applied'], {
    dealId: { type: 'string' },
    action: { type: 'string' },
    state: { type: 'string' },
    applied: { type: 'boolean' },
    replayed: { type: 'boolean' },
  }),
}
