/**
 * Kubernetes label selectors in their string form (the `labelSelector` an HPA sends), parsed
 * as k8s.io/apimachinery's labels.Parse does: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
 * `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, joined by commas, with its rules for keys and values.
 * What it refuses, the API server would too: the handler answers 400 rather than guess.
 */

export type Labels = Record<string, string> | undefined;
export type LabelMatcher = (labels: Labels) => boolean;

export class SelectorError extends Error {
  override name = "SelectorError";
}

type Token = { kind: "id"; text: string } | { kind: "symbol"; text: string } | { kind: "end"; text: "" };

const SYMBOLS = new Set(["=", "!", "(", ")", ",", ">", "<"]);
const BLANKS = new Set([" ", "\t", "\r", "\n"]);

function lex(selector: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  for (;;) {
    while (BLANKS.has(selector[i] ?? "")) i++;
    if (i >= selector.length) return [...tokens, { kind: "end", text: "" }];
    if (SYMBOLS.has(selector[i]!)) {
      // "!=" and "==" are the only symbols of two characters.
      const pair = selector.slice(i, i + 2);
      const text = pair === "!=" || pair === "==" ? pair : selector[i]!;
      tokens.push({ kind: "symbol", text });
      i += text.length;
      continue;
    }
    const start = i;
    while (i < selector.length && !SYMBOLS.has(selector[i]!) && !BLANKS.has(selector[i]!)) i++;
    tokens.push({ kind: "id", text: selector.slice(start, i) });
  }
}

const NAME = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const INTEGER = /^[+-]?\d+$/;
const INT64 = 2n ** 63n;

/** A label key: an optional DNS subdomain prefix and "/", then a name of at most 63 characters. */
function checkKey(key: string): string {
  const parts = key.split("/");
  const [prefix, name] = parts.length === 2 ? parts : [undefined, parts[0]];
  const valid =
    parts.length <= 2 &&
    name !== undefined &&
    name.length <= 63 &&
    NAME.test(name) &&
    (prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)));
  if (!valid) throw new SelectorError(`"${key}" is not a valid label key`);
  return key;
}

function checkValue(value: string): string {
  if (value.length > 63 || (value !== "" && !NAME.test(value))) throw new SelectorError(`"${value}" is not a valid label value`);
  return value;
}

const int64 = (text: string): bigint | undefined => {
  if (!INTEGER.test(text)) return undefined;
  const n = BigInt(text);
  return n >= -INT64 && n < INT64 ? n : undefined;
};

const found = (t: Token) => (t.kind === "end" ? "the end" : `"${t.text}"`);
const is = (t: Token, symbol: string) => t.kind === "symbol" && t.text === symbol;

/** A matcher for `selector`; the empty selector matches every object. Throws SelectorError. */
export function parseSelector(selector: string): LabelMatcher {
  const tokens = lex(selector);
  let at = 0;
  const peek = () => tokens[at]!;
  const next = () => tokens[at++]!;
  const requirements: ((labels: Record<string, string>) => boolean)[] = [];

  const exactValue = (): string => {
    const t = peek();
    // `a=` and `a!=` compare with the empty value.
    if (t.kind === "end" || is(t, ",")) return "";
    if (t.kind !== "id") throw new SelectorError(`found ${found(t)}, expected a value`);
    at++;
    return checkValue(t.text);
  };

  const valueSet = (): Set<string> => {
    const open = next();
    if (!is(open, "(")) throw new SelectorError(`found ${found(open)}, expected "("`);
    const values = new Set<string>();
    // Empty items are the empty value: "()" and "(,x)" include it.
    for (;;) {
      const t = peek();
      if (t.kind === "id") at++;
      values.add(t.kind === "id" ? checkValue(t.text) : "");
      const separator = next();
      if (is(separator, ")")) return values;
      if (!is(separator, ",")) throw new SelectorError(`found ${found(separator)}, expected "," or ")"`);
    }
  };

  const requirement = (): ((labels: Record<string, string>) => boolean) => {
    let t = next();
    const absent = is(t, "!");
    if (absent) t = next();
    if (t.kind !== "id") throw new SelectorError(`found ${found(t)}, expected a label key`);
    const key = checkKey(t.text);
    const has = (labels: Record<string, string>) => Object.hasOwn(labels, key);
    if (absent) return (labels) => !has(labels);
    const after = peek();
    if (after.kind === "end" || is(after, ",")) return has;
    const op = next();
    const word = op.kind === "id" ? op.text : undefined;
    if (word === "in" || word === "notin") {
      const values = valueSet();
      return word === "in" ? (labels) => has(labels) && values.has(labels[key]!) : (labels) => !has(labels) || !values.has(labels[key]!);
    }
    if (is(op, "=") || is(op, "==")) {
      const value = exactValue();
      return (labels) => has(labels) && labels[key] === value;
    }
    if (is(op, "!=")) {
      const value = exactValue();
      return (labels) => !has(labels) || labels[key] !== value;
    }
    if (is(op, ">") || is(op, "<")) {
      const text = exactValue();
      const bound = int64(text);
      if (bound === undefined) throw new SelectorError(`"${text}" is not an integer, as ${op.text} needs`);
      const above = op.text === ">";
      return (labels) => {
        const n = has(labels) ? int64(labels[key]!) : undefined;
        return n !== undefined && (above ? n > bound : n < bound);
      };
    }
    throw new SelectorError(`found ${found(op)}, expected one of in, notin, =, ==, !=, >, <`);
  };

  if (peek().kind !== "end") {
    for (;;) {
      requirements.push(requirement());
      const t = next();
      if (t.kind === "end") break;
      if (!is(t, ",")) throw new SelectorError(`found ${found(t)}, expected "," or the end`);
    }
  }
  return (labels) => requirements.every((r) => r(labels ?? {}));
}
