/** Structured logs: one JSON object a line on stderr, filtered by level. */
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
export type Level = keyof typeof LEVELS;

export interface Log {
  debug(msg: string, extra?: unknown): void;
  info(msg: string, extra?: unknown): void;
  warn(msg: string, extra?: unknown): void;
  error(msg: string, extra?: unknown): void;
}

export function createLog(level: Level, base: Record<string, unknown> = {}): Log {
  const write = (at: Level) => (msg: string, extra?: unknown) => {
    if (LEVELS[at] < LEVELS[level]) return;
    const fields = extra && typeof extra === "object" ? extra : extra === undefined ? {} : { extra };
    process.stderr.write(`${JSON.stringify({ level: at, time: new Date().toISOString(), ...base, msg, ...fields })}\n`);
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}
