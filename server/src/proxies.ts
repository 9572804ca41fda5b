import { BlockList, isIP } from "node:net";
import type { FastifyRequest } from "fastify";

/**
 * TRUST_PROXY: whose X-Forwarded-For to believe, and which client a request is then from.
 * Proxies write what they saw, and not always a bare address (Azure Application Gateway
 * writes ip:port); whatever a forwarded value is, a client must not get a fresh identity by
 * varying it: ip:port counts as the ip, and a value that is no address counts as the proxy
 * that relayed it.
 */

export type TrustProxy = false | number | string[];

interface Address {
  address: string;
  family: "ipv4" | "ipv6";
}

/** An address as a forwarded value may carry it: bare, with a port (ip:port, [ipv6]:port), or bracketed. */
export function forwardedAddress(value: string): Address | undefined {
  const text = value.trim();
  const match = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text) ?? /^(\d+\.\d+\.\d+\.\d+):\d{1,5}$/.exec(text);
  const address = match ? match[1]! : text;
  const family = isIP(address);
  return family === 0 ? undefined : { address, family: family === 4 ? "ipv4" : "ipv6" };
}

// IPv4 is compared inside IPv6 as ::ffff:a.b.c.d, as BlockList matches it.
const MAPPED = 0xffffn << 32n;
const IPV4 = { first: MAPPED, last: MAPPED + 0xffff_ffffn, name: "IPv4 address" };
const GLOBAL_IPV6 = { first: 0x2n << 124n, last: (0x4n << 124n) - 1n, name: "IPv6 internet address (2000::/3)" };

const ipv4 = (address: string) => address.split(".").reduce((n, octet) => (n << 8n) + BigInt(octet), 0n);

/** The 128-bit value of an IPv6 address (an IPv4 one mapped). */
function bits(address: string): bigint {
  if (isIP(address) === 4) return MAPPED + ipv4(address);
  const groups = (part: string) =>
    part
      .split(":")
      .filter(Boolean)
      .flatMap((g) => (g.includes(".") ? [ipv4(g) >> 16n, ipv4(g) & 0xffffn] : [BigInt(Number.parseInt(g, 16))]));
  const [head = "", tail] = address.split("%")[0]!.split("::");
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  return [...left, ...Array<bigint>(8 - left.length - right.length).fill(0n), ...right].reduce((n, g) => (n << 16n) + g, 0n);
}

/** The setting's blocks as 128-bit ranges. */
function ranges(blocks: string[]): { first: bigint; last: bigint }[] {
  return blocks.map((block) => {
    const [address = "", prefix] = block.split("/");
    const width = isIP(address) === 4 ? 32 : 128;
    const size = 1n << BigInt(width - Number(prefix ?? width));
    const first = bits(address) & ~(size - 1n);
    return { first, last: first + size - 1n };
  });
}

/**
 * What a TRUST_PROXY list trusts that no list of proxies should: every IPv4 address, or every
 * IPv6 address on the internet (any client could then choose its address); undefined if neither.
 */
export function trustsEveryone(blocks: string[]): string | undefined {
  const sorted = ranges(blocks).sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const covered = (target: { first: bigint; last: bigint }) => {
    let next = target.first; // the first address not yet known to be covered
    for (const r of sorted) {
      if (r.first > next) break;
      if (r.last >= next) next = r.last + 1n;
      if (next > target.last) return true;
    }
    return false;
  };
  return [IPV4, GLOBAL_IPV6].find(covered)?.name;
}

/** Fastify's trustProxy: whether to believe what the hop-th address (0: the peer) says about the one before it. */
export function proxyTrust(setting: TrustProxy): false | ((address: string, hop: number) => boolean) {
  if (setting === false) return false;
  // A hop count is a function: Fastify ignores numbers (a direct client could forge hops), so a
  // count is for servers reachable only through the proxies (README).
  if (typeof setting === "number") return (_address, hop) => hop < setting;
  const proxies = new BlockList();
  for (const block of setting) {
    const [address = "", prefix] = block.split("/");
    const { family } = forwardedAddress(address)!;
    proxies.addSubnet(address, Number(prefix ?? (family === "ipv4" ? 32 : 128)), family);
  }
  return (value) => {
    const address = forwardedAddress(value);
    return address !== undefined && proxies.check(address.address, address.family);
  };
}

/** The client's address: the farthest trusted hop's report, port dropped; the proxy's own address when that report is no address. */
export function clientAddress(request: Pick<FastifyRequest, "ip" | "ips">): string {
  // ips: the peer first, then each believed hop's report; without TRUST_PROXY, none.
  const chain = request.ips ?? [request.ip];
  for (let i = chain.length - 1; i > 0; i--) {
    const address = forwardedAddress(chain[i]!);
    if (address) return address.address;
  }
  return chain[0]!;
}
