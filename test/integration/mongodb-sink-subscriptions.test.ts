/**
 * Saving a subscription with a MongoDB sink (control plane on the real store): the connection
 * string is sealed at rest and checked by the SSRF guard, names the field at fault, and the
 * subscription reads one topic.
 */
import { expect } from 'chai'
import type { Db, MongoClient } from 'mongodb'
import { createLogger } from '../../common/logger.ts'
import { createSecretBox, generateKeyRingEntry, parseKeyRing } from '../../common/secret-box.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { ControlPlane } from '../../control-plane/service.ts'
import { RequestInvalidError } from '../../control-plane/errors.ts'
import type { MongoSink } from '../../control-plane/types.ts'
import { dropDatabaseLater, testMongo, uniqueName } from '../helpers/env.ts'
import { ADMIN } from '../helpers/sink-runtime.ts'

describe('subscriptions with a MongoDB sink (control plane)', function () {
  this.timeout(30_000)
  let mongo: MongoClient
  let db: Db
  let cp: ControlPlane
  let partnerId: string

  before(async () => {
    mongo = testMongo()
    await mongo.connect()
    const name = uniqueName('msubs').slice(0, 40)
    dropDatabaseLater(name)
    db = mongo.db(name)
    // no allowlist: loopback and private addresses are refused, as in production
    cp = new ControlPlane({
      db,
      box: createSecretBox(parseKeyRing(generateKeyRingEntry('t1'))),
      urlGuard: createUrlGuard(),
      logger: createLogger({ write: () => {} }),
      bootstrapKey: '',
      apiKeyCacheMs: 1000,
      idempotencyTtlSeconds: 60,
    })
    await cp.init()
    const publisher = await cp.createOrganization(ADMIN, { kind: 'publisher', name: 'P', slug: uniqueName('p') })
    const partner = await cp.createOrganization(ADMIN, { kind: 'partner', name: 'A', slug: uniqueName('a') })
    partnerId = partner._id
    const grant = await cp.createGrant(ADMIN, {
      publisherId: publisher._id,
      partnerId,
      entitlements: [{ eventType: 'inventory.level.changed' }, { eventType: 'deal.registered' }],
    })
    await cp.acceptGrant(ADMIN, grant._id)
  })
  after(async () => {
    await mongo.close()
  })

  const create = (sink: Partial<MongoSink>, eventTypes = ['inventory.level.changed']) =>
    cp.createSubscription(ADMIN, {
      partnerId,
      name: uniqueName('m').slice(0, 40),
      eventTypes,
      sink: { type: 'mongodb', database: 'partner', collection: 'levels', ...sink } as MongoSink,
    })
  const fieldErrors = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).to.be.instanceOf(RequestInvalidError)
    return (err as RequestInvalidError).errors
  }

  it('refuses loopback, private and metadata hosts and unix sockets, naming sink.connectionString', async () => {
    for (const cs of [
      'mongodb://127.0.0.1:27017/',
      'mongodb://10.0.0.5/',
      'mongodb://u:p@169.254.169.254:27017/',
      'mongodb://[::1]:27017/',
      'mongodb://%2Ftmp%2Fmongodb-27017.sock/',
    ]) {
      const errors = await fieldErrors(create({ connectionString: cs }))
      expect(
        errors.map((e) => e.field),
        cs,
      ).to.deep.equal(['sink.connectionString'])
      expect(errors[0]!.message).to.not.contain(':p@')
    }
  })

  it('refuses a malformed string without quoting its password, a missing one, bad names and two topics', async () => {
    const bad = await fieldErrors(create({ connectionString: 'mongodb://bob:hunter22@h1/?authMechanism=BOGUS' }))
    expect(bad.map((e) => e.field)).to.deep.equal(['sink.connectionString'])
    expect(JSON.stringify(bad)).to.not.contain('hunter22')
    expect((await fieldErrors(create({}))).map((e) => e.field)).to.deep.equal(['sink.connectionString'])
    const names = await fieldErrors(
      create({ connectionString: 'mongodb://db.example.com/', database: 'a.b', collection: 'system.x' }),
    )
    expect(names.map((e) => e.field).sort()).to.deep.equal(['sink.collection', 'sink.database'])
    const topics = await fieldErrors(
      create({ connectionString: 'mongodb://db.example.com/' }, ['inventory.level.changed', 'deal.registered']),
    )
    expect(topics.map((e) => e.field)).to.deep.equal(['eventTypes'])
  })

  it(
    'stores the connection string sealed, opens it for the worker, and keeps it ' + 'when a patch leaves it out',
    async () => {
      const cs = 'mongodb://bob:hunter22@db.example.com:27017/?tls=true'
      const { subscription } = await create({ connectionString: cs })
      const raw = await db.collection('subscriptions').findOne({ _id: subscription._id as never })
      expect(JSON.stringify(raw)).to.not.contain('hunter22')
      expect((cp.openSink(subscription.sink) as MongoSink).connectionString).to.equal(cs)
      const { subscription: updated } = await cp.updateSubscription(ADMIN, subscription._id, {
        sink: { type: 'mongodb', database: 'partner', collection: 'levels2' } as MongoSink,
      })
      expect(cp.openSink(updated.sink)).to.include({ connectionString: cs, collection: 'levels2' })
    },
  )
})
