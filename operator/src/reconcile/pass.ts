import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import type { WaveletModel, WaveletModelSpec, WaveletModelStatus } from "../api/waveletmodel.js";
import { type EventRecord, type SecretData, apiMessage, statusCode } from "../kube/client.js";
import type { Clock } from "../controller/clock.js";
import type { Caches } from "../controller/informers.js";
import type { Metrics } from "../metrics.js";
import { canonical } from "./canonical.js";
import { ABSENT, type Expectations } from "./expectations.js";
import { failureStatus, invalidSpecOf } from "./status.js";
import { applyIsNoop, stamped } from "./unchanged.js";

/** The reads and writes a pass makes besides the caches (KubeClient in production, a fake in tests). */
export interface Writer {
  /** The object as the API server has it, or undefined (404): for names the caches do not hold. */
  read(object: KubernetesObject): Promise<KubernetesObject | undefined>;
  /** Each write answers the resourceVersion the object has afterwards. */
  apply(object: KubernetesObject): Promise<string | undefined>;
  deleteIfPresent(object: KubernetesObject): Promise<void>;
  /** A Secret, decoded, or undefined if it does not exist. */
  secret(namespace: string, name: string): Promise<SecretData | undefined>;
  /** The pods the EndpointSlices of a Service list (to know when a colour no longer gets traffic). */
  routedPods(service: string, namespace: string): Promise<string[]>;
  /** Conditional on the model still being at `resourceVersion` (409 otherwise). */
  applyStatus(wm: WaveletModel, status: NonNullable<WaveletModel["status"]>, resourceVersion: string): Promise<string | undefined>;
  updateModel(raw: KubernetesObject, change: { clearAnnotations: string[]; spec?: WaveletModel["spec"] }): Promise<string | undefined>;
  event(wm: WaveletModel, e: EventRecord, now: Date): Promise<void>;
}

/** Writing the model or one child failed; the message names it, for status and Events. */
export class ChildFailed extends Error {
  constructor(
    message: string,
    readonly code: number | undefined,
  ) {
    super(message);
  }
}

export const controlledBy = (o: KubernetesObject, uid: string) => !!o.metadata?.ownerReferences?.some((r) => r.controller && r.uid === uid);

/** What a pass needs besides the model: where it reads and writes, the time, where it reports. */
export interface PassDeps {
  caches: Caches;
  writer: Writer;
  clock: Clock;
  metrics: Metrics;
  log: { warn: (msg: string, extra?: unknown) => void; info: (msg: string, extra?: unknown) => void };
}

/**
 * The writes of one pass over one model, and what they teach the next passes: each write
 * remembers the version it made obsolete (expectations.ts); model writes are conditional on
 * the version the pass read or last wrote.
 */
export class Pass {
  private readonly namespace: string;
  private readonly cache: Record<string, ObjectCache<KubernetesObject> | undefined>;
  /** The model's version as this pass last knew it (read, then after each of its writes). */
  private modelVersion: string;
  /** The status as this pass last knew it. */
  status: WaveletModelStatus | undefined;
  /** Writes sent to the API server (the pass_writes metric). */
  writes = 0;
  /** A status write put off because it would change nothing; sent before any other write. */
  private putOff: (() => Promise<void>) | undefined;
  private fenced: Promise<void> | undefined;

  constructor(
    private readonly deps: PassDeps,
    private readonly expectations: Expectations,
    private readonly key: string,
    private readonly raw: KubernetesObject,
  ) {
    this.namespace = raw.metadata!.namespace!;
    const { caches } = deps;
    this.cache = {
      WaveletModel: caches.models,
      ReplicaSet: caches.replicasets,
      Service: caches.services,
      HorizontalPodAutoscaler: caches.hpas,
      PodDisruptionBudget: caches.pdbs,
      Ingress: caches.ingresses,
      HTTPRoute: caches.httproutes,
    };
    this.modelVersion = raw.metadata?.resourceVersion ?? ABSENT;
    this.status = (raw as { status?: WaveletModelStatus }).status;
  }

  /** The cache still shows something older than this operator's own writes: wait for it. */
  behind(): boolean {
    const timedOut = (refs: string[]) => this.deps.log.warn(`${this.key}: the cache never showed this operator's writes to ${refs.join(", ")}; going ahead`);
    return this.expectations.behind(this.key, (ref) => this.cached(ref)?.metadata?.resourceVersion ?? ABSENT, this.deps.clock.now(), timedOut) !== undefined;
  }

  private cached(ref: string): KubernetesObject | undefined {
    const [kind, name] = ref.split("/") as [string, string];
    return this.cache[kind]?.get(name, this.namespace);
  }

  private wrote(ref: string, before: string, after: string | undefined): void {
    this.expectations.wrote(this.key, ref, before, after, this.deps.clock.now());
  }

  private wroteModel(after: string | undefined): void {
    this.wrote(`WaveletModel/${this.raw.metadata!.name}`, this.modelVersion, after);
    this.modelVersion = after ?? this.modelVersion;
  }

  async updateModel(change: { clearAnnotations: string[]; spec?: WaveletModelSpec }): Promise<void> {
    this.writes++;
    this.wroteModel(await this.deps.writer.updateModel(this.raw, change));
  }

  /**
   * Writes `status`, conditional on the version this pass read. A status that would not
   * change is put off until the pass writes something else (fence()), and never sent by a
   * pass that writes nothing.
   */
  async writeStatus(wm: WaveletModel, status: WaveletModelStatus): Promise<void> {
    const send = async () => {
      this.putOff = undefined;
      this.writes++;
      this.wroteModel(await this.deps.writer.applyStatus(wm, status, this.modelVersion));
      this.status = status;
    };
    if (canonical(status) === canonical(this.status ?? {})) {
      this.putOff = send;
      this.fenced = undefined;
    } else {
      await send();
    }
  }

  /**
   * Sends the put-off status write (once, however many writes wait for it): the API server
   * checks its version and changes nothing, which is what keeps a pass working from an old
   * version, of this operator or another, from touching the children or recording Events.
   */
  fence(): Promise<void> {
    const send = this.putOff;
    if (!send) return this.fenced ?? Promise.resolve();
    this.fenced ??= send();
    return this.fenced;
  }

  /**
   * Server-side apply of a child, unless an object of that name exists that this model
   * does not control: the operator never adopts (or overwrites) what is not its own. Not
   * sent when the cached child already is as desired.
   */
  async apply(object: KubernetesObject): Promise<void> {
    const ref = `${object.kind}/${object.metadata!.name}`;
    const before = this.cached(ref);
    const desired = stamped(object);
    await this.guard(ref, async () => {
      const existing = before ?? (await this.lookup(object));
      if (existing && !controlledBy(existing, object.metadata!.ownerReferences![0]!.uid)) {
        throw new ChildFailed(`${object.kind} ${object.metadata!.name} exists and does not belong to this WaveletModel: rename the model or remove that ${object.kind}`, undefined);
      }
      if (applyIsNoop(desired, before)) {
        this.deps.metrics.appliesSkipped.inc({ kind: object.kind! });
        return;
      }
      await this.fence();
      this.writes++;
      this.wrote(ref, before?.metadata?.resourceVersion ?? ABSENT, await this.deps.writer.apply(desired));
      this.deps.metrics.applies.inc({ kind: object.kind! });
    });
  }

  /** Reads of children the cache does not have, by "Kind/name": at most one per pass each. */
  private readonly reads = new Map<string, Promise<KubernetesObject | undefined>>();

  private lookup(object: KubernetesObject): Promise<KubernetesObject | undefined> {
    const ref = `${object.kind}/${object.metadata!.name}`;
    let read = this.reads.get(ref);
    if (!read) {
      read = this.deps.writer.read(object);
      // Awaited by apply(), if the pass gets that far; a failure is reported there.
      read.catch(() => undefined);
      this.reads.set(ref, read);
    }
    return read;
  }

  /** Starts the reads apply() will need for `objects` the cache does not have. */
  prefetch(objects: KubernetesObject[]): void {
    for (const object of objects) if (!this.cached(`${object.kind}/${object.metadata!.name}`)) void this.lookup(object);
  }

  /** The object as the API server has it now (not the cache). */
  async read(object: KubernetesObject): Promise<KubernetesObject | undefined> {
    let found: KubernetesObject | undefined;
    await this.guard(`${object.kind}/${object.metadata!.name}`, async () => {
      found = await this.deps.writer.read(object);
    });
    return found;
  }

  async delete(object: KubernetesObject): Promise<void> {
    await this.guard(`${object.kind}/${object.metadata!.name}`, async () => {
      await this.fence();
      this.writes++;
      await this.deps.writer.deleteIfPresent(object);
    });
  }

  /** Errors name the object they concern, in the API server's words. */
  async guard(ref: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      if (error instanceof ChildFailed) throw error;
      throw new ChildFailed(`writing ${ref.replace("/", " ")}: ${apiMessage(error)}`, statusCode(error));
    }
  }

  async reportInvalidSpec(message: string): Promise<void> {
    const { log, writer, clock } = this.deps;
    log.warn(`${this.key}: cannot read spec: ${message}`);
    const wm = this.raw as unknown as WaveletModel;
    const reported = invalidSpecOf(this.status) === message;
    await this.writeStatus(wm, failureStatus(this.status, this.raw.metadata?.generation, "InvalidSpec", message, clock.now()));
    if (!reported) await writer.event(wm, { type: "Warning", reason: "InvalidSpec", message }, new Date(clock.now())).catch(() => undefined);
  }
}
