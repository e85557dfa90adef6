/**
 * The /connectors part of the management API document: each subscription's sink connector, its
 * desired state, the status its worker reports (lag, freshness, snapshot) and offset resets; spread
 * into document.ts.
 */
import { body, closed, dateTime, id, nullableDateTime, object, ok, operationsOf, pathId, ref } from './parts.ts'

const CONN = pathId('connectorId', 'sub', 'connector (the id of its subscription)')
const connectors = operationsOf('connectors')

export const connectorPaths = {
  ...connectors.collection('Connector', CONN, {
    list: { summary: 'List connectors' },
    get: { summary: 'Get a connector: desired state and what the runtime reports' },
  }),
  '/connectors/{connectorId}/status': {
    get: connectors.one(
      'Connector status: state, worker, positions, lag, last error',
      'getConnectorStatus',
      CONN,
      'The status.',
      'ConnectorStatusView',
    ),
  },
  ...connectors.desiredStates(
    '/connectors/{connectorId}',
    CONN,
    'connector',
    ok('Desired state recorded; running workers apply it without a restart.', ref('Connector')),
    [
      ['pause', 'pauseConnector', 'Stops delivering, keeps the position. Survives restarts.'],
      ['resume', 'resumeConnector', 'Delivers again from the kept position.'],
      ['stop', 'stopConnector', "Stops and releases the connector's resources. Survives restarts."],
    ],
  ),
  '/connectors/{connectorId}/restart': {
    post: connectors.mutation('Restart the connector', 'restartConnector', [CONN], {
      '202': ok('Restart requested.', ref('Connector')),
    }),
  },
  '/connectors/{connectorId}/offsets/reset': {
    post: connectors.mutation(
      "Reset the position: earliest, latest, a timestamp (replay), or snapshot (each key's current state, then live)",
      'resetConnectorOffsets',
      [CONN],
      { '202': ok('Reset requested.', ref('Connector')) },
      { requestBody: body(ref('OffsetResetRequest'), { to: 'timestamp', timestamp: '2026-01-01T00:00:00Z' }) },
    ),
  },
}

export const connectorSchemas = {
  Connector: object(['id', 'subscriptionId', 'partnerId', 'desiredState', 'generation', 'status'], {
    id: id('sub'),
    subscriptionId: id('sub'),
    partnerId: id('org'),
    desiredState: { type: 'string', enum: ['running', 'paused', 'stopped'] },
    generation: { type: 'integer' },
    restartRequestedAt: nullableDateTime,
    offsetReset: { type: ['object', 'null'] },
    status: ref('ConnectorStatusView'),
    updatedAt: dateTime,
  }),
  ConnectorStatusView: object(
    ['state', 'desiredState', 'workerId', 'positions', 'lag', 'lastError', 'pendingChanges'],
    {
      state: {
        type: 'string',
        description:
          'What the runtime reports: running, paused, stopped, failed, snapshotting; ' +
          'unassigned when no worker reported.',
      },
      desiredState: { type: 'string', enum: ['running', 'paused', 'stopped'] },
      workerId: { type: ['string', 'null'] },
      positions: { type: 'array', items: { type: 'object' } },
      lag: { type: ['integer', 'null'] },
      freshnessSeconds: {
        type: ['number', 'null'],
        description:
          'Age in seconds of the oldest record not yet delivered to the subscription: 0 when caught up, ' +
          'growing with the wall clock while the partner is paused, parked or down (null: not reported yet).',
      },
      freshnessBreachedSince: {
        ...nullableDateTime,
        description:
          "Since when freshnessSeconds is above the subscription's deliveryPolicy.freshnessSloSeconds " +
          '(null: within it, or no objective).',
      },
      lastError: { type: ['object', 'null'] },
      snapshot: {
        type: ['object', 'null'],
        description:
          'The current or last snapshot bootstrap (startFrom snapshot, or an offset ' +
          'reset to snapshot): scanning (done/total records read), delivering ' +
          '(done/total keys), live (complete).',
        properties: {
          id: { type: 'string' },
          phase: { type: 'string', enum: ['scanning', 'delivering', 'live'] },
          done: { type: 'integer' },
          total: { type: 'integer' },
          startedAt: dateTime,
          completedAt: nullableDateTime,
        },
      },
      reportedAt: nullableDateTime,
      pendingChanges: { type: 'boolean', description: 'A change (state, restart, reset) no worker has applied yet.' },
      appliedResetId: {
        type: ['string', 'null'],
        description:
          'Id of the last offset reset (replay) a worker has applied: compare with ' +
          'offsetReset.id of the connector to see a replay take effect.',
      },
    },
  ),
  OffsetResetRequest: {
    ...closed(['to'], {
      to: {
        type: 'string',
        enum: ['earliest', 'latest', 'timestamp', 'snapshot'],
        description: 'snapshot: the latest record of every key (below the current end), then every change after it.',
      },
      timestamp: { ...dateTime, description: 'Required when `to` is timestamp, and only then.' },
    }),
    // in the schema, so that a client (and a fuzzer) reading it knows: the handler refused the first with a 422 the
    // document did not foretell, and ignored a timestamp sent with another `to`
    if: { properties: { to: { const: 'timestamp' } } },
    then: { required: ['timestamp'] },
    else: { properties: { timestamp: false } },
  },
}
