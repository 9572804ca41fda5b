import { existsSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { FastifyInstance } from "fastify";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testApp } from "./helpers.js";

/**
 * /docs and /redoc in a real browser, reached the way a Service, an Ingress or a colleague
 * on the LAN reaches them: plain HTTP at a non-loopback address, where browsers treat the
 * origin as insecure (a CSP with upgrade-insecure-requests then breaks every script).
 */

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The first external IPv4 address (eth0 or the like). */
const address = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} missing (scripts/system-deps.sh test installs Debian's chromium)`
  : !address
    ? "no non-loopback IPv4 address on this machine"
    : undefined;
if (skip) console.warn(`docs-browser.test.ts skipped: ${skip}`);

/** Everything that went wrong while a page loaded. */
interface Trouble {
  failed: string[];
  errors: string[];
  violations: string[];
}

/** The page, what went wrong while it loaded, and the status of every path it fetched ("200 /favicon.ico"). */
async function open(browser: Browser, url: string): Promise<{ page: Page; trouble: Trouble; fetched: string[] }> {
  const page = await browser.newPage();
  const trouble: Trouble = { failed: [], errors: [], violations: [] };
  const fetched: string[] = [];
  page.on("requestfailed", (r) => trouble.failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) trouble.failed.push(`${r.url()}: ${r.status()}`);
    if (r.url().startsWith("http")) fetched.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error") trouble.errors.push(m.text());
  });
  page.on("pageerror", (e) => trouble.errors.push(String(e)));
  await page.exposeFunction("reportViolation", (v: string) => trouble.violations.push(v));
  // A string: the test's compiler has no DOM types.
  await page.evaluateOnNewDocument(
    'document.addEventListener("securitypolicyviolation", (e) => reportViolation(`${e.violatedDirective} ${e.blockedURI}`))',
  );
  await page.goto(url, { waitUntil: "networkidle0", timeout: 10_000 });
  return { page, trouble, fetched };
}

describe.skipIf(skip)(`/docs and /redoc in headless chromium at a LAN address${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let app: FastifyInstance;
  let browser: Browser;
  let base: string;
  beforeAll(async () => {
    app = await testApp();
    base = await app.listen({ host: address, port: 0 });
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root (CI containers) cannot use Chromium's sandbox.
      args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
    });
  }, 20_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it("Swagger UI renders every operation, with no failed request, CSP violation or console error", { timeout: 20_000 }, async () => {
    expect(base).toMatch(new RegExp(`^http://${address!.replaceAll(".", "\\.")}:\\d+$`));
    const { page, trouble } = await open(browser, `${base}/docs`);
    await page.waitForSelector(".opblock-summary-path", { timeout: 5_000 });
    const paths = await page.$$eval(".opblock-summary-path", (els) => els.map((e) => e.getAttribute("data-path")));
    expect(paths).toEqual(expect.arrayContaining(["/predict", "/predict/batch", "/predict/stream", "/health", "/models", "/metrics"]));
    expect(trouble).toEqual({ failed: [], errors: [], violations: [] });
    await page.close();
  });

  it("Try it out on /predict/stream shows the stream as text, not a JSON parse failure", { timeout: 20_000 }, async () => {
    const { page, trouble } = await open(browser, `${base}/docs`);
    const operation = "#operations-predict-post_predict_stream";
    await page.click(`${operation} .opblock-summary-control`);
    await page.waitForSelector(`${operation} .try-out__btn`, { timeout: 5_000 });
    await page.click(`${operation} .try-out__btn`);
    await page.click(`${operation} .execute`);
    const body = await page.waitForSelector(`${operation} .live-responses-table .response-col_description pre`, { timeout: 5_000 });
    const text = (await body!.evaluate((e) => e.textContent)) ?? "";
    expect(text).not.toMatch(/can't parse JSON/);
    expect(text).toMatch(/event: prediction\ndata: {"index":0,"prediction":-?\d/);
    expect(text).toMatch(/"done":true/);
    expect(trouble).toEqual({ failed: [], errors: [], violations: [] });
    await page.close();
  });

  it("ReDoc renders every operation, with no failed request (its footer logo included), CSP violation or console error", { timeout: 20_000 }, async () => {
    const { page, trouble, fetched } = await open(browser, `${base}/redoc`);
    await page.waitForSelector("[data-section-id]", { timeout: 5_000 });
    const sections = await page.$$eval("[data-section-id]", (els) => els.map((e) => e.getAttribute("data-section-id")));
    for (const path of ["~1predict/post", "~1predict~1batch/post", "~1predict~1stream/post", "~1health/get"]) {
      expect(sections.some((s) => s?.endsWith(`paths/${path}`)), path).toBe(true);
    }
    expect(await page.$$eval("img", (imgs) => imgs.map((i) => i.alt))).not.toContain("redocly logo");
    expect(fetched).toContain("200 /favicon.ico");
    expect(trouble).toEqual({ failed: [], errors: [], violations: [] });
    await page.close();
  });
});
