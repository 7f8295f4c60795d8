// Browser end-to-end test of the sandbox console, in Debian's headless
// Chromium driven by playwright-core. Run by tests/console_browser.rs against
// a running `switchboard sandbox` and `switchboard run --metrics-addr`.
//
// Environment:
//   CONSOLE_URL      the console, e.g. http://127.0.0.1:4000/ (required)
//   SCREENSHOT_DIR   where to write the views' screenshots (optional)
//   CHROMIUM         the browser (default /usr/bin/chromium)
//
// Scenario A: bob opens Support, mentions the triage bot through completion,
//   asks for a refund; the agent's reply appears live, the message shows
//   "processed" and the rule that handled it.
// Scenario B: bob (no contact with the agent yet) sends the agent a contact
//   request from the console; the shipped workflows/contacts.yaml approves it.
//   Carol's request is rejected by the same rule (she is not on the allowlist).
//
// Every wait is bounded (15 s); any failure exits non-zero with a message.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.CONSOLE_URL;
const shots = process.env.SCREENSHOT_DIR || '';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 15_000;

if (!url) {
  console.error('e2e: set CONSOLE_URL to the console (http://127.0.0.1:PORT/)');
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), 'console-e2e-'));
let browser;
let step = 'start';
const pageErrors = [];

async function shot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`) });
  console.log(`e2e: screenshot ${join(shots, `${name}.png`)}`);
}

/** Fails the step with `message` unless `fn` resolves within WAIT. */
async function expect(message, fn) {
  try {
    await fn();
  } catch (e) {
    throw new Error(`${message}: ${e.message.split('\n')[0]}`);
  }
}

async function main() {
  step = 'launch chromium';
  // A fresh profile each run; Playwright passes it as --user-data-dir (it
  // refuses that flag in `args`, so a persistent context is how to set it).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    timeout: WAIT,
    viewport: { width: 1360, height: 820 },
    // Without the background-networking flags Chromium keeps trying to reach
    // Google services, which floods a closed network with failing requests.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  browser = context;
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });

  step = 'open the console';
  await page.goto(url, { timeout: WAIT });
  await expect('the user picker lists the seeded people', () =>
    page.getByRole('button', { name: /Bob Jones/ }).waitFor());
  await shot(page, 'users');

  // ---------------------------------------------------------------- A
  step = 'A: pick bob';
  await page.getByRole('button', { name: /Bob Jones/ }).click();
  await expect('the socket connects', () =>
    page.getByRole('status').filter({ hasText: 'socket connected' }).waitFor());
  await expect('bob sees the Support room', () =>
    page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /Support/ }).waitFor());

  step = 'A: open Support';
  await page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /Support/ }).click();
  await expect('the room opens', () =>
    page.getByRole('heading', { name: 'Support', level: 2 }).waitFor());
  await expect('the triage bot is listed as a participant', () =>
    page.getByRole('list', { name: 'Participants' }).getByText('@alice/triage-bot').waitFor());

  step = 'A: mention completion';
  const input = page.getByRole('combobox', { name: 'Message' });
  await input.click();
  await input.pressSequentially('@tri');
  const option = page.getByRole('option', { name: /Triage Bot/ });
  await expect('typing @tri offers the triage bot', () => option.waitFor());
  await option.click();
  const taken = await input.inputValue();
  if (taken !== '@alice/triage-bot ') throw new Error(`the completion wrote ${JSON.stringify(taken)}, not "@alice/triage-bot "`);
  await input.pressSequentially('I need a refund');
  await page.getByRole('button', { name: 'Send', exact: true }).click();

  step = 'A: the message and the reply';
  const messages = page.getByRole('list', { name: 'Messages' });
  const mine = messages.locator('li.msg.mine', { hasText: 'I need a refund' });
  await expect('bob\'s message appears (live, over the socket)', () => mine.waitFor());
  const shown = (await mine.locator('.content').innerText()).trim();
  if (shown !== '@alice/triage-bot I need a refund') throw new Error(`the message reads ${JSON.stringify(shown)}`);
  const reply = messages.locator('li.msg', { hasText: "I've asked alice/billing-agent to help you with this." });
  await expect('the agent\'s reply appears', () => reply.waitFor());
  if (!(await reply.locator('.sender').innerText()).includes('Triage Bot')) throw new Error('the reply is not from Triage Bot');
  await expect('bob\'s message shows processed for the triage bot', () =>
    mine.locator('.state[data-agent="alice/triage-bot"][data-status="processed"]').waitFor());
  await expect('bob\'s message shows the rule that handled it', () =>
    mine.locator('.rule[data-rules="triage/refunds-to-billing"]').waitFor());
  const rule = await mine.locator('.rule').innerText();
  if (!rule.includes('add_participant') || !rule.includes('reply')) throw new Error(`rule label without its actions: ${rule}`);
  await expect('the billing agent joined the room', () =>
    page.getByRole('list', { name: 'Participants' }).getByText('@alice/billing-agent').waitFor());
  await shot(page, 'room');

  // ---------------------------------------------------------------- B
  step = 'B: bob asks the agent to connect';
  const contacts = page.getByRole('complementary', { name: 'Contacts' });
  await contacts.getByLabel('Send a contact request to').fill('alice/triage-bot');
  await contacts.getByLabel(/^Message/).fill('Hi, I am Bob from support.');
  await contacts.getByRole('button', { name: 'Send request' }).click();
  await expect('the request is approved by workflows/contacts.yaml', () =>
    contacts.locator('#sent li[data-handle="alice/triage-bot"][data-status="approved"]').waitFor());
  await expect('the agent is now among bob\'s contacts', () =>
    contacts.locator('#contacts li[data-handle="alice/triage-bot"]').waitFor());
  await shot(page, 'contacts');

  step = 'B: carol is turned down';
  await page.getByRole('button', { name: 'Switch user' }).click();
  await page.getByRole('button', { name: /Carol White/ }).click();
  await contacts.getByLabel('Send a contact request to').fill('alice/triage-bot');
  await contacts.getByRole('button', { name: 'Send request' }).click();
  await expect('carol\'s request is rejected (not on the allowlist)', () =>
    contacts.locator('#sent li[data-handle="alice/triage-bot"][data-status="rejected"]').waitFor());

  if (pageErrors.length) throw new Error(`the page logged errors: ${pageErrors.join(' | ')}`);
}

try {
  await main();
  console.log('e2e: PASS (scenario A: mention, reply, processed, rule; scenario B: contact approved, and rejected)');
  process.exitCode = 0;
} catch (e) {
  console.error(`e2e: FAIL at "${step}": ${e.message}`);
  if (pageErrors.length) console.error(`e2e: page errors: ${pageErrors.join(' | ')}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
