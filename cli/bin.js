#!/usr/bin/env node
// `npx distributary ...`: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api'
register()
await import('./main.ts')
