/**
 * `distributary inbound ...` (docs/deals.md, "Decisions from the CRM"): a publisher's inbound connectors, the
 * signed endpoints its CRM posts deal decisions to; list, show, create, change, rotate the secret, delete.
 */
import { data, type Schemas } from '../client/index.ts'
import {
  col,
  FROM_FILE,
  deleteCommand,
  listCommand,
  rotateCommand,
  requestBody,
  showCommand,
  updateCommand,
  UsageError,
  type ApiCommandFlags,
  type Sub,
} from './api-args.ts'

const columns = [
  col('ID', 'id'),
  col('NAME', 'name'),
  col('PUBLISHER', 'publisherId'),
  col('TOLERANCE', 'toleranceSeconds'),
  col('URL', 'url'),
  col('CREATED', 'createdAt'),
]

/** `--tolerance-seconds 300` → 300 (the API checks the range and names the field). */
function tolerance(flags: ApiCommandFlags): number | undefined {
  const v = flags['tolerance-seconds']
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v)) throw new UsageError(`--tolerance-seconds must be a whole number of seconds (got "${v}")`)
  return Number(v)
}

const fields = (flags: ApiCommandFlags) => ({
  name: flags.name,
  mapping: flags.mapping,
  toleranceSeconds: tolerance(flags),
})

const FIELD_FLAGS = {
  mapping: "JSONata from the CRM's payload to { dealId, action, reason }",
  'tolerance-seconds': 'how far webhook-timestamp may be from now (10 to 3600)',
}

/** The secret is in the answer of a create and a rotation only. */
const withSecret = (c: { id: string; url: string; secret?: string }) =>
  `${c.id}: ${c.url}\nsecret: ${String(c.secret)}\n(shown only now: configure it in the CRM)\n`

export const INBOUND_SUBS: Record<string, Record<string, Sub>> = {
  inbound: {
    list: listCommand("the publisher's inbound connectors", columns, '/inbound-connectors'),
    show: showCommand('one inbound connector (never its secret)', '/inbound-connectors/{inboundId}'),
    create: {
      flags: {
        name: 'its name',
        ...FIELD_FLAGS,
        'publisher-id': 'the publisher it decides for (admin key only)',
        'from-file': FROM_FILE('InboundConnectorCreate'),
      },
      help: "an endpoint for the publisher's CRM; its signing secret is shown only now",
      run: async (ctx) => {
        const body = requestBody(ctx, { ...fields(ctx.flags), publisherId: ctx.flags['publisher-id'] })
        if (body.name === undefined) throw new UsageError('inbound create: --name is required')
        const c = await data(ctx.api.POST('/inbound-connectors', { body: body as Schemas['InboundConnectorCreate'] }))
        ctx.out(c, () => withSecret(c))
        return 0
      },
    },
    update: updateCommand<Schemas['InboundConnector']>(
      'change its name, mapping or tolerance (the URL and the secret stay)',
      '/inbound-connectors/{inboundId}',
      { name: 'a new name', ...FIELD_FLAGS, 'from-file': FROM_FILE('InboundConnectorPatch') },
      fields,
      (c) => `${c.id}: updated ${c.name}\n`,
    ),
    'rotate-secret': rotateCommand<Schemas['InboundConnector']>(
      'a new signing secret now, shown only now; the old one is accepted for the overlap',
      'how long the old secret is still accepted (default 86400; 0: not at all)',
      '/inbound-connectors/{inboundId}/secret/rotate',
      withSecret,
    ),
    delete: deleteCommand(
      "delete it: the CRM's calls are 404 from now on",
      '/inbound-connectors/{inboundId}',
      'deleted',
    ),
  },
}
