// Browser test of `gradcam serve`: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser download) against the built binary on 127.0.0.1.
//
//   cargo build --release && (cd tests/browser && npm ci && node test.mjs)
//
// It uploads assets/cat_dog.jpg, checks that the top-1 is bull mastiff, picks "tabby", checks
// that the heat map changed and the box is shown, then exercises the slider, the method and
// layer menus, deepfeaturefactorization's concepts, the download and a phone-sized screen. The desktop screenshot goes to
// docs/serve.png (GRADCAM_SCREENSHOT to change it). GRADCAM_BIN and CHROMIUM override the paths.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.GRADCAM_BIN || path.join(root, "target/release/gradcam");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const image = path.join(root, "assets/cat_dog.jpg");
const screenshot = process.env.GRADCAM_SCREENSHOT || path.join(root, "docs/serve.png");
const TIMEOUT = 120_000;

function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForHealth(base, server) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`gradcam serve exited with ${server.exitCode}`);
    try {
      const r = await fetch(base + "/healthz");
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("gradcam serve did not come up");
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const server = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`], { stdio: ["ignore", "inherit", "inherit"] });
const userDataDir = mkdtempSync(path.join(tmpdir(), "gradcam-chromium-"));
let context = null;
const problems = [];

try {
  await waitForHealth(base, server);
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1280, height: 820 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // Nothing but the server itself may be contacted (no CDN).
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(base) && !url.startsWith("data:") && !url.startsWith("blob:")) problems.push("external request: " + url);
  });

  await page.goto(base + "/");
  await page.waitForFunction(() => document.querySelector("#model-info").textContent.includes("efficientnet_lite0"));
  check((await page.locator("#method option").count()) >= 2, "the method menu lists the methods");

  // Upload: the top-5 appears, bull mastiff first, with its map and box.
  await page.setInputFiles("#file", image);
  await page.waitForFunction(() => document.querySelectorAll("#top5 .cls").length === 5);
  const top1 = (await page.locator("#top5 .cls").first().locator(".name").textContent()).trim();
  check(top1 === "bull mastiff", `top-1 is bull mastiff, got ${top1}`);
  await page.waitForFunction(() => (document.querySelector("#heat").getAttribute("src") || "").startsWith("data:image/png"));
  const mastiffHeat = await page.getAttribute("#heat", "src");
  await page.locator("#box").waitFor({ state: "visible" });
  check((await page.locator("#box-label").textContent()) === "bull mastiff", "the box is labelled bull mastiff");

  // Pick "tabby" (7th, not in the top-5) from the class search.
  await page.fill("#class-search", "tabby");
  const tabby = page.locator("#suggestions button", { has: page.locator(".label", { hasText: /^tabby$/ }) });
  await tabby.first().click();
  await page.waitForFunction((before) => {
    const src = document.querySelector("#heat").getAttribute("src");
    return src && src !== before && document.querySelector(".cls.selected .name")?.textContent === "tabby";
  }, mastiffHeat);
  await page.waitForFunction(() => document.querySelector("#box-label").textContent === "tabby");
  check(await page.locator("#box").isVisible(), "the box is shown for tabby");
  const geometry = await page.evaluate(() => {
    const photo = document.querySelector("#photo").getBoundingClientRect();
    const box = document.querySelector("#box").getBoundingClientRect();
    const heat = document.querySelector("#heat");
    return { photo: [photo.top, photo.height], box: [box.top, box.height, box.width], heat: heat.naturalWidth };
  });
  check(geometry.heat === 640, `the heat map decodes at the image's width, got ${geometry.heat}`);
  check(geometry.box[1] > 10 && geometry.box[2] > 10, "the box has a size");
  const center = (geometry.box[0] + geometry.box[1] / 2 - geometry.photo[0]) / geometry.photo[1];
  check(center > 0.5, `the tabby's box is on the cat, in the lower half (centre at ${center.toFixed(2)})`);
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshot, fullPage: true });

  // The opacity slider acts on the heat map alone, at once.
  await page.locator("#opacity").fill("70");
  check((await page.evaluate(() => getComputedStyle(document.querySelector("#heat")).opacity)) === "0.7", "opacity 0.7");

  // The box toggle.
  await page.uncheck("#show-box", { force: true });
  check(!(await page.locator("#box").isVisible()), "the box hides");
  await page.check("#show-box", { force: true });
  check(await page.locator("#box").isVisible(), "the box shows again");

  // Switching method, then layer, gives new maps for the same class.
  let before = await page.getAttribute("#heat", "src");
  await page.selectOption("#method", "gradcam++");
  await page.waitForFunction((b) => document.querySelector("#heat").getAttribute("src") !== b
    && document.querySelector("#details").textContent.includes("gradcam++"), before);
  check((await page.locator(".cls.selected .name").textContent()) === "tabby", "the class stays tabby");
  before = await page.getAttribute("#heat", "src");
  await page.selectOption("#layer", "blocks.15");
  await page.waitForFunction((b) => document.querySelector("#heat").getAttribute("src") !== b
    && document.querySelector("#details").textContent.includes("blocks.15"), before);

  // Clicking a top-5 class shows its map.
  before = await page.getAttribute("#heat", "src");
  await page.locator("#top5 .cls").nth(1).click();
  await page.waitForFunction((b) => document.querySelector("#heat").getAttribute("src") !== b
    && document.querySelector("#box-label").textContent === "boxer", before);

  // Download: the server-made overlay, a PNG of the original size.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const png = readFileSync(await download.path());
  check(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), "the download is a PNG");
  check(png.readUInt32BE(16) === 640 && png.readUInt32BE(20) === 480, "the overlay has the original size");
  check(download.suggestedFilename() === "cat_dog.gradcam++.c242.png", `file name ${download.suggestedFilename()}`);

  // deepfeaturefactorization: at blocks.15 a clear error (no linear classifier follows it); at
  // the default layer the combined picture and one labelled overlay per concept (4).
  await page.selectOption("#method", "deepfeaturefactorization");
  await page.waitForFunction(() => /global average pooling/.test(document.querySelector("#status").textContent));
  await page.selectOption("#layer", "");
  await page.waitForFunction(() => !document.querySelector("#concepts").hidden
    && document.querySelectorAll("#concepts figure").length === 5);
  const captions = await page.locator("#concepts figcaption").allTextContents();
  check(captions[0] === "4 concepts at head", `combined caption: ${captions[0]}`);
  check(captions.slice(1).every((c, i) => c.startsWith(`concept ${i + 1}: `)), `concept captions: ${captions}`);
  const sizes = await page.evaluate(() => [...document.querySelectorAll("#concepts img")].map((i) => i.naturalWidth));
  check(sizes.every((w) => w === 640), `the concept pictures have the image's width: ${sizes}`);
  await page.selectOption("#method", "gradcam");
  await page.waitForFunction(() => document.querySelector("#concepts").hidden
    && (document.querySelector("#heat").getAttribute("src") || "").startsWith("data:"));

  // A bad upload gives a readable error, and the page goes on working.
  await page.setInputFiles("#file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not an image") });
  await page.waitForFunction(() => document.querySelector("#status").classList.contains("error"));
  const message = await page.locator("#status").textContent();
  check(/not a recognised image/.test(message), `error shown: ${message}`);

  // Phone-sized screen: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.setInputFiles("#file", image);
  await page.waitForFunction(() => document.querySelectorAll("#top5 .cls").length === 5
    && (document.querySelector("#heat").getAttribute("src") || "").startsWith("data:"));
  const layout = await page.evaluate(() => {
    const stage = document.querySelector(".stage-card").getBoundingClientRect();
    const side = document.querySelector(".side").getBoundingClientRect();
    return { scroll: document.documentElement.scrollWidth, width: innerWidth, stacked: side.top >= stage.bottom - 1 };
  });
  check(layout.scroll <= layout.width, `no horizontal scrolling on a phone (${layout.scroll} > ${layout.width})`);
  check(layout.stacked, "the panels stack on a phone");
  if (process.env.GRADCAM_SCREENSHOT_MOBILE) await page.screenshot({ path: process.env.GRADCAM_SCREENSHOT_MOBILE, fullPage: true });

  // The expected error of the text upload is the only one the console may show.
  const unexpected = problems.filter((p) => !p.includes("422") && !p.includes("400"));
  check(unexpected.length === 0, "no page errors:\n" + unexpected.join("\n"));
  console.log(`browser test passed; screenshot: ${path.relative(root, screenshot)}`);
} finally {
  if (context) await context.close();
  server.kill("SIGTERM");
  await new Promise((r) => (server.exitCode !== null ? r() : server.once("exit", r)));
  rmSync(userDataDir, { recursive: true, force: true });
}
