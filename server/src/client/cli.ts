#!/usr/bin/env node
/**
 * wavelet: the command-line client for the API (the guide's test_api.py, in TypeScript).
 * `wavelet --help` lists the commands and options (usage.ts describes them).
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Answer, Api } from "./http.js";
import { type Scrape, performanceRun } from "./performance.js";
import { historyBody, PriceFileError, readPrices } from "./prices.js";
import { type Output, type Shape, processOutput, sample, shapeOf, synthetic } from "./shared.js";
import { type Check, CHECKS, COMMANDS, type Command, DEFAULT_URL, OPTIONS, type OptionSpec, parseArgsOptions, usage } from "./usage.js";

const GUIDE_FEATURES = [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/** A bad command line: one line saying what, then the usage, on stderr, exit 2. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: Command,
  ) {
    super(message);
  }
}

const isCommand = (name: string): name is Command => (COMMANDS as readonly string[]).includes(name);

/** The command line, validated: what to run and with which settings. */
function parse(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: parseArgsOptions });
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    // Node's own hint about `--` only confuses a user who mistyped an option.
    if (code?.startsWith("ERR_PARSE_ARGS_")) throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, "").replace(/\n/g, " "));
    throw error;
  }
  const { values, positionals } = parsed;
  const [command = "all", ...rest] = [...(values.test === undefined ? [] : [values.test]), ...positionals];
  if (!isCommand(command)) throw new UsageError(`unknown command ${command}`);
  if (command === "help") {
    const [topic, ...more] = rest;
    if (topic !== undefined && !isCommand(topic)) throw new UsageError(`unknown command ${topic}`);
    if (more.length) throw new UsageError(`help takes one command, not ${rest.join(" ")}`);
    return { help: topic } as const;
  }
  if (rest.length) throw new UsageError(`one command at a time, not ${[command, ...rest].join(" ")}`, command);
  if (values.help) return { help: command === "all" ? undefined : command } as const;

  const option = (name: keyof typeof OPTIONS): string | undefined => {
    const given = values[name];
    const spec: OptionSpec = OPTIONS[name];
    return typeof given === "string" ? given : spec.default;
  };
  const count = (name: "samples" | "length" | "requests" | "concurrency"): number => {
    const text = option(name)!;
    if (!/^[1-9]\d*$/.test(text)) throw new UsageError(`--${name} takes a positive whole number, not ${text}`, command);
    return Number(text);
  };
  const httpUrl = (name: string, text: string): string => {
    if (!URL.canParse(text) || !["http:", "https:"].includes(new URL(text).protocol)) throw new UsageError(`${name} is not an http(s) URL: ${text}`, command);
    return text;
  };
  const model = option("model"); // unset: the server's default model
  const endpoint = option("endpoint");
  if (endpoint !== "predict" && endpoint !== "batch") throw new UsageError(`--endpoint is predict or batch, not ${endpoint}`, command);
  // A key from the option, else the first of the variable's comma list (as the server takes it).
  const keyHeader = (given: string | undefined, variable: string | undefined): Record<string, string> => {
    const key = given ?? variable?.split(",")[0]?.trim();
    return key ? { "x-api-key": key } : {};
  };
  const metricsUrl = values["metrics-url"];
  const features = values.features?.split(",").map((v) => (v.trim() ? Number(v) : Number.NaN));
  if (features?.some((v) => !Number.isFinite(v))) throw new UsageError(`--features takes comma-separated numbers, not ${values.features}`, command);
  if (features && values.prices !== undefined) throw new UsageError("give --features or --prices, not both", command);
  let prices;
  try {
    prices = values.prices === undefined ? undefined : readPrices(values.prices);
  } catch (error) {
    if (error instanceof PriceFileError) throw new UsageError(`--prices: ${error.message}`, command);
    throw error;
  }
  return {
    command,
    url: httpUrl(values.url === undefined ? "API_URL" : "--url", values.url ?? process.env.API_URL ?? DEFAULT_URL),
    metricsUrl: metricsUrl === undefined ? undefined : httpUrl("--metrics-url", metricsUrl),
    headers: keyHeader(values["api-key"], process.env.API_KEY),
    metricsHeaders: keyHeader(values["metrics-key"], process.env.METRICS_API_KEY),
    model,
    features,
    prices,
    confidence: values.confidence === true,
    samples: count("samples"),
    length: count("length"),
    sse: values.sse === true,
    performance: { requests: count("requests"), concurrency: count("concurrency"), model, endpoint },
  } as const;
}

function show(io: Output, label: string, r: Answer): boolean {
  const ok = r.status >= 200 && r.status < 300;
  io.out(`${ok ? "ok  " : "FAIL"} ${label} → ${r.status}\n${JSON.stringify(r.json, null, 2)}\n`);
  return ok;
}

function isDoneLine(line: string): boolean {
  try {
    return (JSON.parse(line) as { done?: unknown }).done === true;
  } catch {
    return false;
  }
}

/** A series of `length` days of made-up features: one value a day for a one-channel bundle, else one row of a value per channel. */
function syntheticSeries(shape: Shape, length: number): { features: number[] | number[][]; window_size: number } {
  const day = (i: number) => synthetic(i / 5);
  const features = Array.from({ length }, (_, i) => (shape.channels === 1 ? day(i) : Array.from({ length: shape.channels }, (_, c) => day(i + c))));
  return { features: features as number[] | number[][], window_size: shape.window };
}

/**
 * A series (features, or a history of prices or bars), streamed back one prediction a window
 * or day. It passes when the stream ends as the API says a complete one does (NDJSON: a
 * {"done":true} line; SSE: a `done` event); an error line instead means the server gave up midway.
 */
async function stream(api: Api, io: Output, series: object, model: string | undefined, sse: boolean): Promise<boolean> {
  const res = await api.request("POST", "/predict/stream", { ...series, model_type: model }, sse ? { accept: "text/event-stream" } : {});
  if (res.statusCode !== 200) return show(io, "stream", { status: res.statusCode, json: await res.body.text() });
  let lines = 0;
  let last = "";
  // A line may arrive split over two chunks: count it once, when its end arrives.
  let partial = "";
  const take = (line: string) => {
    if (!line.trim()) return;
    lines++;
    if (lines <= 3) io.out(`${line}\n`);
    if (!sse || line.startsWith("event:")) last = line;
  };
  res.body.setEncoding("utf8");
  for await (const chunk of res.body as AsyncIterable<string>) {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    parts.forEach(take);
  }
  take(partial);
  const done = sse ? last === "event: done" : isDoneLine(last);
  io.out(`${done ? "ok  " : "FAIL"} stream → ${res.statusCode}, ${lines} lines${done ? "" : `, ending ${last || "with nothing"}`}\n`);
  return done;
}

export async function main(argv: string[], io: Output = processOutput): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`wavelet: ${error.message}\n\n${usage(error.command)}`);
    return 2;
  }
  if ("help" in args) {
    io.out(usage(args.help));
    return 0;
  }
  const api = new Api(args.url, args.headers, args.performance.concurrency);
  // /metrics takes its own credential (the metrics realm), not the API key.
  const metricsApi = new Api(args.metricsUrl ?? `${api.url}/metrics`, args.metricsHeaders, 1);
  const scrape: Scrape = async () => {
    const { status, text } = await metricsApi.text("GET", "");
    if (status !== 200) throw new Error(`GET ${metricsApi.url} answered ${status}`);
    return text;
  };
  // Asked once per run, however many checks need it.
  let shape: Promise<Shape> | undefined;
  const served = () => (shape ??= shapeOf(api));
  // The guide's ten features fit a one-channel bundle; other shapes get a sample of theirs.
  const defaultFeatures = (s: Shape) => (s.window * s.channels === GUIDE_FEATURES.length ? GUIDE_FEATURES : sample(0, s));
  const checks: Record<Check, () => Promise<boolean>> = {
    health: async () => show(io, "health", await api.call("GET", "/health")),
    models: async () => show(io, "models", await api.call("GET", "/models")),
    predict: async () => {
      // A file's last min_prices days, as the bundle takes them; else features.
      const { prices } = args;
      const input = prices ? await served().then((s) => historyBody(prices, s.inputs, s.minPrices)) : { features: args.features ?? defaultFeatures(await served()) };
      return show(io, "predict", await api.call("POST", "/predict", { ...input, model_type: args.model, return_confidence: args.confidence }));
    },
    batch: async () => {
      const s = await served();
      const samples = Array.from({ length: args.samples }, (_, i) => sample(i, s));
      return show(io, "batch", await api.call("POST", "/predict/batch", { samples, model_type: args.model, return_confidence: args.confidence }));
    },
    stream: async () => {
      const s = await served();
      return stream(api, io, args.prices ? historyBody(args.prices, s.inputs) : syntheticSeries(s, args.length), args.model, args.sse);
    },
    performance: async () => performanceRun(api, await served(), args.performance, scrape, io),
  };
  let ok = true;
  try {
    for (const name of args.command === "all" ? CHECKS : [args.command]) {
      ok =
        (await checks[name]().catch((error: Error) => {
          // A file the bundle cannot read says so; anything else is likely the server's absence.
          io.out(`FAIL ${name}: ${error.message}${error instanceof PriceFileError ? "" : ` (is the server running at ${api.url}?)`}\n`);
          return false;
        })) && ok;
    }
  } finally {
    await Promise.all([api.close(), metricsApi.close()]);
  }
  return ok ? 0 : 1;
}

// npm installs the command as a symlink (node_modules/.bin/wavelet): compare real paths.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
