/**
 * Who may do what on the built-in schema registry (schemas/registry/auth.ts), with the platform's
 * API keys. Credentials are HTTP basic auth as Confluent clients send them (basic.auth.user.info):
 *
 *   - "<any user>:<API key>" (e.g. "apikey:dk_0123456789ab.<secret>"): the whole key is the password;
 *   - "<key prefix>:<secret>" (e.g. "dk_0123456789ab:<secret>"): the key's id and secret apart;
 *   - "distributary-internal:<internal password>": the platform's own processes (see internalPassword);
 *   - "<partner Kafka user>:<its password>" (e.g. "partner.northwind:dkp_..."): the SCRAM credentials of a
 *     partner's kafka-topic subscriptions (control-plane/partner-kafka.ts), so one pair serves both its
 *     Kafka client and its deserializer; they read the partner's own topics' subjects and nothing else;
 *   - or `Authorization: Bearer <API key>` (bearer.auth.token).
 *
 * Subjects: the platform's contract subjects are `<topic>-key` and `<topic>-value` of its topics
 * (TopicNameStrategy); a publisher's own namespace is every subject starting with `<organization id>.`.
 *
 * Who may do what:
 * - admin key, internal: read everything; register everything; delete, config and mode everything,
 *   the global ones too.
 * - publisher: read the contract subjects of the topics publishers write, and its namespace; register in
 *   its namespace; delete, config and mode in its namespace only.
 * - partner: read the contract subjects of topics with an event type of an accepted grant, the namespaces
 *   of the publishers that granted it, and its partner topics' subjects; nothing else.
 * - partner Kafka user: read its partner topics' subjects (`<prefix><slug>.*`); nothing else.
 *
 * The contract subjects are shared by every publisher: a version one publisher registered there would
 * become every publisher's latest, the baseline every later contract version must be compatible with,
 * and (pinned-readers.ts) a schema issue flagged on other publishers' partners' subscriptions. So a
 * publisher reads and looks them up (what Confluent's serializers need with auto.register.schemas=false)
 * but only the platform and admins register, delete or configure them.
 */
import crypto from 'node:crypto'
import { RateLimitedError } from '../common/errors.ts'
import { INTERNAL_USER, adminPrincipal, type RegistryAuth, type RegistryPrincipal } from '../schemas/registry/auth.ts'
import { RegistryError } from '../schemas/registry/errors.ts'
import { ALL_TOPICS, keySubject, valueSubject, type TopicSpec } from '../schemas/topics.ts'
import { grantAccepts } from './entitlements.ts'
import type { ControlPlane } from './service.ts'
import type { Principal } from './types.ts'
import { partnerNames, type PartnerKafka } from './partner-kafka.ts'

const KEY_PREFIX = /^dk_[0-9a-f]{12}$/

const subjectsOf = (topics: readonly TopicSpec[]): Set<string> =>
  new Set(topics.flatMap((t) => [keySubject(t.name), valueSubject(t.name)]))

export interface RegistryAccessOptions {
  /** The control plane (a function: the platform creates it after the registry starts). */
  controlPlane: () => ControlPlane
  /** The password of INTERNAL_USER (internalPassword of the key ring). */
  internalPassword: string
  anonymousLoopbackReads?: boolean
  topics?: readonly TopicSpec[]
  /** Partners' Kafka access (absent: none); its users' credentials are accepted and name the partner. */
  partnerKafka?: () => PartnerKafka | undefined
}

/** The registry's authentication, and what a principal of the platform may do there (the console's schema pages). */
export type PlatformRegistryAccess = RegistryAuth & { principalOf(p: Principal): Promise<RegistryPrincipal> }

export function registryAccess(options: RegistryAccessOptions): PlatformRegistryAccess {
  const topics = options.topics ?? ALL_TOPICS
  const publisherSubjects = subjectsOf(topics.filter((t) => t.writtenBy === 'publishers'))
  const internal = crypto.createHash('sha256').update(options.internalPassword).digest()
  const internalPrincipal = adminPrincipal('internal')
  // a partner's own topics (kafka-topic subscriptions) are under `<prefix><slug>.`
  const partnerTopicsOf = async (cp: ControlPlane, partnerId: string): Promise<(s: string) => boolean> => {
    const pk = options.partnerKafka?.()
    const org = pk
      ? await cp.cols.organizations.findOne({ _id: partnerId, kind: 'partner' }, { projection: { slug: 1 } })
      : null
    if (!pk || !org) return () => false
    const prefix = partnerNames(pk.access.topicPrefix, org.slug).topicPrefix
    return (s: string) => s.startsWith(prefix)
  }
  /** What an API key's principal may do on the registry (the table above). */
  const principalOf = async (p: Principal): Promise<RegistryPrincipal> => {
    const cp = options.controlPlane()
    const name = p.keyId
    if (p.scope === 'admin') return adminPrincipal(name)
    const org = p.organizationId ?? ''
    const own = (s: string) => org !== '' && s.startsWith(`${org}.`)
    if (p.scope === 'publisher') {
      const mine = (s: string) => publisherSubjects.has(s) || own(s)
      return { name, admin: false, canRead: mine, canRegister: own, canManage: own }
    }
    // A partner: what its accepted grants cover, read at authentication (each request).
    const grants = await cp.cols.grants
      .find({ partnerId: org }, { projection: { publisherId: 1, status: 1, eventTypes: 1, acceptedEventTypes: 1 } })
      .toArray()
    const accepted = new Set<string>()
    const publishers = new Set<string>()
    for (const g of grants) {
      const types = grantAccepts(g)
      if (types.length === 0) continue
      publishers.add(g.publisherId)
      for (const t of types) accepted.add(t)
    }
    const readable = subjectsOf(topics.filter((t) => t.eventTypes.some((e) => accepted.has(e))))
    const ownTopics = await partnerTopicsOf(cp, org)
    const canRead = (s: string) =>
      readable.has(s) || [...publishers].some((pub) => s.startsWith(`${pub}.`)) || ownTopics(s)
    return { name, admin: false, canRead, canRegister: () => false, canManage: () => false }
  }
  return {
    principalOf,
    anonymousLoopbackReads: options.anonymousLoopbackReads ?? false,
    async authenticate(user, password, client): Promise<RegistryPrincipal | null> {
      if (user === INTERNAL_USER) {
        return crypto.timingSafeEqual(crypto.createHash('sha256').update(password).digest(), internal)
          ? internalPrincipal
          : null
      }
      const cp = options.controlPlane()
      const pk = options.partnerKafka?.()
      if (pk && user.startsWith(pk.access.topicPrefix) && !KEY_PREFIX.test(user)) {
        let partnerId: string | null
        try {
          partnerId = await pk.verify(user, password, (check) => cp.keys.limitedCheck(client ?? 'unknown', user, check))
        } catch (err) {
          if (err instanceof RateLimitedError) throw new RegistryError(429, 429, err.message)
          throw err
        }
        if (partnerId === null) return null
        const own = await partnerTopicsOf(cp, partnerId)
        return { name: user, admin: false, canRead: own, canRegister: () => false, canManage: () => false }
      }
      const key = KEY_PREFIX.test(user) && !password.includes('.') ? `${user}.${password}` : password
      let p
      try {
        p = await cp.keys.authenticate(key, client)
      } catch (err) {
        if (err instanceof RateLimitedError) throw new RegistryError(429, 429, err.message)
        throw err
      }
      if (!p) return null
      return principalOf(p)
    },
  }
}
