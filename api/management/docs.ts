/**
 * GET /docs: interactive API documentation (Swagger UI, served from the swagger-ui-dist package:
 * no CDN, works offline) reading /v1/openapi.json.
 */
import path from 'node:path'
import { createRequire } from 'node:module'
import express, { Router } from 'express'

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Distributary management API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`
const INIT =
  `window.ui = SwaggerUIBundle({ url: '/v1/openapi.json', dom_id: ` +
  `'#swagger-ui', deepLinking: true, persistAuthorization: false })\n`

export function docsRouter(): Router {
  const dist = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'))
  const r = Router()
  const csp = (_req: express.Request, res: express.Response, next: express.NextFunction) => {
    res.setHeader(
      'Content-Security-Policy',
      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    )
    next()
  }
  r.get(['/docs', '/docs/'], csp, (_req, res) => {
    res.type('html').send(PAGE)
  })
  r.get('/docs/init.js', csp, (_req, res) => {
    res.type('application/javascript').send(INIT)
  })
  r.use('/docs/assets', csp, express.static(dist, { index: false, fallthrough: false }))
  return r
}
