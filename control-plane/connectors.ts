/**
 * The connectors of subscriptions (desired state, restarts, offset resets, the runtime's status) and
 * their retry requests and test events: the part of the control plane between the subscriptions
 * (subscriptions.ts) and the rest (ControlPlane, service.ts). Every operation is checked against the
 * caller (visibility.ts, docs/tenancy.md).
 */
import type { Filter } from 'mongodb'
import { eventTypesOf } from '../schemas/topics.ts'
import { ConflictError, NotFoundError, RequestInvalidError } from './errors.ts'
import { bulkWriteBounded, changeToken, newId, page, upsertMany, type Page, type PageRequest } from './store.ts'
import type { ConnectorDoc, ConnectorStatus, DesiredState, OffsetReset, Principal } from './types.ts'
import { CONNECTORS_CHANGED, ControlPlaneSubscriptions } from './subscriptions.ts'
import { canChangeSubscription, isAdmin, subscriptionScope } from './visibility.ts'

export class ControlPlaneConnectors extends ControlPlaneSubscriptions {
  async listConnectors(p: Principal, req: PageRequest): Promise<Page<ConnectorDoc>> {
    let result: Page<ConnectorDoc>
    if (isAdmin(p)) result = await page(this.cols.connectors, {}, req)
    else if (p.scope === 'partner') result = await page(this.cols.connectors, { partnerId: p.organizationId! }, req)
    else {
      const subs = await this.cols.subscriptions
        .find(await subscriptionScope(this.cols, p), { projection: { _id: 1 } })
        .toArray()
      result = await page(this.cols.connectors, { _id: { $in: subs.map((s) => s._id) } }, req)
    }
    return { ...result, items: await this.withStatus(result.items) }
  }

  async getConnector(p: Principal, id: string): Promise<ConnectorDoc> {
    const sub = await this.getSubscription(p, id)
    const doc = (await this.cols.connectors.findOne({ _id: id })) ?? (await this.ensureConnector(sub))
    return (await this.withStatus([doc]))[0]!
  }

  /** The runtime's status lives in connector_status (one writer: the worker holding the connector). */
  private async withStatus(docs: ConnectorDoc[]): Promise<ConnectorDoc[]> {
    if (docs.length === 0) return docs
    const statuses = await this.cols.connectorStatus.find({ _id: { $in: docs.map((d) => d._id) } }).toArray()
    const byId = new Map(statuses.map(({ _id, ...status }) => [_id, status as ConnectorStatus]))
    return docs.map((d) => ({ ...d, status: byId.get(d._id) ?? d.status ?? null }))
  }

  private async changeConnector(
    p: Principal,
    id: string,
    update: { set: Partial<ConnectorDoc>; onlyIf?: Filter<ConnectorDoc> },
  ): Promise<ConnectorDoc> {
    const sub = await this.getSubscription(p, id)
    canChangeSubscription(p, sub)
    await this.getConnector(p, id)
    const updated = await this.cols.connectors.findOneAndUpdate(
      { _id: id, ...(update.onlyIf ?? {}) },
      { $set: { ...update.set, updatedAt: new Date() }, $inc: { generation: 1 } },
      { returnDocument: 'after' },
    )
    if (updated) await this.connectorsChanged()
    return updated ?? (await this.cols.connectors.findOne({ _id: id }))!
  }

  setDesiredState(p: Principal, id: string, state: DesiredState): Promise<ConnectorDoc> {
    // Setting the state it already has changes nothing (no generation bump).
    return this.changeConnector(p, id, { set: { desiredState: state }, onlyIf: { desiredState: { $ne: state } } })
  }

  restartConnector(p: Principal, id: string): Promise<ConnectorDoc> {
    return this.changeConnector(p, id, { set: { restartRequestedAt: new Date() } })
  }

  resetConnector(p: Principal, id: string, to: OffsetReset['to'], timestamp: Date | null): Promise<ConnectorDoc> {
    return this.changeConnector(p, id, {
      set: {
        offsetReset: {
          id: newId('rst'),
          to,
          timestamp: to === 'timestamp' ? timestamp : null,
          requestedAt: new Date(),
          requestedBy: p.keyId,
        },
      },
    })
  }

  /** For the sink runtime: connectors whose desired state changed after `since` (poll; no change streams). */
  connectorsChangedSince(since: Date, limit = 1000): Promise<ConnectorDoc[]> {
    return this.cols.connectors
      .find({ updatedAt: { $gt: since } })
      .sort({ updatedAt: 1 })
      .limit(limit)
      .toArray()
  }

  /**
   * For the sink runtime: a token that changes after every write of a connector (null: none was written
   * since the store began keeping it), read before connectorsChangedSince or a full read of the connectors.
   */
  connectorsChangeToken(): Promise<string | null> {
    return changeToken(this.cols.changes, CONNECTORS_CHANGED)
  }

  /** For the sink runtime: what a worker observes (status does not bump the generation). */
  async reportConnectorStatus(id: string, status: ConnectorStatus): Promise<void> {
    await this.cols.connectorStatus.replaceOne({ _id: id }, { ...status }, { upsert: true })
  }

  /**
   * Many status reports in a few commands (a sink worker reports the subscriptions it holds together);
   * `fresh`: most of them have no status yet (a worker's first reports of new subscriptions: one insert).
   */
  async reportConnectorStatuses(
    reports: ReadonlyArray<readonly [id: string, status: ConnectorStatus]>,
    fresh = false,
  ): Promise<void> {
    if (reports.length === 0) return
    if (fresh)
      return upsertMany(
        this.cols.connectorStatus,
        reports.map(([_id, status]) => ({ _id, ...status })),
      )
    await bulkWriteBounded(
      this.cols.connectorStatus,
      reports.map(([id, status]) => ({
        replaceOne: { filter: { _id: id }, replacement: { ...status }, upsert: true },
      })),
    )
  }

  // ---------------------------------------------------------------- deliveries

  /** The publisher whose events' deliveries a caller may see (undefined: all of them, for a partner or an admin). */
  deliveryPublisherScope(p: Principal): string | undefined {
    return p.scope === 'publisher' ? p.organizationId! : undefined
  }

  async requestRetry(p: Principal, subscriptionId: string, eventId: string | null) {
    const sub = await this.getSubscription(p, subscriptionId)
    canChangeSubscription(p, sub)
    const delivery = eventId === null ? null : await this.deliveries.get(subscriptionId, eventId)
    if (eventId !== null && !delivery) throw new NotFoundError('delivery', { eventId })
    if (delivery?.test)
      throw new ConflictError(
        'a test event is not retried: send another (POST /v1/subscriptions/{id}/test)',
        'eventId',
        {
          eventId,
        },
      )
    return this.deliveries.requestRetry({ subscriptionId, partnerId: sub.partnerId, eventId, requestedBy: p.keyId })
  }

  /**
   * A test event: an example record of one of the subscription's event types (the first when none is named), sent to
   * its sink by the worker holding it, grants aside (the example is no publisher's data), whether it is running,
   * paused or parked; its attempts go to the delivery log. Pending until a worker holds the subscription.
   */
  async requestTestEvent(p: Principal, subscriptionId: string, body: unknown) {
    const sub = await this.getSubscription(p, subscriptionId)
    canChangeSubscription(p, sub)
    const types = eventTypesOf(sub.eventTypes)
    const given = body === undefined || body === null ? {} : body
    if (typeof given !== 'object' || Array.isArray(given))
      throw new RequestInvalidError([{ field: '(body)', message: 'must be an object (or empty)' }])
    const { eventType = types[0], ...rest } = given as { eventType?: unknown }
    const unknownFields = Object.keys(rest)
    if (unknownFields.length > 0)
      throw new RequestInvalidError(
        unknownFields.map((f) => ({ field: f, message: 'is not a field of a test request' })),
      )
    if (typeof eventType !== 'string' || !types.includes(eventType))
      throw new RequestInvalidError([
        { field: 'eventType', message: `must be one of the subscription's event types: ${types.join(', ')}` },
      ])
    return this.deliveries.requestTest({ subscriptionId, partnerId: sub.partnerId, eventType, requestedBy: p.keyId })
  }

  async getRetryRequest(p: Principal, subscriptionId: string, id: string) {
    const sub = await this.getSubscription(p, subscriptionId)
    const req = await this.deliveries.getRetryRequest(sub._id, id)
    if (!req) throw new NotFoundError('retry request', { id })
    // the outcome may quote the partner's endpoint (a test's error): withheld from a publisher, as a connector's
    // lastError is
    return isAdmin(p) || p.organizationId === sub.partnerId ? req : { ...req, outcome: null }
  }
}
