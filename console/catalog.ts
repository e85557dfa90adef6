/**
 * The event catalog: every event type with its topic, key and fields and their docs, from the Avro
 * contracts (the same source as docs/event-catalog.md and GET /v1/asyncapi.json).
 */
import { eventCatalog } from '../api/openapi/asyncapi.ts'
import { ALL_TOPICS } from '../schemas/topics.ts'
import type { PageHandler } from './context.ts'
import { html, table } from './html.ts'

export const EVENT_TYPES: string[] = ALL_TOPICS.flatMap((t) => t.eventTypes)

const plain = (markdown: string) => markdown.replace(/`/g, '')
const byDefault = (value: unknown) =>
  value !== undefined ? html` <span class="muted">Default: <code>${JSON.stringify(value)}</code>.</span>` : ''

export const catalogPage: PageHandler = async () => {
  const entries = eventCatalog()
  const page = html`<p>
      Every event the platform carries, from its Avro contract. Webhooks carry <code>{type, timestamp, data}</code> with
      <code>data</code> in this form; the same catalog is machine-readable at
      <a href="/v1/asyncapi.json">/v1/asyncapi.json</a>.
    </p>
    <nav aria-label="Event types">
      <ul class="links">
        ${entries.map((e) => html`<li><a href="#${e.topic.name}">${e.topic.eventTypes.join(', ')}</a></li>`)}
      </ul>
    </nav>
    ${entries.map(
      (e) =>
        html`<section class="card" id="${e.topic.name}">
          <h2>${e.topic.eventTypes.join(', ')}</h2>
          <p class="muted">
            Topic <code>${e.topic.name}</code> (${e.topic.partitions} partitions, ${e.topic.cleanupPolicy}), key
            ${e.topic.key}; written by ${e.topic.writtenBy === 'publishers' ? 'publishers' : 'the platform only'}.
          </p>
          ${e.doc ? html`<p>${e.doc}</p>` : ''}
          ${table(
            `Fields of ${e.topic.eventTypes.join(', ')}`,
            ['Field', 'Type', 'Description'],
            e.fields.map(
              (f) =>
                html`<tr>
                  <td><code>${f.name}</code></td>
                  <td>${plain(f.type)}</td>
                  <td>${f.doc}${byDefault(f.default)}</td>
                </tr>`,
            ),
          )}
        </section>`,
    )}`
  return { page, title: 'Event catalog', current: '/console/catalog' }
}
