// Browser end-to-end test of the sandbox console, in Debian's headless
// Chromium driven by playwright-core. Run by tests/e2e/console_browser.rs against
// a running `switchboard sandbox` and `switchboard run --metrics-addr`.
//
// Environment:
//   CONSOLE_URL      the console, e.g. http://127.0.0.1:4000/ (required)
//   SCREENSHOT_DIR   where to write the views' screenshots (optional)
//   CHROMIUM         the browser (default /usr/bin/chromium)
//
// Scenario A: bob opens Support, mentions the triage bot through completion,
//   asks for a refund; the agent's reply appears live, the message shows
//   "processed" and the rule that handled it. More questions show other
//   rules (faq), an event row (the escalation rule's thought) and a message
//   that ends failed, with its reason (the fixture workflows/compliance.yaml,
//   which the test runs beside the shipped workflows with --max-attempts 1).
//   A conversation: bob wants his money back, the rule asks which order and
//   the room's "Waiting for answers" panel (the agent's /conversations) shows
//   it waiting for bob; his answer moves it to asking carol.
// Scenario B: bob (no contact with the agent yet) sends the agent a contact
//   request from the console; the shipped workflows/contacts.yaml approves it.
//   Carol's is rejected by the same rule (she is not on the allowlist).
// Scenario C: bob and carol ask alice to connect; in the console alice
//   approves carol and rejects bob, creates a room, adds the triage bot and
//   gets its answer there (with keyboard-only mention completion).
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

// A last resort: whatever hangs, the script ends (each wait is bounded anyway).
setTimeout(() => {
  console.error(`e2e: FAIL at "${step}": the whole run took over 150 s`);
  process.exit(1);
}, 150_000).unref();

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

/**
 * Mentions the triage bot, asks `text`, waits for the rule and a reply. With
 * `keyboard`, only keys: `@tri`, Enter takes the completion, Enter sends.
 */
async function ask(page, text, rule, { keyboard = false } = {}) {
  const input = page.getByRole('combobox', { name: 'Message' });
  if (keyboard) {
    await input.focus();
    await input.pressSequentially('@tri');
    await expect('the completion opens', () => page.getByRole('option', { name: /Triage Bot/ }).waitFor());
    await input.press('Enter');
    const taken = await input.inputValue();
    if (taken !== '@alice/triage-bot ') throw new Error(`Enter took ${JSON.stringify(taken)}`);
    await input.pressSequentially(text);
    await input.press('Enter');
  } else {
    await input.fill(`@alice/triage-bot ${text}`);
    await input.press('Escape');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
  }
  const messages = page.getByRole('list', { name: 'Messages' });
  const mine = messages.locator('li.msg.mine', { hasText: text });
  await expect(`"${text}" appears`, () => mine.waitFor());
  await expect(`"${text}" is processed by ${rule}`, async () => {
    await mine.locator('.state[data-agent="alice/triage-bot"][data-status="processed"]').waitFor();
    await mine.locator(`.rule[data-rules="${rule}"]`).waitFor();
  });
  // The agent's answer (a reply or an event) follows the question.
  await expect(`the agent answers "${text}"`, () =>
    page.waitForFunction(([q]) => {
      const items = [...document.querySelectorAll('#messages li.msg')];
      const at = items.findIndex((li) => li.classList.contains('mine') && li.textContent.includes(q));
      return at >= 0 && items.slice(at + 1).some((li) => li.querySelector('.sender')?.textContent === 'Triage Bot');
    }, [text], { timeout: WAIT }));
}

/** Back to the user picker, then in as someone else. */
async function switchTo(page, name) {
  await page.getByRole('button', { name: 'Switch user' }).click();
  await page.getByRole('button', { name }).click();
  await expect('the socket connects', () =>
    page.getByRole('status').filter({ hasText: 'socket connected' }).waitFor());
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
  await shot(page, 'mention');
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

  step = 'A: more questions, other rules';
  await ask(page, 'What are your opening hours?', 'faq/opening-hours');
  await ask(page, 'Can you explain the warranty terms?', 'escalation/count-unanswered');
  await expect('the escalation rule\'s thought shows as an event row', () =>
    messages.locator('li.msg.event', { hasText: 'No rule answered this' }).waitFor());

  step = 'A: a message a rule refuses';
  await input.fill('@alice/triage-bot Should I call a lawyer about this?');
  await input.press('Escape');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const refused = messages.locator('li.msg.mine', { hasText: 'lawyer' });
  await expect('the refused message shows failed with the reason', () =>
    refused.locator('.state[data-agent="alice/triage-bot"][data-status="failed"]', { hasText: 'legal questions need a person, not the bot' }).waitFor());
  await expect('the refused message shows the failing rule', () =>
    refused.locator('.rule.failed[data-rules="compliance/no-legal-advice"]').waitFor());

  step = 'A: a conversation waits for an answer';
  const pending = page.getByRole('region', { name: 'Waiting for answers' });
  await ask(page, 'I want my money back', 'triage/money-back-needs-approval');
  await expect('the panel shows the rule waiting for bob', () =>
    pending.locator('li[data-rule="triage/money-back-needs-approval"][data-kind="wait_for"]', { hasText: '@bob' }).waitFor());
  await ask(page, "It's order 4711", 'triage/money-back-needs-approval');
  await expect('the bot asks carol to approve', () =>
    messages.locator('li.msg', { hasText: 'Approve a refund for order 4711' }).waitFor());
  await expect('the panel now shows the rule asking carol', () =>
    pending.locator('li[data-rule="triage/money-back-needs-approval"][data-kind="ask"]', { hasText: '@carol' }).waitFor());
  if (await pending.locator('li').count() !== 1) throw new Error('the answered wait is still listed');
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
  await contacts.getByLabel('Send a contact request to').fill('alice');
  await contacts.getByRole('button', { name: 'Send request' }).click();
  await expect('bob\'s request to alice is pending', () =>
    contacts.locator('#sent li[data-handle="alice"][data-status="pending"]').waitFor());

  step = 'B: carol is turned down';
  await switchTo(page, /Carol White/);
  await contacts.getByLabel('Send a contact request to').fill('alice/triage-bot');
  await contacts.getByRole('button', { name: 'Send request' }).click();
  await expect('carol\'s request is rejected (not on the allowlist)', () =>
    contacts.locator('#sent li[data-handle="alice/triage-bot"][data-status="rejected"]').waitFor());

  // ---------------------------------------------------------------- C
  step = 'C: alice approves carol, rejects bob';
  await contacts.getByLabel('Send a contact request to').fill('alice');
  await contacts.getByRole('button', { name: 'Send request' }).click();
  await expect('carol\'s request to alice is pending', () =>
    contacts.locator('#sent li[data-handle="alice"][data-status="pending"]').waitFor());
  await switchTo(page, /Alice Smith/);
  const approve = contacts.getByRole('button', { name: /Approve Carol White/ });
  await expect('alice sees carol\'s request', () => approve.waitFor());
  await expect('alice sees the Support conversation', () =>
    page.getByRole('list', { name: 'Messages' }).locator('li.msg', { hasText: 'lawyer' }).waitFor());
  await shot(page, 'contacts');
  await approve.click();
  await expect('carol is among alice\'s contacts', () =>
    contacts.locator('#contacts li[data-handle="carol"]').waitFor());
  await contacts.getByRole('button', { name: /Reject Bob Jones/ }).click();
  await expect('bob\'s request is gone once rejected', () =>
    contacts.locator('#received li[data-handle="bob"]').waitFor({ state: 'detached' }));
  if (await contacts.locator('#contacts li[data-handle="bob"]').count()) throw new Error('a rejected bob became a contact');

  step = 'C: alice creates a room and adds the triage bot';
  await page.getByLabel('New room').fill('Manuals');
  await page.getByRole('button', { name: 'Create room' }).click();
  await expect('the new room opens', () =>
    page.getByRole('heading', { name: 'Manuals', level: 2 }).waitFor());
  if (await page.locator('#pending').isVisible()) throw new Error('the Support room\'s pending conversation shows in Manuals');
  await page.getByLabel('Add an agent').selectOption({ label: 'Triage Bot (@alice/triage-bot)' });
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expect('the triage bot joins the room', () =>
    page.getByRole('list', { name: 'Participants' }).getByText('@alice/triage-bot').waitFor());
  await ask(page, 'Where is the manual for the router?', 'triage/manuals-to-docs', { keyboard: true });

  if (pageErrors.length) throw new Error(`the page logged errors: ${pageErrors.join(' | ')}`);
}

try {
  await main();
  console.log('e2e: PASS (A: mention, reply, processed, rules, a pending conversation; B: contact approved and rejected by the workflow; C: approve and reject in the console, new room, agent added and answering)');
  process.exitCode = 0;
} catch (e) {
  console.error(`e2e: FAIL at "${step}": ${e.message}`);
  if (pageErrors.length) console.error(`e2e: page errors: ${pageErrors.join(' | ')}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
