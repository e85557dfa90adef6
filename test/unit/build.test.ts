import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { buildBundle, PLATFORM_BUNDLE, ROOT } from '../../cli/build.mjs'
import { findProjectRoot, PROJECT_ROOT } from '../../common/paths.ts'

describe('the platform bundle (cli/build.mjs)', function () {
  this.timeout(60_000)

  it('finds the project root from a module in the sources or in dist/', () => {
    expect(PROJECT_ROOT).to.equal(ROOT)
    expect(findProjectRoot(path.join(ROOT, 'dist'))).to.equal(ROOT)
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'root-'))
    try {
      fs.mkdirSync(path.join(tmp, 'a', 'b'), { recursive: true })
      fs.writeFileSync(path.join(tmp, 'a', 'package.json'), '{}')
      expect(findProjectRoot(path.join(tmp, 'a', 'b'))).to.equal(path.join(tmp, 'a'))
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })

  it(
    'holds every module of the sources: it imports only packages and node: ' +
      'builtins, so it runs without a TypeScript loader',
    async () => {
      const file = await buildBundle()
      expect(file).to.equal(PLATFORM_BUNDLE)
      const code = fs.readFileSync(file, 'utf8')
      const specifiers = [...code.matchAll(/(?:^|\n)\s*import\s[^;]*?from\s*"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g)].map(
        (m) => m[1] ?? m[2] ?? '',
      )
      expect(specifiers).to.include('kafkajs')
      expect(specifiers.filter((s) => s.startsWith('.') || s.startsWith('/') || s.endsWith('.ts'))).to.deep.equal([])
      expect(code).to.not.match(/\bfrom\s*"tsx\b/)
    },
  )

  it(
    'runs JSONata mappings in the sandbox processes from dist/ with plain node ' +
      '(their script and jsonata found from the project root)',
    async () => {
      const outfile = path.join(ROOT, 'dist', `mapping-sandbox-check-${process.pid}.mjs`)
      try {
        await buildBundle(path.join(ROOT, 'test', 'fixtures', 'mapping-sandbox-child.ts'), outfile)
        const res = spawnSync(process.execPath, [outfile], {
          encoding: 'utf8',
          env: { ...process.env, NODE_OPTIONS: '' },
          timeout: 30_000,
        })
        expect(res.status, res.stderr).to.equal(0)
        expect(JSON.parse(res.stdout)).to.deep.equal({
          body: '{"externalId":"A-1"}',
          hostile:
            'body mapping failed for event evt-2: the mapping of subscription sub-1 exceeded its 250 ms time limit',
        })
      } finally {
        for (const f of [outfile, `${outfile}.map`]) fs.rmSync(f, { force: true })
      }
    },
  )

  it('is rewritten only when its content changes, and runs with plain node', async () => {
    await buildBundle()
    const before = fs.statSync(PLATFORM_BUNDLE).mtimeMs
    await new Promise((r) => setTimeout(r, 20))
    await buildBundle()
    expect(fs.statSync(PLATFORM_BUNDLE).mtimeMs).to.equal(before)
    const res = spawnSync(process.execPath, [PLATFORM_BUNDLE, 'no-such-command'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    })
    expect(res.stderr).to.match(
      /^distributary: unknown command "no-such-command" \(commands: start, .*; see distributary --help\)\n$/,
    )
    expect(res.status).to.equal(2)
  })
})
