/**
 * The CLI's commands and options, described once: the argument parser's configuration, the
 * defaults and the help text all come from these tables.
 */

export const CHECKS = ["health", "models", "predict", "batch", "stream", "performance"] as const;
export type Check = (typeof CHECKS)[number];
export const COMMANDS = [...CHECKS, "all", "help"] as const;
export type Command = (typeof COMMANDS)[number];

export const DEFAULT_URL = "http://localhost:8000";

const COMMAND_HELP: Record<Command, { summary: string; examples: string[] }> = {
  health: { summary: "GET /health: whether the server is ready, and the bundle it serves", examples: ["wavelet health", "API_URL=http://10.0.0.5:8000 wavelet health"] },
  models: { summary: "GET /models: the models, the bundle's versions and its feature shape", examples: ["wavelet models"] },
  predict: {
    summary: "POST /predict: one prediction (--features or --prices, else the guide's ten values or a sample of the served shape)",
    examples: ["wavelet predict --model xgboost --confidence", "wavelet predict --features 0.1,0.2,-0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0", "wavelet predict --prices spx.csv"],
  },
  batch: { summary: "POST /predict/batch: --samples predictions in one request", examples: ["wavelet batch --samples 100 --confidence"] },
  stream: {
    summary: "POST /predict/stream: one prediction a day over a --length day series of features, or over the days of --prices",
    examples: ["wavelet stream --length 500 --sse", "wavelet stream --prices spx.csv"],
  },
  performance: {
    summary: "--requests POSTs, --concurrency at a time over keep-alive connections: the client's and the server's latency",
    examples: ["wavelet performance --requests 2000 --concurrency 16", "wavelet performance --endpoint batch --metrics-url http://localhost:9100/metrics"],
  },
  all: { summary: "every check above, then performance (the default command)", examples: ["API_KEY=k1 wavelet --url https://api.example.com all"] },
  help: { summary: "this text; `wavelet help <command>` or `wavelet <command> --help` for one command", examples: [] },
};

export interface OptionSpec {
  /** Its value's placeholder; a flag has none. */
  value?: string;
  help: string;
  default?: string;
  /** The commands it applies to; every command when absent. */
  commands?: readonly Check[];
  /** A positive whole number. */
  count?: true;
  short?: string;
}

export const OPTIONS = {
  url: { value: "URL", help: "the server (default: $API_URL, else " + DEFAULT_URL + ")" },
  "api-key": { value: "KEY", help: "sent as X-API-Key (default: the first of $API_KEY's comma list)" },
  model: { value: "NAME", help: "a model the server serves: xgboost, lstm, transformer, ensemble or an imported bundle's own (default: the server's default model)", commands: ["predict", "batch", "stream", "performance"] },
  features: { value: "LIST", help: "comma-separated feature values", commands: ["predict"] },
  prices: {
    value: "FILE",
    help:
      "a CSV of daily prices, oldest first: Close, and Open, High, Low (Adj Close adjusts all four); sent as prices, or as bars of the fields " +
      "the bundle reads (GET /models features.inputs). predict sends its last min_prices days, stream all of them",
    commands: ["predict", "stream"],
  },
  confidence: { help: "ask for confidence intervals", commands: ["predict", "batch"] },
  samples: { value: "N", help: "samples in the batch", default: "2", commands: ["batch"], count: true },
  length: { value: "N", help: "days in the series (without --prices)", default: "100", commands: ["stream"], count: true },
  sse: { help: "ask for Server-Sent Events instead of NDJSON", commands: ["stream"] },
  requests: { value: "N", help: "requests to send", default: "1000", commands: ["performance"], count: true },
  concurrency: { value: "N", help: "requests in flight at once, one connection each", default: "16", commands: ["performance"], count: true },
  endpoint: { value: "NAME", help: "predict or batch (two samples a request)", default: "predict", commands: ["performance"] },
  "metrics-url": {
    value: "URL",
    help: "the server's Prometheus metrics, read before and after the run (default: URL/metrics; with WORKERS > 1, the primary's METRICS_PORT)",
    commands: ["performance"],
  },
  "metrics-key": { value: "KEY", help: "sent as X-API-Key to the metrics (default: the first of $METRICS_API_KEY's comma list)", commands: ["performance"] },
  test: { value: "COMMAND", help: "the command to run (the guide's test_api.py spelling)" },
  help: { help: "print this help and exit", short: "h" },
} satisfies Record<string, OptionSpec>;
export type OptionName = keyof typeof OPTIONS;

/** node:util parseArgs' configuration for OPTIONS (defaults are applied by the caller). */
export const parseArgsOptions = Object.fromEntries(
  Object.entries(OPTIONS).map(([name, spec]: [string, OptionSpec]) => [name, { type: spec.value ? "string" : "boolean", ...(spec.short ? { short: spec.short } : {}) }]),
) as { [K in OptionName]: { type: (typeof OPTIONS)[K] extends { value: string } ? "string" : "boolean"; short?: string } };

const ENVIRONMENT = [
  "  API_URL          the server, when --url is not given",
  "  API_KEY          API keys, comma-separated as the server takes them: the first is sent",
  "  METRICS_API_KEY  the same for /metrics (performance)",
];

/** The help text for every command, or for one. */
export function usage(command?: Command): string {
  const one = command && command !== "all" && command !== "help" ? command : undefined;
  const options = Object.entries(OPTIONS as Record<string, OptionSpec>).filter(([, spec]) => !one || !spec.commands || spec.commands.includes(one));
  const column = (left: string, right: string, width: number) => `  ${left.padEnd(width)}  ${right}`;
  const optionLines = options.map(([name, spec]) =>
    column(`${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.value ? ` ${spec.value}` : ""}`, spec.help + (spec.default ? ` (default: ${spec.default})` : ""), 20),
  );
  const commands = one ? [] : COMMANDS.map((c) => column(c, COMMAND_HELP[c].summary, 11));
  const examples = (one ? [one] : COMMANDS).flatMap((c) => COMMAND_HELP[c].examples).map((e) => `  ${e}`);
  return [
    one ? `Usage: wavelet ${one} [options]\n\n${COMMAND_HELP[one].summary}` : "Usage: wavelet [options] [command]\n\nA client for the wavelet inference API (the guide's test_api.py).",
    ...(one ? [] : ["", "Commands:", ...commands]),
    "",
    "Options:",
    ...optionLines,
    "",
    "Environment:",
    ...ENVIRONMENT,
    "",
    "Examples:",
    ...examples,
    "",
    "Exit status: 0 when every check passed, 1 when one failed, 2 for a usage error.",
    "",
  ].join("\n");
}
