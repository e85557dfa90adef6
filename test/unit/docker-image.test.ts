/**
 * The Docker image and the compose service, checked without a Docker engine (issue 22, item 6): the
 * Dockerfile is read as Docker reads it (instructions, continuation lines, stages), the compose files
 * are parsed as YAML. What they must say: a build stage and a runtime stage; no install script anywhere
 * (swagger-ui-dist's @scarf/scarf would send install analytics); the runtime stage installs production
 * dependencies only, takes nothing else from the build stage than the bundle, and runs as a user that
 * is not root; a HEALTHCHECK with node (the slim image has no curl) that really tells a serving
 * platform from one that is not; in compose the same check and a restart policy. And the bundle the
 * image runs imports production dependencies only, so `--omit=dev` cannot leave it short.
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { builtinModules } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { parse } from 'yaml'
import { buildBundle, PLATFORM_BUNDLE, ROOT } from '../../cli/build.mjs'

interface Instruction {
  keyword: string
  args: string
  line: number
}
interface Stage {
  from: string
  name: string | undefined
  instructions: Instruction[]
}

/** Dockerfile instructions by stage: comments dropped, `\` continuation lines joined. */
function dockerStages(text: string): Stage[] {
  const stages: Stage[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    let line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    while (line.endsWith('\\') && i + 1 < lines.length) {
      const next = lines[++i]!.trim()
      if (next.startsWith('#')) continue
      line = `${line.slice(0, -1).trimEnd()} ${next}`
    }
    const m = /^(\w+)\s+(.*)$/s.exec(line)
    if (!m) throw new Error(`Dockerfile line ${start + 1}: not an instruction: ${line}`)
    const keyword = m[1]!.toUpperCase()
    const args = m[2]!.trim()
    if (keyword === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      stages.push({ from: f![1]!, name: f![2], instructions: [] })
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push({ keyword, args, line: start + 1 })
    } else if (keyword !== 'ARG') {
      throw new Error(`Dockerfile line ${start + 1}: ${keyword} before the first FROM`)
    }
  }
  return stages
}

/** The HEALTHCHECK's command (exec form) and its options. */
function healthcheckOf(stage: Stage): { options: Record<string, string>; command: string[] } {
  const hc = stage.instructions.filter((i) => i.keyword === 'HEALTHCHECK')
  expect(hc, 'one HEALTHCHECK in the runtime stage').to.have.length(1)
  const m = /^((?:--[\w-]+=\S+\s+)*)CMD\s+(\[.*\])$/s.exec(hc[0]!.args)
  expect(m, `HEALTHCHECK in exec form (CMD ["node", ...]): ${hc[0]!.args}`).to.not.equal(null)
  const options = Object.fromEntries([...m![1]!.matchAll(/--([\w-]+)=(\S+)/g)].map((o) => [o[1]!, o[2]!]))
  return { options, command: JSON.parse(m![2]!) as string[] }
}

const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
const stages = dockerStages(dockerfile)
const runtime = stages.at(-1)!
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
  scarfSettings?: { enabled?: boolean }
}

/** Runs a HEALTHCHECK command (exec form) the way Docker does, with `env`; its exit status. */
function runCheck(command: string[], env: Record<string, string>): Promise<number | null> {
  expect(command[0]).to.equal('node')
  // not spawnSync: the server answering the check runs in this process
  const child = spawn(process.execPath, command.slice(1), {
    env: { ...process.env, ...env },
    stdio: 'ignore',
    timeout: 15_000,
  })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => resolve(code))
  })
}

describe('the Docker image (Dockerfile)', function () {
  it('has a build stage and a runtime stage from the same Node image', () => {
    expect(stages.length, 'stages').to.be.at.least(2)
    const build = stages.find((s) =>
      s.instructions.some((i) => i.keyword === 'RUN' && /\bnode cli\/build\.mjs\b/.test(i.args)),
    )
    expect(build, 'a stage that builds the bundle (node cli/build.mjs)').to.not.equal(undefined)
    expect(build).to.not.equal(runtime)
    expect(build!.name, 'the build stage is named (COPY --from=<name>)').to.be.a('string')
    expect(runtime.from).to.equal(build!.from)
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)
    expect(arg?.[1] ?? runtime.from).to.match(/^node:24(-|$)/)
  })

  it('runs no install script in any stage, and no package manager of the system', () => {
    const installs = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'RUN' && /\bnpm\s+(ci|install|i)\b/.test(i.args))
    expect(installs.length).to.be.at.least(2)
    for (const i of installs) expect(i.args, `line ${i.line}`).to.match(/--ignore-scripts\b/)
    for (const i of stages.flatMap((s) => s.instructions)) {
      expect(i.args, `line ${i.line}: no system packages (compilers, curl) in the image`).to.not.match(
        /\b(apt-get|apt|apk|yum|dnf)\s+(install|add)\b/,
      )
    }
    // and an `npm ci` outside Docker sends no Scarf analytics either
    expect(pkg.scarfSettings?.enabled).to.equal(false)
  })

  it(
    'installs production dependencies only in the runtime stage, and takes only ' + 'the bundle from the build stage',
    () => {
      const runs = runtime.instructions.filter((i) => i.keyword === 'RUN' && /\bnpm\s+(ci|install|i)\b/.test(i.args))
      expect(runs).to.have.length(1)
      expect(runs[0]!.args)
        .to.match(/\bnpm ci\b/)
        .and.to.match(/--omit=dev\b/)
      const copies = runtime.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
      for (const c of copies) {
        const from = /--from=(\S+)/.exec(c.args)?.[1]
        const sources = c.args
          .replace(/--[\w-]+=\S+\s*/g, '')
          .split(/\s+/)
          .slice(0, -1)
        expect(sources, `line ${c.line}: not the whole build context`).to.not.include('.')
        for (const s of sources) expect(s, `line ${c.line}`).to.not.match(/node_modules/)
        if (from !== undefined)
          expect(sources, `line ${c.line}: from the build stage, the bundle only`).to.deep.equal(['/app/dist'])
      }
      // What the platform reads at run time from the project root (common/paths.ts) is in the image.
      const copied = copies.map((c) => c.args.replace(/--[\w-]+=\S+\s*/g, '').split(/\s+/)[0]!)
      for (const needed of [
        'package.json',
        'schemas/avro',
        'schemas/released',
        'consumers/rest/mapping-sandbox-process.cjs',
        'console/assets',
        '/app/dist',
      ]) {
        expect(copied, `the runtime stage copies ${needed}`).to.include(needed)
      }
      expect(runtime.instructions.filter((i) => i.keyword === 'CMD').at(-1)?.args).to.include('dist/distributary.mjs')
    },
  )

  it('runs as a user that is not root', () => {
    const user = runtime.instructions.filter((i) => i.keyword === 'USER').at(-1)
    expect(user, 'USER in the runtime stage').to.not.equal(undefined)
    expect(user!.args.split(':')[0]).to.not.be.oneOf(['root', '0'])
    const cmd = runtime.instructions.findIndex((i) => i.keyword === 'CMD')
    expect(runtime.instructions.indexOf(user!)).to.be.below(cmd)
  })

  it(
    'checks its health with node against GET /health, and the check tells serving ' + 'from not serving',
    async function () {
      this.timeout(30_000)
      const { options, command } = healthcheckOf(runtime)
      expect(command.join(' '))
        .to.include('/health')
        .and.not.match(/\b(curl|wget)\b/)
      for (const o of ['interval', 'timeout', 'start-period', 'retries'])
        expect(options, `HEALTHCHECK --${o}`).to.have.property(o)
      let status = 200
      const server = http.createServer((req, res) => {
        res.statusCode = req.url === '/health' ? status : 404
        res.end('{}')
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const port = String((server.address() as AddressInfo).port)
      try {
        expect(await runCheck(command, { HTTP_PORT: port }), 'healthy').to.equal(0)
        status = 503
        expect(await runCheck(command, { HTTP_PORT: port }), 'answering 503').to.equal(1)
      } finally {
        await new Promise((resolve) => server.close(resolve))
      }
      expect(await runCheck(command, { HTTP_PORT: port }), 'nothing listening').to.equal(1)
    },
  )
})

describe('the platform service in docker-compose', () => {
  const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, Record<string, unknown>>
  }
  // Compose's own tag (2.24+): the override's ports replace the base service's instead of adding to them
  const override = { tag: '!override', collection: 'seq' as const, resolve: (v: unknown) => v }
  const three = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.three-brokers.yml'), 'utf8'), {
    merge: true,
    customTags: [override],
  }) as { services: Record<string, Record<string, unknown>> }
  const service = compose.services.distributary!

  it('restarts the platform and checks its health as the image does', () => {
    expect(service.restart).to.be.oneOf(['unless-stopped', 'always', 'on-failure'])
    const hc = service.healthcheck as {
      test: string[]
      interval: string
      timeout: string
      retries: number
      start_period: string
    }
    expect(hc.test[0]).to.equal('CMD')
    expect(hc.test.slice(1), 'the same command as the Dockerfile HEALTHCHECK').to.deep.equal(
      healthcheckOf(runtime).command,
    )
    expect(hc.interval).to.be.a('string')
    expect(hc.timeout).to.be.a('string')
    expect(hc.retries).to.be.a('number')
    expect(hc.start_period).to.be.a('string')
  })

  it("runs the partners' listener (SCRAM, ACLs enforced) as the local stack does, one per broker with three", () => {
    const env = compose.services.kafka!.environment as Record<string, string>
    expect(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP).to.include('PARTNER:SASL_PLAINTEXT')
    expect(env.KAFKA_LISTENER_NAME_PARTNER_SASL_ENABLED_MECHANISMS).to.equal('SCRAM-SHA-512')
    expect(env.KAFKA_AUTHORIZER_CLASS_NAME).to.equal('org.apache.kafka.metadata.authorizer.StandardAuthorizer')
    expect(env.KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND).to.equal('false')
    expect(compose.services.kafka!.ports).to.include('127.0.0.1:9094:9094')
    expect((service.environment as Record<string, string>).KAFKA_PARTNER_BOOTSTRAP_SERVERS).to.equal('127.0.0.1:9094')
    const hostPorts = (['kafka', 'kafka-2', 'kafka-3'] as const).flatMap((n) =>
      (three.services[n]!.ports as string[]).map((p) => p.split(':')[1]),
    )
    expect(hostPorts, 'no host port twice across the three brokers').to.deep.equal([...new Set(hostPorts)])
    expect(
      (three.services.distributary!.environment as Record<string, string>).KAFKA_PARTNER_BOOTSTRAP_SERVERS,
    ).to.equal('127.0.0.1:9098,127.0.0.1:9099,127.0.0.1:9100')
  })

  it('keeps both in the three-broker override, which changes only the brokers', () => {
    const over = three.services.distributary!
    expect(Object.keys(over)).to.deep.equal(['environment'])
    expect(service.build).to.equal('.')
  })
})

describe('the bundle the image runs', function () {
  this.timeout(60_000)

  it("imports production dependencies only (esbuild and the tests' registry client are dev dependencies)", async () => {
    await buildBundle()
    const code = fs.readFileSync(PLATFORM_BUNDLE, 'utf8')
    // static and dynamic imports, require/createRequire(...)(...) and require.resolve calls with a
    // literal name (esbuild renames a local `require` to require2, ...)
    const specifiers = new Set(
      [
        ...code.matchAll(
          /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\d*\s*\(\s*|\)\s*\(\s*|\.resolve\s*\(\s*)["']([^"'\s]+)["']/g,
        ),
      ].map((m) => m[1]!),
    )
    const builtins = new Set(builtinModules)
    const packages = new Set(
      [...specifiers]
        .filter(
          (s) =>
            /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/\S*)?$/i.test(s) &&
            !s.startsWith('node:') &&
            !builtins.has(s.split('/')[0]!),
        )
        .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!)),
    )
    expect([...packages], "the scan finds the bundle's packages").to.include.members([
      'kafkajs',
      'express',
      'mongodb',
      'avsc',
      'ajv8',
      'swagger-ui-dist',
      'htmx.org',
    ])
    const notProduction = [...packages].filter((p) => !(p in pkg.dependencies))
    expect(notProduction, 'packages the bundle imports that npm ci --omit=dev leaves out').to.deep.equal([])
    for (const dev of ['esbuild', '@kafkajs/confluent-schema-registry', 'tsx', 'typescript']) {
      expect(pkg.devDependencies, `${dev} is a dev dependency`).to.have.property(dev)
      expect(pkg.dependencies).to.not.have.property(dev)
    }
  })

  it('runs from cli/bin.js without esbuild (a production install): the bundle as built, or a clear error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'distributary-bin-'))
    try {
      fs.mkdirSync(path.join(dir, 'cli'))
      fs.mkdirSync(path.join(dir, 'dist'))
      fs.copyFileSync(path.join(ROOT, 'cli', 'bin.js'), path.join(dir, 'cli', 'bin.js'))
      fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}')
      // no node_modules here: esbuild cannot be found, and cli/build.mjs must not be run
      fs.writeFileSync(path.join(dir, 'cli', 'build.mjs'), 'process.exit(9)\n')
      const run = () =>
        spawnSync(process.execPath, [path.join(dir, 'cli', 'bin.js'), 'start'], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 15_000,
        })
      const missing = run()
      expect(missing.status, missing.stderr).to.equal(1)
      expect(missing.stderr).to.include('dist/distributary.mjs is not built').and.include('npm run build')
      fs.writeFileSync(
        path.join(dir, 'dist', 'distributary.mjs'),
        'console.log("bundle ran", process.argv.slice(2).join(" "))\n',
      )
      const built = run()
      expect(built.status, built.stderr).to.equal(0)
      expect(built.stdout.trim()).to.equal('bundle ran start')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
