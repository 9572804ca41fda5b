// Latency of GET <url> while a load runs: one request at a time, every `interval` ms, for
// `seconds`, on a keep-alive connection. Prints {count, errors, p50_ms, p99_ms, max_ms}.
//   node bench/probe.mjs http://127.0.0.1:8201/livez 10 [interval_ms]
import { Agent, request } from "node:http";

const [url, seconds, interval = "20"] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
let errors = 0;
const once = () =>
  new Promise((resolve) => {
    const started = performance.now();
    const req = request(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode === 200) latencies.push(performance.now() - started);
        else errors++;
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      errors++;
      resolve();
    });
    req.end();
  });
const end = performance.now() + Number(seconds) * 1000;
while (performance.now() < end) {
  await once();
  await new Promise((r) => setTimeout(r, Number(interval)));
}
agent.destroy();
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
const round = (v) => Math.round(v * 100) / 100;
console.log(JSON.stringify({ count: latencies.length, errors, p50_ms: round(at(0.5)), p99_ms: round(at(0.99)), max_ms: round(at(1)) }));
