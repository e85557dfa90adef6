/** `npm run catalog`: writes docs/event-catalog.md from the Avro contracts (api/openapi/asyncapi.ts). */
import fs from 'node:fs'
import path from 'node:path'
import { PROJECT_ROOT } from '../../common/paths.ts'
import { eventCatalogMarkdown } from './asyncapi.ts'

const file = path.join(PROJECT_ROOT, 'docs', 'event-catalog.md')
fs.writeFileSync(file, eventCatalogMarkdown())
process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`)
