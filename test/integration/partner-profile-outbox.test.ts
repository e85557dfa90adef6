/**
 * A partner's create and change publish its partner-profile event through the outbox (real Kafka,
 * FerretDB, the in-process registry): the event is read back from Kafka and decoded with the serde;
 * an invalid profile is refused naming the field and publishes nothing; an entry written while no
 * relay runs is published by the next relay; a crash between the ack and the commit sends the same
 * event id again.
 */
import { expect } from 'chai'
import type { Admin, Kafka } from 'kafkajs'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { HEADER } from '../../schemas/headers.ts'
import { createKafka } from '../../common/kafka/index.ts'
import { faultySockets } from '../helpers/kafka-faults.ts'
import { createOutboxRelay, type OutboxRelay } from '../../producers/outbox/index.ts'
import type { OrganizationDoc, OutboxRelayDoc } from '../../control-plane/index.ts'
import { startManagement, type ManagementHarness } from '../helpers/management.ts'
import { testConfig, testKafka, uniqueName, waitFor } from '../helpers/env.ts'
import { deleteTopics, quietLogger, startTestRegistry } from '../helpers/registry.ts'
import { countRecords, createTopics, readTopic, uniqueTopic, type ReadRecord } from '../helpers/sources.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

const PROFILE = {
  legalName: 'Northwind Distribution GmbH',
  tradingName: 'Northwind',
  partnerType: 'DISTRIBUTOR',
  tier: 'GOLD',
  status: 'ACTIVE',
  headquartersCountry: 'DE',
  regions: ['DE', 'AT', 'CH'],
  website: 'https://northwind.example',
  certifications: [{ code: 'NET-PRO', name: 'Networking Professional', issuedOn: '2025-03-01' }],
  contacts: [{ role: 'primary', name: 'Ada Weber', email: 'ada@northwind.example' }],
}

describe('partner profile events through the outbox', function () {
  this.timeout(90_000)
  let registry: RegistryServer & { topic: string }
  let serde: AvroSerde
  let kafka: Kafka
  let admin: Admin
  let topic: TopicSpec
  let h: ManagementHarness
  const relays: OutboxRelay[] = []

  const startRelay = async (holderId: string, options: { kafka?: Kafka; leaseTtlMs?: number } = {}) => {
    const relay = createOutboxRelay({
      kafka: options.kafka ?? kafka,
      serde,
      db: h.db,
      logger: quietLogger,
      pollMs: 200,
      leaseTtlMs: options.leaseTtlMs ?? 3000,
      topics: [topic],
      holderId,
      producerRetry: { retries: 1, maxRetryTime: 500, initialRetryTime: 100 },
    })
    await relay.start()
    const off = h.cp.onOutboxWrite(() => relay.nudge())
    const stop = relay.stop
    relay.stop = async () => {
      off()
      await stop()
    }
    relays.push(relay)
    return relay
  }
  // Decoded avsc records as plain JSON (their classes would fail deep equality).
  const eventsOf = async (partnerId: string): Promise<ReadRecord[]> =>
    (await readTopic(kafka, admin, serde, topic.name))
      .filter((r) => r.key?.partnerId === partnerId)
      .map((r) => ({ ...r, key: JSON.parse(JSON.stringify(r.key)), value: JSON.parse(JSON.stringify(r.value)) }))
  const waitForEvents = (partnerId: string, n: number) =>
    waitFor(
      async () => {
        const got = await eventsOf(partnerId)
        return got.length >= n ? got : undefined
      },
      { timeoutMs: 30_000, intervalMs: 300, what: `${n} profile events of ${partnerId}` },
    )

  before(async () => {
    registry = await startTestRegistry()
    serde = new AvroSerde(new RegistryClient({ url: registry.url }))
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
    topic = uniqueTopic(TOPICS.partnerProfiles)
    await createTopics(admin, [topic])
    h = await startManagement({ partnerProfileTopic: topic.name })
  })
  afterEach(async () => {
    while (relays.length > 0) await relays.pop()!.stop()
  })
  after(async () => {
    await h?.close()
    await admin?.disconnect()
    await registry?.close()
    await deleteTopics(topic.name, registry.topic)
  })

  it(
    'creating and updating a partner publishes its profile event, keyed by the ' + 'partner, decodable with the serde',
    async () => {
      await startRelay('relay-1')
      const created = await h.call('POST', '/v1/organizations', {
        body: { kind: 'partner', name: 'Northwind', slug: 'northwind-outbox', profile: PROFILE },
      })
      expect(created.status, created.text).to.equal(201)
      const id = created.body.id as string
      expect(created.body.profile).to.deep.equal(PROFILE)
      const changed = await h.call('PATCH', `/v1/organizations/${id}`, {
        body: { profile: { ...PROFILE, tier: 'PLATINUM', regions: ['DE'] } },
      })
      expect(changed.status, changed.text).to.equal(200)
      const renamed = await h.call('PATCH', `/v1/organizations/${id}`, { body: { name: 'Northwind Group' } })
      expect(renamed.status, renamed.text).to.equal(200)

      const events = await waitForEvents(id, 3)
      expect(events).to.have.length(3)
      expect(new Set(events.map((e) => e.partition)).size, 'one partition: in order per partner').to.equal(1)
      expect(events.map((e) => e.key)).to.deep.equal([{ partnerId: id }, { partnerId: id }, { partnerId: id }])
      const [first, second, third] = events.map((e) => e.value)
      expect(first).to.include({
        partnerId: id,
        legalName: PROFILE.legalName,
        tradingName: 'Northwind',
        partnerType: 'DISTRIBUTOR',
        tier: 'GOLD',
        status: 'ACTIVE',
        headquartersCountry: 'DE',
        website: PROFILE.website,
        taxId: null,
      })
      expect(first.regions).to.deep.equal(['DE', 'AT', 'CH'])
      expect(first.certifications).to.have.length(1)
      expect(first.certifications[0]).to.include({ code: 'NET-PRO', expiresOn: null })
      expect(first.certifications[0].issuedOn).to.equal(Date.parse('2025-03-01T00:00:00Z') / 86_400_000)
      expect(first.contacts).to.deep.equal([
        { role: 'primary', name: 'Ada Weber', email: 'ada@northwind.example', phone: null },
      ])
      expect(second).to.include({ tier: 'PLATINUM' })
      expect(second.regions).to.deep.equal(['DE'])
      expect(third).to.include({ tier: 'PLATINUM', legalName: PROFILE.legalName })
      expect(events.map((e) => Number(e.value.sequence))).to.deep.equal([1, 2, 3])
      expect(Number(first.occurredAt)).to.equal(new Date(created.body.createdAt).getTime())
      for (const e of events) {
        expect(e.headers[HEADER.type]).to.equal('partner.profile.changed')
        expect(e.headers[HEADER.schemaSubject]).to.equal(`${topic.name}-value`)
      }
      expect(new Set(events.map((e) => e.headers[HEADER.id])).size).to.equal(3)

      // The relay recorded what it sent; the next change prunes the sent entries from the document.
      const state = await waitFor(() =>
        h.db.collection<OutboxRelayDoc>('outbox_relay').findOne({ _id: id, sentSequence: 3 }),
      )
      expect(state.lastEventId).to.equal(events[2]!.headers[HEADER.id])
      await h.call('PATCH', `/v1/organizations/${id}`, { body: { profile: { ...PROFILE, status: 'SUSPENDED' } } })
      const doc = await h.db.collection<OrganizationDoc>('organizations').findOne({ _id: id })
      expect(doc!.outbox!.map((e) => e.sequence)).to.deep.equal([4])
      await waitForEvents(id, 4)
    },
  )

  it('a partner created with a name only publishes a valid profile with the derived fields', async () => {
    await startRelay('relay-2')
    const created = await h.call('POST', '/v1/organizations', {
      body: { kind: 'partner', name: 'Plain Partner', slug: 'plain-outbox' },
    })
    expect(created.status, created.text).to.equal(201)
    const [event] = await waitForEvents(created.body.id, 1)
    expect(event!.value).to.include({
      partnerId: created.body.id,
      legalName: 'Plain Partner',
      partnerType: 'OTHER',
      tier: 'OTHER',
      status: 'UNKNOWN',
      headquartersCountry: 'ZZ',
    })
  })

  it('refuses an invalid profile with 422 naming each field, and publishes nothing', async () => {
    await startRelay('relay-3')
    const before = await countRecords(admin, topic.name)
    const bad = await h.call('POST', '/v1/organizations', {
      body: {
        kind: 'partner',
        name: 'Bad',
        slug: 'bad-outbox',
        profile: { ...PROFILE, tier: 'DIAMOND', contacts: [{ name: 'No Mail' }], shoeSize: 42, partnerId: 'org_x' },
      },
    })
    expect(bad.status, bad.text).to.equal(422)
    expect(bad.headers.get('content-type')).to.match(/application\/problem\+json/)
    const fields = bad.body.errors.map((e: { field: string }) => e.field)
    expect(fields).to.include.members([
      'profile.tier',
      'profile.contacts.0.role',
      'profile.contacts.0.email',
      'profile.shoeSize',
      'profile.partnerId',
    ])
    expect(bad.body.errors.find((e: { field: string }) => e.field === 'profile.tier').message).to.match(/PLATINUM/)
    expect(await h.db.collection('organizations').countDocuments({ slug: 'bad-outbox' })).to.equal(0)

    const ok = await h.call('POST', '/v1/organizations', {
      body: { kind: 'partner', name: 'Good', slug: 'good-outbox', profile: PROFILE },
    })
    expect(ok.status, ok.text).to.equal(201)
    await waitForEvents(ok.body.id, 1)
    const patch = await h.call('PATCH', `/v1/organizations/${ok.body.id}`, {
      body: { profile: { ...PROFILE, headquartersCountry: 49 } },
    })
    expect(patch.status, patch.text).to.equal(422)
    expect(patch.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['profile.headquartersCountry'])
    const doc = await h.db.collection<OrganizationDoc>('organizations').findOne({ _id: ok.body.id })
    expect(doc!.version).to.equal(1)
    expect(doc!.profile).to.deep.equal(PROFILE)

    // A publisher's profile stays free-form and publishes nothing either.
    const pub = await h.call('POST', '/v1/organizations', {
      body: { kind: 'publisher', name: 'Acme', slug: 'acme-outbox', profile: { anything: true } },
    })
    expect(pub.status, pub.text).to.equal(201)
    relays[0]!.nudge()
    await new Promise((r) => setTimeout(r, 1500))
    expect(await countRecords(admin, topic.name)).to.equal(before + 1) // the good partner's event only
  })

  it(
    'publishes an entry written while no relay ran once a relay starts, and sends ' +
      'it again with the same event id after a crash before the commit',
    async () => {
      const created = await h.call('POST', '/v1/organizations', {
        body: { kind: 'partner', name: 'Offline', slug: 'offline-outbox', profile: PROFILE },
      })
      expect(created.status, created.text).to.equal(201)
      const id = created.body.id as string
      const doc = await h.db.collection<OrganizationDoc>('organizations').findOne({ _id: id })
      expect(doc!.outbox).to.have.length(1)
      const eventId = doc!.outbox![0]!.eventId
      await new Promise((r) => setTimeout(r, 500))
      expect(await eventsOf(id), 'no relay ran: nothing published yet').to.have.length(0)

      const relay = await startRelay('relay-after-restart')
      const [event] = await waitForEvents(id, 1)
      expect(event!.headers[HEADER.id]).to.equal(eventId)
      await waitFor(() => h.db.collection<OutboxRelayDoc>('outbox_relay').findOne({ _id: id, sentSequence: 1 }))
      await relay.stop()
      relays.splice(relays.indexOf(relay), 1)

      // A crash after the broker's ack but before the commit: the relay's record is missing.
      await h.db.collection<OutboxRelayDoc>('outbox_relay').deleteOne({ _id: id })
      await startRelay('relay-after-crash')
      const again = await waitForEvents(id, 2)
      expect(again.map((e) => e.headers[HEADER.id])).to.deep.equal([eventId, eventId])
      expect(again[1]!.value).to.deep.equal(again[0]!.value)
    },
  )

  it('lets one relay send at a time (lease)', async () => {
    const a = await startRelay('relay-a')
    await waitFor(
      async () =>
        (await h.db.collection('outbox_relay_lease').findOne({ _id: 'relay' as never }))?.workerId === 'relay-a',
    )
    const b = await startRelay('relay-b')
    const created = await h.call('POST', '/v1/organizations', {
      body: { kind: 'partner', name: 'Leased', slug: 'leased-outbox', profile: PROFILE },
    })
    await waitForEvents(created.body.id, 1)
    await new Promise((r) => setTimeout(r, 500))
    expect(a.source.stats.relayed).to.be.greaterThan(0)
    expect(b.source.stats.relayed).to.equal(0)
    expect(b.source.stats.leaseAcquired).to.equal(0)
    // The holder stops (releasing the lease): the other takes over.
    await a.stop()
    relays.splice(relays.indexOf(a), 1)
    const later = await h.call('POST', '/v1/organizations', {
      body: { kind: 'partner', name: 'Later', slug: 'later-outbox', profile: PROFILE },
    })
    b.nudge()
    await waitForEvents(later.body.id, 1)
    expect(b.source.stats.leaseAcquired).to.equal(1)
  })

  it(
    'keeps its lease while it retries through a Kafka outage longer than the ' +
      'lease: no second relay sends meanwhile',
    async () => {
      // Without renewal the lease lapses while the holder retries; the other relay takes over and sends,
      // and the holder's retry then lands after what the other sent (an older profile after a newer one).
      const faults = faultySockets()
      const a = await startRelay('relay-retrying', {
        kafka: createKafka(testConfig(), undefined, uniqueName('outbox-faulty'), {
          socketFactory: faults.socketFactory,
        }),
        leaseTtlMs: 1500,
      })
      await waitFor(
        async () =>
          (await h.db.collection('outbox_relay_lease').findOne({ _id: 'relay' as never }))?.workerId ===
          'relay-retrying',
      )
      const b = await startRelay('relay-waiting', { leaseTtlMs: 1500 })
      faults.refuseProduce(6000) // four lease lifetimes
      const created = await h.call('POST', '/v1/organizations', {
        body: { kind: 'partner', name: 'Outage', slug: 'outage-outbox', profile: PROFILE },
      })
      expect(created.status, created.text).to.equal(201)
      await waitFor(() => faults.refused > 0, { what: 'the holder trying to produce during the outage' })
      await new Promise((r) => setTimeout(r, 5000))
      expect(b.source.stats.leaseAcquired, 'the waiting relay never took the lease over').to.equal(0)
      const [event] = await waitForEvents(created.body.id, 1)
      await new Promise((r) => setTimeout(r, 1000))
      expect(
        (await eventsOf(created.body.id)).map((e) => e.headers[HEADER.id]),
        'sent once, by the holder',
      ).to.deep.equal([event!.headers[HEADER.id]])
      expect([a.source.stats.relayed, b.source.stats.relayed]).to.deep.equal([1, 0])
    },
  )

  it(
    'drops its failed batch when it lost the lease during the outage, and never ' + 'moves the sent sequence back',
    async () => {
      const faults = faultySockets()
      const a = await startRelay('relay-stale', {
        kafka: createKafka(testConfig(), undefined, uniqueName('outbox-faulty'), {
          socketFactory: faults.socketFactory,
        }),
        leaseTtlMs: 1500,
      })
      await waitFor(
        async () =>
          (await h.db.collection('outbox_relay_lease').findOne({ _id: 'relay' as never }))?.workerId === 'relay-stale',
      )
      faults.refuseProduce(4000)
      const created = await h.call('POST', '/v1/organizations', {
        body: { kind: 'partner', name: 'Stolen', slug: 'stolen-outbox', profile: PROFILE },
      })
      const id = created.body.id as string
      await waitFor(() => faults.refused > 0, { what: 'the holder trying to produce during the outage' })
      // Another relay holds the lease now (as after the holder lost the store for longer than the lease).
      await h.db
        .collection('outbox_relay_lease')
        .updateOne(
          { _id: 'relay' as never },
          { $set: { workerId: 'relay-other', expiresAt: new Date(Date.now() + 60_000) } },
        )
      // ... and has sent further than this relay's batch: sequence 5 of this organization.
      await h.db
        .collection<OutboxRelayDoc>('outbox_relay')
        .updateOne(
          { _id: id },
          { $set: { sentSequence: 5, lastEventId: 'other', sentAt: new Date() } },
          { upsert: true },
        )
      await new Promise((r) => setTimeout(r, 6000)) // the outage is over and the holder has retried
      expect(await eventsOf(id), 'the relay without the lease did not send its failed batch again').to.have.length(0)
      expect(a.source.stats.relayed).to.equal(0)
      expect((await h.db.collection<OutboxRelayDoc>('outbox_relay').findOne({ _id: id }))?.sentSequence).to.equal(5)
      await h.db.collection('outbox_relay_lease').deleteOne({ _id: 'relay' as never, workerId: 'relay-other' })
    },
  )
})
