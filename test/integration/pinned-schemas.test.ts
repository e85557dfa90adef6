/**
 * Pinned schema versions end to end (real Kafka, FerretDB, the built-in registry, webhook receivers):
 * events written with v2 reach a v1-pinned partner as v1 (and an unpinned one as v2); a v3 that a
 * pinned partner cannot read is refused by the registry (409, Confluent error_code, naming the
 * subscription and the field), or registered and the subscription flagged under policy `flag`.
 */
import { expect } from 'chai'
import { pinnedReaderCheck, type PinnedReaderPolicy } from '../../control-plane/pinned-readers.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { envelope, HEADER, toHeaders } from '../../schemas/headers.ts'
import { keySubject, valueSubject } from '../../schemas/topics.ts'
import { subscriptionView } from '../../api/management/http.ts'
import { waitFor } from '../helpers/env.ts'
import { http } from '../helpers/registry.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'

interface AvroRecordSchema {
  fields: Array<{ name: string; [k: string]: unknown }>
  [k: string]: unknown
}

const v1 = (): AvroRecordSchema => JSON.parse(contractSchema('inventory-level')) as AvroRecordSchema
/** v2: adds an optional field (backward and forward compatible). */
const v2 = (): AvroRecordSchema => {
  const s = v1()
  s.fields.push({ name: 'zone', type: ['null', 'string'], default: null, doc: 'Storage zone.' })
  return s
}
/** v3: drops unitOfMeasure, which v1 requires without a default (BACKWARD still holds against v2). */
const v3 = (): AvroRecordSchema => {
  const s = v2()
  s.fields = s.fields.filter((f) => f.name !== 'unitOfMeasure')
  return s
}

describe('pinned schema versions', function () {
  this.timeout(90_000)
  let h: SinkHarness
  const receivers: Receiver[] = []
  const subject = () => valueSubject(h.topic.name)
  const register = (schema: AvroRecordSchema) =>
    http(`${h.registryUrl}/subjects/${subject()}/versions`, 'POST', { schema: JSON.stringify(schema) })
  const useCheck = (policy: PinnedReaderPolicy) => {
    h.registry.registry.beforeRegister = pinnedReaderCheck({
      cols: h.cp.cols,
      topics: [h.topic],
      policy,
      logger: h.logger,
    })
  }

  beforeEach(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  it('events written with v2 arrive at a v1-pinned partner as v1, and at an unpinned one as v2', async () => {
    const pinned = await startReceiver()
    const latest = await startReceiver()
    receivers.push(pinned, latest)
    useCheck('refuse')
    const sp = await h.subscribe({ name: 'pinned', url: pinned.url, schemaVersions: { 'inventory.level.changed': 1 } })
    await h.subscribe({ name: 'latest', url: latest.url })
    const r = await register(v2())
    expect(r.status, JSON.stringify(r.body)).to.equal(200)
    const v2id = r.body.id as number
    const keyId = (
      (await http(`${h.registryUrl}/subjects/${keySubject(h.topic.name)}/versions/latest`)).body as { id: number }
    ).id
    await h.serde.load(v2id)
    await h.serde.load(keyId)
    await h.worker()
    await waitFor(async () => (await h.cp.getConnector(ADMIN, sp.id)).status?.state === 'running', { what: 'running' })
    const value = {
      manufacturerId: h.publisherId,
      sku: 'S-2',
      gtin: null,
      locationId: 'WH1',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: 5,
      reserved: 0,
      available: 5,
      incoming: [],
      safetyStock: null,
      sequence: 1,
      occurredAt: Date.now(),
      zone: 'Z9',
    }
    const env = envelope({
      type: 'inventory.level.changed',
      source: '/test',
      schemaSubject: subject(),
      schemaVersion: 2,
    })
    await h.producer.send({
      topic: h.topic.name,
      messages: [
        {
          key: h.serde.encodeSync(keyId, { manufacturerId: h.publisherId, sku: 'S-2', locationId: 'WH1' }),
          value: h.serde.encodeSync(v2id, value),
          headers: { ...toHeaders(env), [HEADER.publisherId]: h.publisherId },
        },
      ],
    })
    await waitFor(() => pinned.received.length >= 1 && latest.received.length >= 1, { what: 'both deliveries' })
    const asV1 = (JSON.parse(pinned.received[0]!.body) as { data: Record<string, unknown> }).data
    const asV2 = (JSON.parse(latest.received[0]!.body) as { data: Record<string, unknown> }).data
    expect(asV2.zone).to.equal('Z9')
    expect(asV1).to.not.have.property('zone')
    expect(Object.keys(asV1).sort()).to.deep.equal(
      v1()
        .fields.map((f) => f.name)
        .sort(),
    )
    expect(asV1.unitOfMeasure).to.equal('EA')
  })

  it(
    'refuses a v3 that a pinned partner cannot read: 409 with a Confluent ' +
      'error_code naming the subscription and the field',
    async () => {
      useCheck('refuse')
      const sp = await h.subscribe({
        name: 'erp-v1',
        url: 'http://127.0.0.1:9/hook',
        schemaVersions: { 'inventory.level.changed': 1 },
      })
      expect((await register(v2())).status).to.equal(200)
      const r = await register(v3())
      expect(r.status).to.equal(409)
      expect(r.body.error_code).to.equal(40901)
      expect(r.body.message).to.include(sp.id).and.include('erp-v1').and.include('unitOfMeasure')
      const versions = await http(`${h.registryUrl}/subjects/${subject()}/versions`)
      expect(versions.body).to.deep.equal([1, 2])
      // pinning v2 does not help (v2 needs unitOfMeasure too); once nothing pins a reader that needs it, v3 registers
      await h.cp.updateSubscription(ADMIN, sp.id, { schemaVersions: { 'inventory.level.changed': 2 } })
      const again = await register(v3())
      expect(again.status).to.equal(409)
      expect(again.body.message).to.include('version 2')
      await h.cp.updateSubscription(ADMIN, sp.id, { schemaVersions: {} })
      expect((await register(v3())).status).to.equal(200)
    },
  )

  it('policy flag: registers the v3 and flags the affected subscription (visible on the subscription)', async () => {
    useCheck('flag')
    const sp = await h.subscribe({
      name: 'erp-v1',
      url: 'http://127.0.0.1:9/hook',
      schemaVersions: { 'inventory.level.changed': 1 },
    })
    const other = await h.subscribe({ name: 'latest', url: 'http://127.0.0.1:9/hook2' })
    expect((await register(v2())).status).to.equal(200)
    const r = await register(v3())
    expect(r.status).to.equal(200)
    const view = subscriptionView(await h.cp.getSubscription(ADMIN, sp.id), h.cp) as {
      schemaIssues?: Array<{ version: number; pinnedVersion: number; fields: string[] }>
    }
    expect(view.schemaIssues).to.have.length(1)
    expect(view.schemaIssues![0]).to.include({ version: 3, pinnedVersion: 1 })
    expect(view.schemaIssues![0]!.fields.join(' ')).to.include('unitOfMeasure')
    expect(subscriptionView(await h.cp.getSubscription(ADMIN, other.id), h.cp)).to.not.have.property('schemaIssues')
  })
})
