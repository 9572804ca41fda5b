/**
 * Writes wait for themselves. Informer caches lag the API server: right after a pass writes
 * the WaveletModel or a child, the next pass (queued by that very write's watch event, or by
 * another) may still see the object as it was before. Deciding from that would undo the
 * write: point the Service back at the old colour, start the same rollout twice, repeat its
 * Events. So each write remembers the versions it made obsolete (the one the pass read, or
 * "absent" for a create), and while the cache still shows one of them the model's passes
 * wait. Versions are compared for equality only (they are opaque); a later version written
 * by anyone else is not in the set, so it counts as caught up. A write that changed nothing
 * (same version after) is not waited for.
 *
 * The cache can miss a version for good (the object deleted right after the write, a watch
 * that relisted): after `timeoutMs` without catching up the pass goes ahead anyway, as
 * controller-runtime's expectations do.
 */

/** The version an object has in the cache when the cache does not have it. */
export const ABSENT = "";

interface Pending {
  /** Per object ("Kind/name"), the versions a write made obsolete. */
  obsolete: Map<string, Set<string>>;
  /** Give up waiting then (the last write plus the timeout). */
  until: number;
}

export class Expectations {
  private readonly byModel = new Map<string, Pending>();

  constructor(private readonly timeoutMs = 30_000) {}

  /** A write to `ref`, owned by model `key`, took it from version `before` to `after`. */
  wrote(key: string, ref: string, before: string, after: string | undefined, now: number): void {
    if (after === undefined || after === before) return;
    const pending = this.byModel.get(key) ?? { obsolete: new Map<string, Set<string>>(), until: 0 };
    pending.obsolete.set(ref, (pending.obsolete.get(ref) ?? new Set<string>()).add(before));
    pending.until = now + this.timeoutMs;
    this.byModel.set(key, pending);
  }

  /**
   * The first object whose cached version (`cached(ref)`, ABSENT when not cached) is older
   * than this operator's write to it, or undefined when the cache has caught up or the wait
   * timed out (then `timedOut` is called with the objects still behind).
   */
  behind(key: string, cached: (ref: string) => string, now: number, timedOut: (refs: string[]) => void): string | undefined {
    const pending = this.byModel.get(key);
    if (!pending) return undefined;
    for (const [ref, versions] of pending.obsolete) {
      if (!versions.has(cached(ref))) pending.obsolete.delete(ref);
    }
    if (pending.obsolete.size === 0 || now >= pending.until) {
      if (pending.obsolete.size) timedOut([...pending.obsolete.keys()]);
      this.byModel.delete(key);
      return undefined;
    }
    return pending.obsolete.keys().next().value;
  }

  forget(key: string): void {
    this.byModel.delete(key);
  }
}
