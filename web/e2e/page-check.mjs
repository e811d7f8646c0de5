// Drives the gateway's page in headless Chromium (Debian's, through playwright-core), as a
// person would use it: live prices change, the chart has candles and grows, a backtest run
// from the form shows metrics, a parameter sweep started from its panel shows its progress (over
// Server-Sent Events) up to the end and its best results, and /docs renders the operations.
// Screenshots go to --out.
//
//   node e2e/page-check.mjs --url http://127.0.0.1:8080 --out /tmp/shots
//
// Prints one JSON line of what it saw and exits 0, or prints "page check failed at <step>:
// <why>" on stderr (with a screenshot of that moment) and exits 1.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    out: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" },
    "price-timeout-s": { type: "string", default: "30" },
    "backtest-timeout-s": { type: "string", default: "90" },
    "sweep-timeout-s": { type: "string", default: "60" },
  },
});
if (!args.url || !args.out) {
  console.error("usage: page-check.mjs --url <gateway URL> --out <screenshot dir>");
  process.exit(2);
}
const base = new URL(args.url);
const priceTimeoutMs = Number(args["price-timeout-s"]) * 1000;
const backtestTimeoutMs = Number(args["backtest-timeout-s"]) * 1000;
const sweepTimeoutMs = Number(args["sweep-timeout-s"]) * 1000;
mkdirSync(args.out, { recursive: true });

class CheckFailed extends Error {}

let step = "launching Chromium";
const seen = { screenshots: {} };
const foreign = new Set(); // requests to anywhere but the gateway: the page must need none
const pageErrors = [];

let browser;
let page;

/** Waits for `predicate` (run in the page) to be truthy; fails the step with `why` if it never is. */
async function waitInPage(why, timeoutMs, predicate, arg) {
  try {
    return await (await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 100 })).jsonValue();
  } catch (error) {
    throw new CheckFailed(`${why} (waited ${timeoutMs / 1000} s)${pageErrors.length ? ` (page errors: ${pageErrors.join("; ")})` : ""}`);
  }
}

async function shot(name, fullPage = true) {
  const path = join(args.out, `${name}.png`);
  await page.screenshot({ path, fullPage });
  seen.screenshots[name] = path;
}

try {
  browser = await chromium.launch({
    executablePath: args.chromium,
    // Root in a container has no user namespaces for Chromium's sandbox.
    args: ["--no-sandbox"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (!["data:", "blob:"].includes(url.protocol) && url.host !== base.host) foreign.add(url.href);
  });
  page.on("pageerror", (error) => pageErrors.push(error.message));

  step = "loading /";
  const response = await page.goto(new URL("/", base).href, { waitUntil: "load" });
  if (!response || response.status() !== 200) {
    throw new CheckFailed(`GET / answered ${response?.status()}: ${(await response?.text())?.slice(0, 300)}`);
  }

  step = "live prices";
  const cell = '#price-rows tr[data-symbol="BTCUSDT"] td.price';
  const first = await waitInPage("no BTCUSDT price shown", priceTimeoutMs, (s) => document.querySelector(s)?.textContent || null, cell);
  const changed = await waitInPage(
    `the BTCUSDT price never changed from ${first}`,
    priceTimeoutMs,
    ([s, before]) => {
      const now = document.querySelector(s)?.textContent;
      return now && now !== before ? now : null;
    },
    [cell, first],
  );
  seen.price = { symbol: "BTCUSDT", first, changed, status: await page.textContent("#feed-status") };
  if (seen.price.status !== "live") throw new CheckFailed(`the feed status reads "${seen.price.status}", not "live"`);

  step = "candle chart";
  const candles = await waitInPage("the chart shows no candles", 15_000, () => {
    const chart = document.getElementById("chart");
    return Number(chart?.dataset.candles) > 0 && chart?.querySelector("canvas") ? Number(chart.dataset.candles) : null;
  });
  const firstOpen = Number(await page.getAttribute("#chart", "data-last-open"));
  const grownOpen = await waitInPage(
    "the chart's last candle never moved on",
    priceTimeoutMs,
    (before) => {
      const open = Number(document.getElementById("chart")?.dataset.lastOpen);
      return open > before ? open : null;
    },
    firstOpen,
  );
  seen.chart = { candles, lastOpen: firstOpen, grownTo: grownOpen };

  step = "backtest form";
  await waitInPage("no strategies listed in the form", 15_000, () => document.querySelectorAll("#bt-strategy option").length > 0);
  await page.selectOption("#bt-strategy", "sma_crossover");
  await page.fill('#bt-parameters input[name="param.fast"]', "5");
  await page.fill('#bt-parameters input[name="param.slow"]', "20");
  await page.click("#bt-form button[type=submit]");
  const outcome = await waitInPage("the backtest showed neither metrics nor an error", backtestTimeoutMs, () => {
    const error = document.getElementById("backtest-error");
    if (error && !error.hidden) return { error: error.textContent };
    const rows = [...document.querySelectorAll("#bt-metrics tr")];
    const points = Number(document.getElementById("bt-equity")?.dataset.points);
    if (rows.length === 0 || !(points > 0)) return null;
    return { metrics: Object.fromEntries(rows.map((r) => [r.dataset.metric, r.cells[1].textContent])), points };
  });
  if (outcome.error) throw new CheckFailed(`the page shows the error "${outcome.error}"`);
  seen.backtest = outcome;

  step = "parameter sweep";
  // sma_crossover, fast 5 and 10, slow 20 and 40: four combinations, over the backtest's bars.
  const grid = { fast: [5, 10, 5], slow: [20, 40, 20] };
  const combinations = 4;
  await waitInPage("no strategies listed in the sweep panel", 15_000, () => document.querySelectorAll("#sw-strategy option").length > 0);
  await page.selectOption("#sw-strategy", "sma_crossover");
  for (const [name, values] of Object.entries(grid)) {
    for (const [i, part] of ["start", "stop", "step"].entries()) {
      await page.fill(`#sw-parameters input[name="grid.${name}.${part}"]`, String(values[i]));
    }
  }
  await page.selectOption("#sw-rank", "sharpe");
  await page.click("#sw-start");
  const swept = await waitInPage("the sweep showed neither its results nor an error", sweepTimeoutMs, () => {
    const error = document.getElementById("sweep-error");
    if (error && !error.hidden) return { error: error.textContent };
    const status = document.getElementById("sw-status");
    const state = status?.dataset.state;
    if (state === "cancelled" || state === "failed") return { error: `the sweep ended ${state}: ${status.textContent}` };
    const table = document.getElementById("sw-results");
    const rows = [...document.querySelectorAll("#sw-results tbody tr")];
    if (state !== "done" || !table || table.hidden || rows.length === 0) return null;
    const progress = document.getElementById("sw-progress");
    return {
      progress: { value: progress.value, max: progress.max, frames: Number(progress.dataset.frames) },
      status: status.textContent,
      columns: [...table.querySelectorAll("thead th")].map((th) => th.textContent),
      results: rows.map((row) => [...row.cells].map((cell) => cell.textContent)),
      export: document.getElementById("sw-export")?.getAttribute("href") ?? null,
    };
  });
  if (swept.error) throw new CheckFailed(`the sweep panel shows the error "${swept.error}"`);
  if (swept.progress.max !== combinations || swept.progress.value !== swept.progress.max) {
    throw new CheckFailed(`the progress bar ended at ${swept.progress.value} of ${swept.progress.max}, not ${combinations} of ${combinations}`);
  }
  if (!(swept.progress.frames > 0)) throw new CheckFailed("the progress bar was never fed by the watch stream (no SSE message)");
  if (swept.results.length !== combinations) {
    throw new CheckFailed(`the results table has ${swept.results.length} rows, not ${combinations}: ${JSON.stringify(swept.results)}`);
  }
  if (!swept.export) throw new CheckFailed("no CSV export link under the sweep results");
  swept.csv = await page.evaluate(async (href) => {
    const response = await fetch(href);
    const lines = (await response.text()).trim().split(/\r?\n/);
    return { status: response.status, contentType: response.headers.get("content-type"), header: lines[0], rows: lines.length - 1 };
  }, swept.export);
  if (swept.csv.status !== 200) throw new CheckFailed(`GET ${swept.export} answered ${swept.csv.status}: ${swept.csv.header}`);
  seen.sweep = swept;
  await shot("web-page");

  step = "Swagger UI at /docs";
  const docs = await page.goto(new URL("/docs", base).href, { waitUntil: "load" });
  if (!docs || docs.status() !== 200) throw new CheckFailed(`GET /docs answered ${docs?.status()}`);
  const operations = await waitInPage("Swagger UI rendered no operations", 30_000, () => {
    const paths = [...document.querySelectorAll(".opblock-summary-path")].map((e) => e.textContent.replace(/\u200b/g, ""));
    return paths.includes("/api/backtests") && paths.includes("/api/candles/{symbol}/{interval}") ? paths.length : null;
  });
  seen.docs = { operations };
  await shot("docs", false);

  step = "what the page loaded";
  if (foreign.size) throw new CheckFailed(`requests left the gateway: ${[...foreign].join(", ")}`);
  if (pageErrors.length) throw new CheckFailed(`uncaught errors in the page: ${pageErrors.join("; ")}`);
  console.log(JSON.stringify(seen));
} catch (error) {
  const why = error instanceof CheckFailed ? error.message : error.stack ?? String(error);
  console.error(`page check failed at ${step}: ${why}`);
  if (page) {
    await shot("failure");
    console.error(`screenshot of the failure: ${seen.screenshots.failure}`);
  }
  process.exitCode = 1;
} finally {
  await browser?.close();
}
