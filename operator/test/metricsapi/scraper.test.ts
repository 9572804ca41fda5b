import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type Clock, systemClock } from "../../src/controller/clock.js";
import { MetricStore } from "../../src/metricsapi/rates.js";
import { type ScrapeOutcome, Scraper, type ScraperOptions, type Target } from "../../src/metricsapi/scraper.js";
import { freePort, waitFor } from "../../../test-support/wait.js";

/**
 * The scraper against real HTTP servers on 127.0.0.1, one per way a pod can answer: as it
 * should, too slowly, too much, garbage, an error status, or not at all.
 */

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.close(r), s.closeAllConnections()))));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
}

const exposition = (requests: number, queued?: number) =>
  [
    "# HELP http_requests_total HTTP requests",
    "# TYPE http_requests_total counter",
    `http_requests_total{route="/predict",method="POST",status="200"} ${requests}`,
    `http_requests_total{route="/health",method="GET",status="200"} ${requests * 7}`,
    ...(queued === undefined ? [] : ["# TYPE model_queued_rows gauge", `model_queued_rows ${queued}`]),
    "",
  ].join("\n");

/** A server whose counter follows `counts`, one per scrape (the last repeats). */
const counting = (counts: number[], queued?: number) => {
  let hits = 0;
  return serve((_, res) => {
    const n = counts[Math.min(hits++, counts.length - 1)]!;
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(exposition(n, queued));
  });
};

const TOTAL = 64 * 1024 * 1024;
interface Streamed {
  written: number;
  finished: boolean;
}
/** Streams TOTAL bytes as fast as the client reads them; `seen` gets what it wrote by the time the connection closed. */
function huge(seen: Streamed[], declareLength: boolean) {
  return serve((_, res) => {
    res.writeHead(200, declareLength ? { "content-length": TOTAL } : {});
    const chunk = Buffer.alloc(64 * 1024, "#");
    let written = 0;
    res.on("close", () => seen.push({ written, finished: res.writableFinished }));
    const pump = () => {
      while (written < TOTAL) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
  });
}

/** Answers after `ms` (never, by default); `closed` counts requests the client gave up on. */
function slow(ms = Infinity) {
  const state = { requests: 0, closed: 0 };
  const url = serve((req, res) => {
    state.requests++;
    req.socket.on("close", () => state.closed++);
    if (ms !== Infinity) setTimeout(() => res.end(exposition(1)), ms);
  });
  return { state, url };
}

const target = (uid: string, url: string): Target => ({ uid, namespace: "ns", name: `pod-${uid}`, url });

function scraper(targets: () => Target[], options: Partial<ScraperOptions> = {}) {
  const counted: ScrapeOutcome[] = [];
  const store = new MetricStore({ windowMs: 60_000, staleMs: 60_000 });
  const s = new Scraper({
    targets,
    store,
    clock: systemClock,
    intervalMs: 1000,
    timeoutMs: 300,
    concurrency: 8,
    maxBodyBytes: 256 * 1024,
    onScrape: (outcome) => counted.push(outcome),
    ...options,
  });
  return { s, store, counted };
}

describe("Scraper", () => {
  it("tells each way a pod can answer apart, and no pod holds up the others beyond the timeout", async () => {
    const seen: Streamed[] = [];
    const hung = slow();
    const targets = [
      target("ok", await counting([10], 3)),
      target("slow", await hung.url),
      target("huge", await huge(seen, false)),
      target("declared", await huge(seen, true)),
      target("garbage", await serve((_, res) => res.end("<html><body>hello</body></html>"))),
      target("status", await serve((_, res) => res.writeHead(500).end(exposition(5)))),
      target("refused", `http://127.0.0.1:${await freePort()}/metrics`),
    ];
    const outcomes: ScrapeOutcome[] = [];
    // A timeout long enough that, on a busy machine, only the pod that never answers reaches it.
    const { s, store } = scraper(() => targets, { onScrape: (o) => outcomes.push(o), timeoutMs: 1500 });
    const started = performance.now();
    await s.scrape();
    expect(performance.now() - started).toBeLessThan(1500 + 2000);
    expect(outcomes.sort()).toEqual(["error", "error", "error", "ok", "timeout", "too_large", "too_large"]);
    expect(s.rounds).toBe(1);
    expect(s.ready).toBe(false);
    expect(store.value("ok", "queued_rows", Date.now())?.value).toBe(3);
    for (const uid of ["slow", "huge", "declared", "garbage", "status", "refused"]) expect(store.value(uid, "queued_rows", Date.now()), uid).toBeUndefined();
    // The client went away: the slow pod's request and both huge bodies, long before their end.
    await waitFor("the servers to see the client leave", () => hung.state.closed === 1 && seen.length === 2);
    for (const s of seen) {
      expect(s.finished).toBe(false);
      expect(s.written).toBeLessThan(TOTAL / 4);
    }
  });

  it("records each pod's counter at the scrape's time: rates, across a server restart", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const clock: Clock = { now: () => now, setTimeout: systemClock.setTimeout };
    const targets = [target("steady", await counting([100, 110, 120, 130])), target("restarted", await counting([100, 200, 5, 15], 0))];
    const { s, store } = scraper(() => targets, { clock });
    for (let round = 0; round < 4; round++) {
      await s.scrape();
      now += 5000;
    }
    now -= 5000;
    expect(s.rounds).toBe(4);
    expect(s.ready).toBe(true);
    expect(store.value("steady", "requests_per_second", now)).toEqual({ value: 2, windowSeconds: 15, timestamp: now });
    expect(store.value("restarted", "requests_per_second", now)?.value).toBeCloseTo((100 + 5 + 10) / 15);
    expect(store.value("restarted", "queued_rows", now)?.value).toBe(0);
  });

  it("drops the pods that are no longer targets", async () => {
    const url = await counting([1, 2]);
    let targets = [target("a", url), target("b", url)];
    const { s, store } = scraper(() => targets);
    await s.scrape();
    expect(store.value("b", "requests_per_second", Date.now())).toBeUndefined();
    await s.scrape();
    expect(store.value("b", "requests_per_second", Date.now())).toBeDefined();
    targets = [target("a", url)];
    await s.scrape();
    expect(store.value("a", "requests_per_second", Date.now())).toBeDefined();
    expect(store.value("b", "requests_per_second", Date.now())).toBeUndefined();
  });

  it("scrapes at most `concurrency` pods at once, and never starts a round before the last ended", async () => {
    let inFlight = 0;
    let most = 0;
    const perPod = new Map<string, { now: number; most: number }>();
    const url = await serve((req, res) => {
      const pod = perPod.get(req.url!) ?? { now: 0, most: 0 };
      perPod.set(req.url!, pod);
      inFlight++;
      pod.now++;
      most = Math.max(most, inFlight);
      pod.most = Math.max(pod.most, pod.now);
      setTimeout(() => {
        inFlight--;
        pod.now--;
        res.end(exposition(1));
      }, 60);
    });
    const targets = Array.from({ length: 5 }, (_, i) => target(`p${i}`, `${url}?pod=${i}`));
    // A round takes about 3 × 60 ms; the interval is far shorter.
    const { s, counted } = scraper(() => targets, { concurrency: 2, intervalMs: 10 });
    s.start();
    await waitFor("three rounds", () => s.rounds >= 3, 10_000);
    await s.stop();
    expect(most).toBe(2);
    expect([...perPod.values()].map((p) => p.most)).toEqual([1, 1, 1, 1, 1]);
    expect(counted.every((o) => o === "ok")).toBe(true);
  });

  it("waits out the interval from a round's start, and stops", async () => {
    const hits: number[] = [];
    const url = await serve((_, res) => {
      hits.push(performance.now());
      res.end(exposition(hits.length));
    });
    const { s } = scraper(() => [target("a", url)], { intervalMs: 150 });
    s.start();
    s.start();
    await waitFor("three rounds", () => s.rounds >= 3, 10_000);
    await s.stop();
    const rounds = s.rounds;
    await new Promise((r) => setTimeout(r, 400));
    expect(s.rounds).toBe(rounds);
    expect(hits.length).toBe(rounds);
    for (let i = 1; i < hits.length; i++) expect(hits[i]! - hits[i - 1]!).toBeGreaterThanOrEqual(140);
  });

  it("stop() aborts a round under way: no outcome counted, no round completed", async () => {
    const hung = slow();
    const url = await hung.url;
    const { s, counted } = scraper(() => [target("a", url)], { timeoutMs: 30_000 });
    s.start();
    await waitFor("the request", () => hung.state.requests === 1);
    const started = performance.now();
    await s.stop();
    expect(performance.now() - started).toBeLessThan(1000);
    await waitFor("the server to see the client leave", () => hung.state.closed === 1);
    expect(counted).toEqual([]);
    expect(s.rounds).toBe(0);
  });

  it("sends the target's headers", async () => {
    let got: string | undefined;
    const url = await serve((req, res) => {
      got = req.headers["x-api-key"] as string | undefined;
      res.end(exposition(1));
    });
    const { s, counted } = scraper(() => [{ ...target("a", url), headers: { "x-api-key": "k1" } }]);
    await s.scrape();
    expect(got).toBe("k1");
    expect(counted).toEqual(["ok"]);
  });

  it("does not follow a redirect elsewhere", async () => {
    let followed = false;
    const elsewhere = await serve((_, res) => {
      followed = true;
      res.end(exposition(1));
    });
    const url = await serve((_, res) => res.writeHead(302, { location: elsewhere }).end());
    const { s, counted } = scraper(() => [target("a", url)]);
    await s.scrape();
    expect(counted).toEqual(["error"]);
    expect(followed).toBe(false);
  });
});
