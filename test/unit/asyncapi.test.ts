/**
 * The AsyncAPI 3.0 event catalog (api/openapi/asyncapi.ts) is valid for the AsyncAPI parser (with
 * its Avro schema parser: the Kafka payloads are the Avro contracts themselves), covers every topic
 * and event type with its headers and example, and docs/event-catalog.md is what it renders now.
 */
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { Parser } from '@asyncapi/parser'
import { AvroSchemaParser } from '@asyncapi/avro-schema-parser'
import { asyncApiDocument, eventCatalogMarkdown } from '../../api/openapi/asyncapi.ts'
import { PROJECT_ROOT } from '../../common/paths.ts'
import { ALL_TOPICS } from '../../schemas/topics.ts'

describe('AsyncAPI event catalog', function () {
  this.timeout(30_000)

  it('parses without errors with the AsyncAPI parser and its Avro schema parser', async () => {
    const parser = new Parser()
    parser.registerSchemaParser(AvroSchemaParser())
    const { document, diagnostics } = await parser.parse(JSON.stringify(asyncApiDocument()))
    const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`)
    expect(errors).to.deep.equal([])
    expect(document, 'a parsed document').to.not.equal(undefined)
    // every event type is a message of its topic's channel, with the CloudEvents headers and the Avro payload
    for (const t of ALL_TOPICS) {
      const channel = document!
        .channels()
        .all()
        .find((c) => c.address() === t.name)
      expect(channel, t.name).to.not.equal(undefined)
      const names = channel!
        .messages()
        .all()
        .map((m) => m.name())
      expect(names.sort(), t.name).to.deep.equal([...t.eventTypes].sort())
      for (const m of channel!.messages().all()) {
        expect(m.headers()?.properties()?.['ce_id'], `${m.name()} headers`).to.not.equal(undefined)
        expect(m.payload()?.properties()?.['sequence'], `${m.name()} payload from the Avro contract`).to.not.equal(
          undefined,
        )
      }
    }
    // the webhook channel: every event type with the signature headers
    const webhook = document!
      .channels()
      .all()
      .find((c) => c.id() === 'webhook')!
    expect(
      webhook
        .messages()
        .all()
        .map((m) => m.name())
        .sort(),
    ).to.deep.equal(ALL_TOPICS.flatMap((t) => t.eventTypes).sort())
    expect(Object.keys(webhook.messages().all()[0]!.headers()!.properties()!)).to.include.members([
      'webhook-id',
      'webhook-timestamp',
      'webhook-signature',
    ])
  })

  it('is refused by the parser when broken (the validation can fail)', async () => {
    const broken = asyncApiDocument() as { operations: Record<string, { action: string }> }
    broken.operations['deliver-webhook']!.action = 'publish' // AsyncAPI 2 wording, invalid in 3.0
    const { diagnostics } = await new Parser().parse(JSON.stringify(broken))
    expect(diagnostics.filter((d) => d.severity === 0)).to.not.have.length(0)
  })

  it('docs/event-catalog.md is current (npm run catalog rewrites it)', () => {
    expect(fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'event-catalog.md'), 'utf8')).to.equal(
      eventCatalogMarkdown(),
    )
  })
})
