/**
 * /v1/sources: source connectors (csv-drop, mongodb) declared through the API, their config, their
 * desired state (start, pause, resume, stop) and the status the source runtime reports. Admin keys
 * see every source; a publisher key its own (others' are 404); partner keys none.
 */
import type { RequestHandler, Router } from 'express'
import type { DesiredState } from '../../control-plane/index.ts'
import type { SourceRegistry, SourceWithStatus } from '../../control-plane/sources.ts'
import { SOURCE_PLUGINS } from '../../producers/plugins.ts'
import { pageRequest, pageView, type Handler } from './http.ts'

/** The config without its secret settings; `secretsSet` names those that are set. */
function configView(s: SourceWithStatus) {
  const out: Record<string, unknown> = { ...s.config }
  const set: string[] = []
  for (const key of SOURCE_PLUGINS[s.kind].secretPaths) {
    if (out[key] !== undefined) set.push(key)
    delete out[key]
  }
  return set.length > 0 ? { ...out, secretsSet: set } : out
}

export const sourceStatusView = (s: SourceWithStatus) => ({
  id: s._id,
  name: s.name,
  state: s.status?.state ?? (s.desiredState === 'stopped' ? 'stopped' : 'unassigned'),
  desiredState: s.desiredState,
  workerId: s.status?.workerId ?? null,
  position: s.status?.position ?? null,
  counts: s.status?.counts ?? { produced: 0, batches: 0, failedBatches: 0 },
  lastError: s.status?.lastError ?? null,
  reportedAt: s.status?.reportedAt ?? null,
  pendingChanges:
    (s.status?.appliedGeneration ?? 0) < s.generation && !(s.desiredState === 'stopped' && s.status === null),
})

export const sourceView = (s: SourceWithStatus) => ({
  id: s._id,
  name: s.name,
  kind: s.kind,
  publisherId: s.publisherId,
  origin: s.origin,
  config: configView(s),
  desiredState: s.desiredState,
  generation: s.generation,
  status: sourceStatusView(s),
  createdAt: s.createdAt,
  updatedAt: s.updatedAt,
})

/**
 * Mounts the routes on the management router (beside the others, so the request validator and the route table see
 * them).
 */
export function mountSourceRoutes(
  r: Router,
  sources: SourceRegistry,
  h: (handler: Handler) => RequestHandler,
  create: (handler: Handler) => RequestHandler,
): void {
  r.get(
    '/sources',
    h(async ({ principal, query }) => ({
      status: 200,
      body: pageView(await sources.list(principal, { publisherId: query.publisherId }, pageRequest(query)), sourceView),
    })),
  )
  r.post(
    '/sources',
    create(async ({ principal, body }) => ({ status: 201, body: sourceView(await sources.create(principal, body)) })),
  )
  r.get(
    '/sources/:sourceId',
    h(async ({ principal, params }) => ({
      status: 200,
      body: sourceView(await sources.get(principal, params.sourceId!)),
    })),
  )
  r.patch(
    '/sources/:sourceId',
    h(async ({ principal, params, body }) => ({
      status: 200,
      body: sourceView(await sources.update(principal, params.sourceId!, body)),
    })),
  )
  r.delete(
    '/sources/:sourceId',
    h(async ({ principal, params }) => {
      await sources.delete(principal, params.sourceId!)
      return { status: 204 }
    }),
  )
  r.get(
    '/sources/:sourceId/status',
    h(async ({ principal, params }) => ({
      status: 200,
      body: sourceStatusView(await sources.get(principal, params.sourceId!)),
    })),
  )
  const setState = (state: DesiredState) =>
    h(async ({ principal, params }) => ({
      status: 202,
      body: sourceView(await sources.setDesiredState(principal, params.sourceId!, state)),
    }))
  r.put('/sources/:sourceId/start', setState('running'))
  r.put('/sources/:sourceId/pause', setState('paused'))
  r.put('/sources/:sourceId/resume', setState('running'))
  r.put('/sources/:sourceId/stop', setState('stopped'))
}
