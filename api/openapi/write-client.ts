/**
 * `npm run client` (and `npm ci`, `npm test`): writes client/openapi.d.ts from the management API document
 * (api/openapi/client-types.ts).
 */
import fs from 'node:fs'
import path from 'node:path'
import { CLIENT_TYPES_FILE, clientTypesSource } from './client-types.ts'

fs.writeFileSync(CLIENT_TYPES_FILE, await clientTypesSource())
process.stdout.write(`wrote ${path.relative(process.cwd(), CLIENT_TYPES_FILE)}\n`)
