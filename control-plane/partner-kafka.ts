/**
 * Kafka-native partner access (docs/partner-topics.md): each partner's SCRAM user on the cluster and
 * the ACLs that let it read its own topics (those of its kafka-topic subscriptions still covered by an
 * accepted grant) and use consumer groups under its own prefix, nothing else.
 *
 * The store is the truth; the cluster is made to match it by `reconcile` (per partner, after every
 * change that can alter its access: a kafka-topic subscription created or deleted, a grant accepted,
 * changed or revoked, credentials issued or revoked) and `reconcileAll` (periodically, which also
 * heals a change whose reconcile failed while Kafka was unreachable). Reconciling reads the
 * principal's ACLs and creates what is missing and deletes what is extra, so it is idempotent and
 * safe to run from several processes.
 *
 * Names, for a partner with slug `acme` and the prefix `partner.` (kafka.partners.topicPrefix):
 * user `partner.acme`, topics `partner.acme.<name>`, consumer groups `partner.acme.*`. Slugs hold no
 * dot, so one partner's prefix never covers another's names.
 */
import crypto from 'node:crypto'
import {
  AclOperationTypes,
  AclPermissionTypes,
  AclResourceTypes,
  ResourcePatternTypes,
  type AclEntry,
  type Admin,
} from '../common/kafka/index.ts'
import type { PartnerKafkaAccess } from '../config/index.ts'
import type { Logger } from '../common/logger.ts'
import { RetriableError } from '../common/errors.ts'
import { keySubject, valueSubject } from '../schemas/topics.ts'
import { grantAccepts } from './entitlements.ts'
import { ConflictError, NotFoundError } from './errors.ts'
import type { Collections } from './store.ts'
import type { PartnerKafkaUserDoc } from './types.ts'

/** The two calls on SCRAM users the platform needs (common/kafka/scram.ts KafkaScramAdmin). */
export interface ScramUsers {
  upsert(user: string, password: string): Promise<void>
  delete(user: string): Promise<boolean>
}

export interface PartnerKafkaOptions {
  cols: Collections
  access: PartnerKafkaAccess
  /** Connected Kafka admin client of the platform (ACLs, topic deletion). */
  admin: Admin
  scram: ScramUsers
  logger: Logger
  /** The registry URL partners' clients use (schema.registry.url); known once the registry started. */
  registryUrl: () => string
}

export interface IssuedCredentials {
  username: string
  /** Shown once; the platform keeps only a check of it. */
  password: string
  saslMechanism: 'SCRAM-SHA-512'
  rotated: boolean
  issuedAt: Date
}

export interface PartnerTopicView {
  topic: string
  subscriptionId: string
  sourceTopic: string
  eventTypes: string[]
  /** False while no accepted grant covers the subscription's event types (the partner's ACL is removed). */
  readable: boolean
  valueSubject: string
  keySubject: string
}

export interface KafkaConnectionSettings {
  bootstrapServers: string[]
  securityProtocol: 'SASL_SSL' | 'SASL_PLAINTEXT'
  saslMechanism: 'SCRAM-SHA-512'
  /** Null until credentials are issued (POST .../kafka-access/credentials). */
  username: string | null
  credentialsIssuedAt: Date | null
  consumerGroupPrefix: string
  topics: PartnerTopicView[]
  schemaRegistry: { url: string; basicAuth: string }
}

const READ_OPS = [AclOperationTypes.READ, AclOperationTypes.DESCRIBE]

/** One ACL binding as this module compares them. */
interface Binding {
  resourceType: number
  resourceName: string
  resourcePatternType: number
  operation: number
}
const bindingKey = (b: Binding) => `${b.resourceType}|${b.resourcePatternType}|${b.resourceName}|${b.operation}`

/** The user name, topic and group prefix of a partner (by slug). */
export function partnerNames(prefix: string, slug: string): { username: string; topicPrefix: string } {
  return { username: `${prefix}${slug}`, topicPrefix: `${prefix}${slug}.` }
}

/** A partner topic's name part: Kafka's topic characters, no leading dot, at most 200 characters. */
export const PARTNER_TOPIC_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/

function scrypt(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    crypto.scrypt(password, salt, 32, (err, key) => (err ? reject(err) : resolve(key))),
  )
}

export class PartnerKafka {
  readonly #o: PartnerKafkaOptions
  /** Verified (username, password) digests → partner id, for a minute: the registry checks every request. */
  readonly #verified = new Map<string, { partnerId: string; until: number }>()

  constructor(options: PartnerKafkaOptions) {
    this.#o = options
  }

  get access(): PartnerKafkaAccess {
    return this.#o.access
  }

  async #partner(partnerId: string): Promise<{ slug: string }> {
    const org = await this.#o.cols.organizations.findOne(
      { _id: partnerId, kind: 'partner' },
      { projection: { slug: 1 } },
    )
    if (!org) throw new NotFoundError('partner', { partnerId })
    return org
  }

  /** Creates the partner's Kafka user, or gives it a new password (the old one stops working at once). */
  async issueCredentials(partnerId: string): Promise<IssuedCredentials> {
    const { slug } = await this.#partner(partnerId)
    const { username } = partnerNames(this.#o.access.topicPrefix, slug)
    const password = `dkp_${crypto.randomBytes(24).toString('base64url')}`
    // Kafka first: a password stored here but unknown to the cluster would be a credential that fails.
    await this.#kafka('set the SCRAM credential', () => this.#o.scram.upsert(username, password))
    const salt = crypto.randomBytes(16)
    const check = { salt: salt.toString('base64'), hash: (await scrypt(password, salt)).toString('base64') }
    const now = new Date()
    const before = await this.#o.cols.partnerKafkaUsers.findOneAndUpdate(
      { _id: partnerId },
      {
        $set: { username, mechanism: 'SCRAM-SHA-512', check, rotatedAt: now },
        $setOnInsert: { createdAt: now },
        $inc: { version: 1 },
      },
      { upsert: true, returnDocument: 'before' },
    )
    this.#forget(username)
    await this.reconcile(partnerId)
    return { username, password, saslMechanism: 'SCRAM-SHA-512', rotated: before !== null, issuedAt: now }
  }

  /** Removes the partner's Kafka user and every ACL it had; false when it had none. */
  async revokeCredentials(partnerId: string): Promise<boolean> {
    const user = await this.#o.cols.partnerKafkaUsers.findOne({ _id: partnerId })
    if (!user) return false
    await this.#kafka('delete the SCRAM credential', () => this.#o.scram.delete(user.username))
    await this.#applyAcls(user.username, [])
    await this.#o.cols.partnerKafkaUsers.deleteOne({ _id: partnerId })
    this.#forget(user.username)
    return true
  }

  #forget(username: string): void {
    for (const [k, v] of this.#verified)
      if (k.startsWith(`${username}\u0000`) || v.until < Date.now()) this.#verified.delete(k)
  }

  /**
   * The partner whose Kafka credentials these are (registry basic auth), or null. `limited` runs the
   * scrypt check under the API keys' attempt limits and hashing pool (ApiKeys.limitedCheck).
   */
  async verify(
    username: string,
    password: string,
    limited: (check: () => Promise<boolean>) => Promise<boolean> = (check) => check(),
  ): Promise<string | null> {
    if (!username.startsWith(this.#o.access.topicPrefix)) return null
    const memo = `${username}\u0000${crypto.createHash('sha256').update(password).digest('base64')}`
    const hit = this.#verified.get(memo)
    if (hit && hit.until > Date.now()) return hit.partnerId
    const user = await this.#o.cols.partnerKafkaUsers.findOne({ username })
    const ok = await limited(async () => {
      if (!user) return false
      const hash = await scrypt(password, Buffer.from(user.check.salt, 'base64'))
      return crypto.timingSafeEqual(hash, Buffer.from(user.check.hash, 'base64'))
    })
    if (!ok || !user) return null
    this.#verified.set(memo, { partnerId: user._id, until: Date.now() + 60_000 })
    return user._id
  }

  /** The partner's topics and whether an accepted grant covers each. */
  async topicsOf(partnerId: string): Promise<PartnerTopicView[]> {
    const [topics, subs, grants] = await Promise.all([
      this.#o.cols.partnerTopics.find({ partnerId }).toArray(),
      this.#o.cols.subscriptions.find({ partnerId }, { projection: { _id: 1, eventTypes: 1 } }).toArray(),
      this.#o.cols.grants
        .find({ partnerId }, { projection: { status: 1, eventTypes: 1, acceptedEventTypes: 1 } })
        .toArray(),
    ])
    const accepted = new Set(grants.flatMap((g) => grantAccepts(g)))
    const out: PartnerTopicView[] = []
    for (const t of topics) {
      const sub = subs.find((s) => s._id === t.subscriptionId)
      if (!sub) continue
      out.push({
        topic: t._id,
        subscriptionId: t.subscriptionId,
        sourceTopic: t.sourceTopic,
        eventTypes: sub.eventTypes,
        readable: sub.eventTypes.some((e) => accepted.has(e)),
        valueSubject: valueSubject(t._id),
        keySubject: keySubject(t._id),
      })
    }
    return out.sort((a, b) => a.topic.localeCompare(b.topic))
  }

  async connectionSettings(partnerId: string): Promise<KafkaConnectionSettings> {
    const { slug } = await this.#partner(partnerId)
    const names = partnerNames(this.#o.access.topicPrefix, slug)
    const user = await this.#o.cols.partnerKafkaUsers.findOne({ _id: partnerId })
    return {
      bootstrapServers: this.#o.access.bootstrapServers,
      securityProtocol: this.#o.access.securityProtocol,
      saslMechanism: 'SCRAM-SHA-512',
      username: user?.username ?? null,
      credentialsIssuedAt: user?.rotatedAt ?? null,
      consumerGroupPrefix: names.topicPrefix,
      topics: await this.topicsOf(partnerId),
      schemaRegistry: {
        url: this.#o.registryUrl(),
        basicAuth: '<username>:<password> of these Kafka credentials, or an API key of the partner',
      },
    }
  }

  /** Makes the partner's ACLs on the cluster match the store (see the module comment). */
  async reconcile(partnerId: string): Promise<void> {
    const user = await this.#o.cols.partnerKafkaUsers.findOne({ _id: partnerId })
    if (!user) return
    const names = partnerNames(this.#o.access.topicPrefix, user.username.slice(this.#o.access.topicPrefix.length))
    const wanted: Binding[] = READ_OPS.map((operation) => ({
      resourceType: AclResourceTypes.GROUP,
      resourceName: names.topicPrefix,
      resourcePatternType: ResourcePatternTypes.PREFIXED,
      operation,
    }))
    for (const t of await this.topicsOf(partnerId)) {
      if (!t.readable) continue
      for (const operation of READ_OPS)
        wanted.push({
          resourceType: AclResourceTypes.TOPIC,
          resourceName: t.topic,
          resourcePatternType: ResourcePatternTypes.LITERAL,
          operation,
        })
    }
    await this.#applyAcls(user.username, wanted)
  }

  /**
   * Every partner's ACLs, and the ACLs of users under the prefix the store no longer knows (revoked
   * while Kafka was unreachable) removed with their SCRAM credential.
   */
  async reconcileAll(): Promise<void> {
    const users = await this.#o.cols.partnerKafkaUsers.find({}).toArray()
    for (const u of users) await this.reconcile(u._id)
    const known = new Set(users.map((u: PartnerKafkaUserDoc) => `User:${u.username}`))
    const all = await this.#describe(null)
    const strays = new Set(
      all
        .filter((a) => a.principal.startsWith(`User:${this.#o.access.topicPrefix}`) && !known.has(a.principal))
        .map((a) => a.principal),
    )
    for (const principal of strays) {
      const username = principal.slice('User:'.length)
      await this.#applyAcls(username, [])
      await this.#kafka('delete the SCRAM credential', () => this.#o.scram.delete(username))
      this.#o.logger.info('removed the Kafka access of a user the store no longer knows', { username })
    }
  }

  /** Deletes a partner topic on the cluster (its subscription is gone); absent is fine. */
  async deleteTopic(topic: string): Promise<void> {
    try {
      await this.#o.admin.deleteTopics({ topics: [topic], timeout: 10_000 })
    } catch (err) {
      const e = err as { type?: string; errors?: Array<{ type?: string }> }
      const unknown =
        e.type === 'UNKNOWN_TOPIC_OR_PARTITION' ||
        (e.errors ?? []).every((x) => x.type === 'UNKNOWN_TOPIC_OR_PARTITION')
      if (!unknown) throw err
    }
  }

  async #describe(
    principal: string | null,
  ): Promise<Array<Binding & { principal: string; host: string; permissionType: number }>> {
    const res = await this.#kafka('read ACLs', () =>
      this.#o.admin.describeAcls({
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.ANY,
        ...(principal !== null ? { principal } : {}),
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      }),
    )
    return res.resources.flatMap((r) =>
      r.acls.map((a) => ({
        resourceType: r.resourceType,
        resourceName: r.resourceName,
        resourcePatternType: r.resourcePatternType,
        operation: a.operation,
        principal: a.principal,
        host: a.host,
        permissionType: a.permissionType,
      })),
    )
  }

  async #applyAcls(username: string, wanted: Binding[]): Promise<void> {
    const principal = `User:${username}`
    const have = await this.#describe(principal)
    const want = new Map(wanted.map((b) => [bindingKey(b), b]))
    const extra = have.filter(
      (a) => !(a.permissionType === AclPermissionTypes.ALLOW && a.host === '*' && want.has(bindingKey(a))),
    )
    const present = new Set(
      have.filter((a) => a.permissionType === AclPermissionTypes.ALLOW && a.host === '*').map(bindingKey),
    )
    const missing = [...want.values()].filter((b) => !present.has(bindingKey(b)))
    const entry = (b: Binding & { host?: string; permissionType?: number }): AclEntry =>
      ({
        ...b,
        principal,
        host: b.host ?? '*',
        permissionType: b.permissionType ?? AclPermissionTypes.ALLOW,
      }) as AclEntry
    if (missing.length > 0)
      await this.#kafka('create ACLs', () => this.#o.admin.createAcls({ acl: missing.map(entry) }))
    if (extra.length > 0)
      await this.#kafka('delete ACLs', () => this.#o.admin.deleteAcls({ filters: extra.map(entry) }))
    if (missing.length + extra.length > 0)
      this.#o.logger.info('partner Kafka ACLs reconciled', { username, created: missing.length, deleted: extra.length })
  }

  /** A Kafka call whose failure is retriable for the caller (503), named for the message. */
  async #kafka<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      await this.#o.admin.connect() // a no-op when connected; reconnects after an outage
      return await fn()
    } catch (err) {
      if (err instanceof ConflictError) throw err
      const e = err as Error & { retriable?: boolean; code?: string }
      if (e.code === 'UNSUPPORTED_VERSION' || e.code === 'CLUSTER_AUTHORIZATION_FAILED') throw err
      throw new RetriableError(`Kafka did not ${what}: ${e.message}`, undefined, {}, { cause: err })
    }
  }
}
