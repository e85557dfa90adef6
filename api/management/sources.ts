/**
 * /v1/sources: source connectors (csv-drop, mongodb) declared through the API, their config, their
 * desired state (start, pause, resume, stop) and the status the source runtime reports. Admin keys
 * see every source; a publisher key its own (others' are 404); partner keys none.
 */
import type { Router } from 'express'
import type { DesiredState } from '../../control-plane/index.ts'
import type { SourceRegistry, SourceWithStatus } from '../../control-plane/sources.ts'
import { SOURCE_PLUGINS } from '../../producers/plugins.ts'
import { collection, type Mounts } from './collection.ts'

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
export function mountSourceRoutes(r: Router, sources: SourceRegistry, mounts: Mounts): void {
  const routes = collection(r, mounts, '/sources', 'sourceId')
  routes.list(
    ({ principal, query }, page) => sources.list(principal, { publisherId: query.publisherId }, page),
    sourceView,
  )
  routes.create(({ principal, body }) => sources.create(principal, body), sourceView)
  routes.get(({ principal, id }) => sources.get(principal, id), sourceView)
  routes.update(({ principal, id, body }) => sources.update(principal, id, body), sourceView)
  routes.remove(({ principal, id }) => sources.delete(principal, id))
  routes.get(({ principal, id }) => sources.get(principal, id), sourceStatusView, '/status')
  const setState = (part: string, state: DesiredState) =>
    routes.act('put', part, ({ principal, id }) => sources.setDesiredState(principal, id, state), sourceView, {
      status: 202,
    })
  setState('/start', 'running')
  setState('/pause', 'paused')
  setState('/resume', 'running')
  setState('/stop', 'stopped')
}
