/**
 * What routes declare about themselves and what the request-level plugins record, shared by
 * auth (who may call, who called) and the rate limit (which budget the call draws on).
 */

/** Whose credentials a route takes. */
export type Realm = "predict" | "admin" | "metrics";
/** The rate-limit budgets a route may draw on. */
export type Budget = Exclude<Realm, "metrics">;

declare module "fastify" {
  interface FastifyContextConfig {
    /** The credentials the route requires; absent means public. */
    auth?: Realm;
    /** The rate-limit budget the route draws on; absent means none. */
    budget?: Budget;
  }
  interface FastifyRequest {
    /** The verified caller ("key:<digest prefix>", "jwt:<issuer>#<subject>"), once auth admitted it. */
    identity?: string;
  }
}
