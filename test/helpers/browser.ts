/**
 * A real browser for the console's end-to-end tests: Debian's chromium (no browser download at
 * install time) driven by playwright-core. Where no chromium exists the suites skip, saying what to
 * install. Each page visited is screenshotted into test-results/console/ (git-ignored), checked with
 * axe-core in the page, and watched for Content-Security-Policy refusals.
 */
import fs from 'node:fs'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { PROJECT_ROOT } from '../../common/paths.ts'

export const CHROMIUM_MISSING =
  'no chromium found (CHROMIUM_PATH, /usr/bin/chromium): apt-get install chromium to run the browser tests'

/** CHROMIUM_PATH when set (only it: set it to a missing file to see the suites skip), else Debian's chromium. */
export function chromiumPath(): string | null {
  const given = process.env.CHROMIUM_PATH
  const candidates = given ? [given] : ['/usr/bin/chromium', '/usr/bin/chromium-browser']
  return candidates.find((p) => fs.existsSync(p)) ?? null
}

/** Chromium headless, without the background traffic it sends by default (a closed network floods with it). */
export function launchBrowser(executablePath: string): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

export const SCREENSHOTS = path.join(PROJECT_ROOT, 'test-results', 'console')

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true })
  const file = path.join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

const AXE = fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8')

export interface AxeViolation {
  id: string
  help: string
  nodes: string[]
}

/**
 * axe-core's WCAG 2 A and AA rules on the page as it is (every control labelled, keyboard reachable,
 * text contrast): the violations, none expected. Evaluated through the DevTools protocol, which the
 * page's Content-Security-Policy does not govern (a <script> tag would be refused, rightly).
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE)
  return page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: {
          run(
            ctx: unknown,
            o: unknown,
          ): Promise<{ violations: Array<{ id: string; help: string; nodes: Array<{ target: unknown[] }> }> }>
        }
      }
    ).axe
    const r = await axe.run((globalThis as unknown as { document: unknown }).document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    })
    return r.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => JSON.stringify(n.target)) }))
  })
}

/** Messages of Content-Security-Policy refusals the page logged (none expected: no inline script or style). */
export function watchCsp(page: Page): string[] {
  const refused: string[] = []
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) refused.push(m.text())
  })
  return refused
}
