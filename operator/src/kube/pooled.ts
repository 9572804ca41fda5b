import http from "node:http";
import https from "node:https";
import { KubeConfig, type RequestContext } from "@kubernetes/client-node";
import type { TokenBucket } from "./throttle.js";

/**
 * client-node 1.x gives every API request a new https.Agent, so each one opens a new TCP
 * connection and a new TLS session: at a few hundred writes a second that is most of the
 * API server's and the operator's CPU. This KubeConfig hands every request one keep-alive
 * agent per set of connection options (the options change only if the credentials do).
 * Proxy agents are left as client-node makes them. With a `throttle`, every request (not the
 * watches, which do not come here) first takes a token from it: client-go's QPS and burst.
 */
export class PooledKubeConfig extends KubeConfig {
  private readonly agents = new Map<string, http.Agent>();

  constructor(private readonly options: { maxSockets?: number; throttle?: TokenBucket; onThrottled?: (ms: number) => void } = {}) {
    super();
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    const waited = await this.options.throttle?.take();
    if (waited) this.options.onThrottled?.(waited);
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!fresh || (fresh.constructor !== https.Agent && fresh.constructor !== http.Agent)) return;
    const options = (fresh as http.Agent & { options: https.AgentOptions }).options;
    const tls = fresh instanceof https.Agent;
    const key = JSON.stringify([tls, options.ca, options.cert, options.key, options.pfx, options.rejectUnauthorized, options.servername]);
    let agent = this.agents.get(key);
    if (!agent) {
      const pooled = { ...options, keepAlive: true, maxSockets: this.options.maxSockets ?? 64 };
      agent = tls ? new https.Agent(pooled) : new http.Agent(pooled);
      this.agents.set(key, agent);
    }
    context.setAgent(agent);
  }
}
