/**
 * Decisions coming back from a publisher's CRM (docs/deals.md): an inbound connector is a
 * publisher-owned record with a signing secret and a JSONata mapping; its CRM calls
 * `POST /v1/inbound/{id}` with a payload of its own shape, signed as Standard Webhooks sign
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`).
 *
 * - A missing or wrong signature, or a timestamp outside the tolerance, is a 401 and changes nothing.
 * - The mapping turns the payload into `{ dealId, action, reason? }` (action: review, approve, reject,
 *   return, won, lost). It runs in the mapping sandbox (consumers/rest/mapping-sandbox.ts), never on
 *   the API's event loop.
 * - A replayed call (the same `webhook-id`) gets the first answer again and changes nothing; a second
 *   call with another id for a step the deal already took is answered `applied: false`.
 * - A deal the connector's publisher does not hold is a 404 naming `dealId`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { fingerprint, IdempotencyStore } from '../../common/idempotency.ts'
import type { SecretBox } from '../../common/secret-box.ts'
import { generateWebhookSecret, rotatedOut } from '../../common/secret-box.ts'
import type { MappingSandbox } from '../../consumers/rest/mapping-sandbox.ts'
import { mappingProblem } from '../../consumers/rest/mapping.ts'
import { secretKey } from '../../consumers/webhook/signature.ts'
import { ConflictError, ForbiddenError, NotFoundError, RequestInvalidError } from '../errors.ts'
import { newId, page, type Collections, type Page, type PageRequest } from '../store.ts'
import type { Principal } from '../types.ts'
import { isAdmin } from '../visibility.ts'
import { PUBLISHER_DECISIONS, TransitionConflictError, type DealAction } from './machine.ts'
import type { Deals } from './service.ts'
import type { InboundConnectorDoc } from './types.ts'

/** A connector with its signing secret, which only the answers of its create and of a rotation show. */
export interface InboundConnectorWithSecret {
  connector: InboundConnectorDoc
  secret: string
}

export interface InboundAnswer {
  status: number
  body: Record<string, unknown>
}

const DEFAULT_MAPPING = '{ "dealId": dealId, "action": action, "reason": reason }'
const DEFAULT_TOLERANCE_SECONDS = 300
const REPLAY_WINDOW_MS = 7 * 86_400_000

/** A JSONata mapping that does not compile is refused, naming the field and where it fails. */
function checkMapping(mapping: string): void {
  const bad = mappingProblem(mapping)
  if (bad)
    throw new RequestInvalidError([
      { field: 'mapping', message: bad.message, ...(bad.position !== undefined ? { position: bad.position } : {}) },
    ])
}

const problem = (status: number, title: string, detail: string, field?: string): InboundAnswer => ({
  status,
  body: { type: 'about:blank', title, status, detail, ...(field ? { errors: [{ field, message: detail }] } : {}) },
})

export class InboundConnectors {
  private readonly seen: IdempotencyStore

  constructor(
    private readonly cols: Collections,
    private readonly deals: Deals,
    private readonly box: SecretBox,
    private readonly sandbox: () => MappingSandbox,
  ) {
    // a replayed message answers what the first answered (kept a week; the sweep removes older ones)
    this.seen = new IdempotencyStore(cols.inboundMessages, { windowMs: REPLAY_WINDOW_MS })
  }

  /**
   * The platform's sweep (no TTL indexes in the store): removes the records of messages older than the replay
   * window, and the rotated-out secrets whose overlap has ended.
   */
  async sweep(now = new Date()): Promise<number> {
    const swept = await this.seen.sweep(now)
    for await (const c of this.cols.inboundConnectors.find({ 'previousSecrets.expiresAt': { $lte: now } })) {
      const kept = (c.previousSecrets ?? []).filter((p) => p.expiresAt > now)
      // only if unchanged since read: a rotation in between keeps what it wrote
      await this.cols.inboundConnectors.updateOne({ _id: c._id, secret: c.secret }, { $set: { previousSecrets: kept } })
    }
    return swept
  }

  /**
   * Seals every connector's secrets (the current one and those in their overlap) with the secret box's current
   * key (POST /v1/maintenance/reencrypt-secrets, after a key rotation); how many connectors changed.
   */
  async resealSecrets(): Promise<number> {
    const stale = (sealed: string) => this.box.keyIdOf(sealed) !== this.box.currentKeyId
    let changed = 0
    for await (const c of this.cols.inboundConnectors.find({})) {
      const previous = c.previousSecrets ?? []
      if (!stale(c.secret) && !previous.some((p) => stale(p.sealed))) continue
      // only if unchanged since read: a concurrent rotation wins (and seals anew)
      const r = await this.cols.inboundConnectors.updateOne(
        { _id: c._id, secret: c.secret },
        {
          $set: {
            secret: this.box.reseal(c.secret),
            previousSecrets: previous.map((p) => ({ ...p, sealed: this.box.reseal(p.sealed) })),
          },
        },
      )
      changed += r.modifiedCount
    }
    return changed
  }

  private scope(p: Principal) {
    return isAdmin(p) ? {} : { publisherId: p.organizationId! }
  }

  async create(
    p: Principal,
    input: { name: string; mapping?: string; toleranceSeconds?: number; publisherId?: string },
  ): Promise<InboundConnectorWithSecret> {
    if (p.scope === 'partner')
      throw new ForbiddenError('inbound connectors belong to publishers (their CRM decides on deals)')
    const publisherId = isAdmin(p) ? input.publisherId : p.organizationId!
    // a publisher creates for itself: naming another organization is refused, not silently replaced
    if (!isAdmin(p) && input.publisherId !== undefined && input.publisherId !== publisherId)
      throw new RequestInvalidError([{ field: 'publisherId', message: "is the key's own organization or absent" }])
    if (!publisherId)
      throw new RequestInvalidError([{ field: 'publisherId', message: 'is required with an admin key' }])
    const mapping = input.mapping ?? DEFAULT_MAPPING
    checkMapping(mapping)
    const secret = generateWebhookSecret()
    const now = new Date()
    const connector: InboundConnectorDoc = {
      _id: newId('inb'),
      publisherId,
      name: input.name,
      secret: this.box.seal(secret),
      mapping,
      toleranceSeconds: input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS,
      createdAt: now,
      updatedAt: now,
    }
    await this.cols.inboundConnectors.insertOne(connector)
    return { connector, secret }
  }

  list(p: Principal, req: PageRequest): Promise<Page<InboundConnectorDoc>> {
    return page(this.cols.inboundConnectors, this.scope(p), req)
  }

  async get(p: Principal, id: string): Promise<InboundConnectorDoc> {
    const c = await this.cols.inboundConnectors.findOne({ $and: [{ _id: id }, this.scope(p)] })
    if (!c) throw new NotFoundError('inbound connector', { connectorId: id })
    return c
  }

  /** Changes the name, the mapping or the tolerance; the secret and the URL stay. */
  async update(
    p: Principal,
    id: string,
    input: { name?: string; mapping?: string; toleranceSeconds?: number },
  ): Promise<InboundConnectorDoc> {
    const c = await this.get(p, id)
    if (input.mapping !== undefined) checkMapping(input.mapping)
    const set: Partial<InboundConnectorDoc> = { updatedAt: new Date() }
    if (input.name !== undefined) set.name = input.name
    if (input.mapping !== undefined) set.mapping = input.mapping
    if (input.toleranceSeconds !== undefined) set.toleranceSeconds = input.toleranceSeconds
    const updated = await this.cols.inboundConnectors.findOneAndUpdate(
      { _id: c._id },
      { $set: set },
      { returnDocument: 'after' },
    )
    if (!updated) throw new NotFoundError('inbound connector', { connectorId: id })
    return updated
  }

  /**
   * A new signing secret now (shown once); the current one, and any earlier one still in its overlap, stay
   * accepted for `overlapSeconds` at most (0: refused from now on, e.g. after a leak). Two rotations at once:
   * one wins, the other is a 409.
   */
  async rotateSecret(p: Principal, id: string, overlapSeconds: number): Promise<InboundConnectorWithSecret> {
    const c = await this.get(p, id)
    const now = new Date()
    const kept = rotatedOut([{ sealed: c.secret, expiresAt: null }, ...(c.previousSecrets ?? [])], now, overlapSeconds)
    const secret = generateWebhookSecret()
    const updated = await this.cols.inboundConnectors.findOneAndUpdate(
      { _id: c._id, secret: c.secret },
      { $set: { secret: this.box.seal(secret), previousSecrets: kept, updatedAt: now } },
      { returnDocument: 'after' },
    )
    if (!updated) throw new ConflictError('the connector changed concurrently (another rotation); retry')
    return { connector: updated, secret }
  }

  async delete(p: Principal, id: string): Promise<void> {
    const c = await this.get(p, id)
    await this.cols.inboundConnectors.deleteOne({ _id: c._id })
  }

  /** Is the call signed with the connector's secret, within the tolerance? */
  private verified(
    c: InboundConnectorDoc,
    headers: Record<string, string | undefined>,
    raw: Buffer,
    now: number,
  ): string | null {
    const id = headers['webhook-id']
    const ts = headers['webhook-timestamp']
    const sig = headers['webhook-signature']
    if (!id || !ts || !sig) return 'webhook-id, webhook-timestamp and webhook-signature are required'
    if (!/^\d{1,12}$/.test(ts) || Math.abs(now / 1000 - Number(ts)) > c.toleranceSeconds)
      return 'webhook-timestamp is outside the tolerance'
    // the current secret, and those rotated out whose overlap has not ended
    const sealed = [
      c.secret,
      ...(c.previousSecrets ?? []).filter((s) => s.expiresAt.getTime() > now).map((s) => s.sealed),
    ]
    const given = sig.split(' ').flatMap((part) => {
      const [version, b64] = part.split(',', 2)
      return version === 'v1' && b64 ? [Buffer.from(b64, 'base64')] : []
    })
    for (const secret of sealed) {
      const key = secretKey(this.box.open(secret))
      if (typeof key === 'string') continue
      const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(raw).digest()
      if (given.some((g) => g.length === expected.length && timingSafeEqual(g, expected))) return null
    }
    return 'webhook-signature does not match'
  }

  /** One call of the CRM: verified, deduplicated, mapped, acted on. Never throws for the caller's faults. */
  async receive(
    connectorId: string,
    headers: Record<string, string | undefined>,
    raw: Buffer,
    now = Date.now(),
  ): Promise<InboundAnswer> {
    const c = await this.cols.inboundConnectors.findOne({ _id: connectorId })
    if (!c) return problem(404, 'Not Found', `inbound connector ${connectorId} not found`)
    const refused = this.verified(c, headers, raw, now)
    if (refused) return problem(401, 'Unauthorized', refused)
    const messageId = headers['webhook-id']!
    const claimed = await this.seen.claim(`${c._id}:${messageId}`, fingerprint(raw))
    if (claimed.kind === 'replay')
      return {
        status: claimed.response.status,
        body: { ...(JSON.parse(claimed.response.body) as Record<string, unknown>), replayed: true },
      }
    if (claimed.kind === 'reused')
      return problem(422, 'Unprocessable Content', 'this webhook-id was sent before with another body', 'webhook-id')
    if (claimed.kind === 'in-progress')
      return problem(409, 'Conflict', 'a call with this webhook-id is still being processed', 'webhook-id')
    let answer: InboundAnswer
    try {
      answer = await this.act(c, raw, messageId)
    } catch (err) {
      await this.seen.release(claimed.claim).catch(() => undefined)
      throw err
    }
    // only an answer that changed nothing because of the call itself is worth replaying; others may retry
    if (answer.status < 500)
      await this.seen.complete(claimed.claim, { status: answer.status, headers: {}, body: JSON.stringify(answer.body) })
    else await this.seen.release(claimed.claim)
    return answer
  }

  private async act(c: InboundConnectorDoc, raw: Buffer, messageId: string): Promise<InboundAnswer> {
    let payload: unknown
    try {
      payload = JSON.parse(raw.toString('utf8'))
    } catch {
      return problem(400, 'Bad Request', 'the body is not valid JSON', 'body')
    }
    let decision: Record<string, unknown>
    try {
      decision = JSON.parse(await this.sandbox().map(c._id, c.mapping, JSON.stringify(payload), messageId)) as Record<
        string,
        unknown
      >
    } catch (err) {
      return problem(
        422,
        'Unprocessable Content',
        `the connector's mapping failed: ${err instanceof Error ? err.message : String(err)}`,
        'mapping',
      )
    }
    if (decision === null || typeof decision !== 'object')
      return problem(
        422,
        'Unprocessable Content',
        'the mapping must give an object { dealId, action, reason }',
        'mapping',
      )
    const { dealId, action, reason } = decision
    if (typeof dealId !== 'string' || dealId === '')
      return problem(422, 'Unprocessable Content', 'the mapped dealId is missing or not a string', 'dealId')
    if (typeof action !== 'string' || !(PUBLISHER_DECISIONS as readonly string[]).includes(action)) {
      return problem(
        422,
        'Unprocessable Content',
        `the mapped action must be one of ${PUBLISHER_DECISIONS.join(', ')}`,
        'action',
      )
    }
    const notFound = problem(404, 'Not Found', `deal ${dealId} not found`, 'dealId')
    const origin = {
      actor: 'publisher' as const,
      organizationId: c.publisherId,
      via: 'inbound' as const,
      ref: `${c._id}:${messageId}`,
    }
    try {
      // only the connector's publisher's deals: another's (or none) is a 404, as if it did not exist
      const body = { ...(typeof reason === 'string' ? { reason } : {}), manufacturerId: c.publisherId }
      const after = await this.deals.decide(dealId, action as DealAction, origin, 'publisher', body)
      if (!after) return notFound
      return { status: 200, body: { dealId, action, state: after.state, applied: true } }
    } catch (err) {
      if (err instanceof NotFoundError) return notFound
      if (!(err instanceof TransitionConflictError)) throw err
      // the same decision sent again under another message id: the deal already took it
      const last = (await this.deals.store.history(dealId)).at(-1)
      if (last?.action === action)
        return { status: 200, body: { dealId, action, state: err.currentState, applied: false } }
      return {
        status: 409,
        body: {
          ...problem(409, 'Conflict', err.message, 'action').body,
          currentState: err.currentState,
          allowedActions: err.allowed,
        },
      }
    }
  }
}
