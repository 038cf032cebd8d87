/**
 * HTTPS_PROXY and NO_PROXY, as curl and most SDKs read them (lower case first, ALL_PROXY
 * too): servers often reach cloud APIs through a proxy. Only HTTPS goes through it; the
 * plain-HTTP calls are to link-local metadata services and loopback emulators, which a
 * proxy cannot reach. The proxy's own URL may hold a password: printed lines redact a
 * URL's user and password (src/output.ts).
 */
import type { ClientRequest } from 'node:http'
import https from 'node:https'
import { Agent, type AgentConnectOpts } from 'agent-base'
import { HttpsProxyAgent } from 'https-proxy-agent'
import { getProxyForUrl } from 'proxy-from-env'

/** An HTTPS agent that tunnels each connection through the environment's proxy (CONNECT), unless NO_PROXY names the host. */
export class EnvProxyAgent extends Agent {
  private readonly direct: https.Agent
  private readonly tunnels = new Map<string, HttpsProxyAgent<string>>()

  constructor(private readonly agentOptions: https.AgentOptions = {}) {
    super(agentOptions)
    this.direct = new https.Agent(agentOptions)
    // An HTTPS agent, whatever agent-base guesses: request interceptors (nock) read these.
    this.protocol = 'https:'
    this.defaultPort = 443
  }

  /** The proxy for an https URL, or undefined for a direct connection. */
  static proxyFor(url: string): string | undefined {
    return getProxyForUrl(url) || undefined
  }

  override connect(_req: ClientRequest, options: AgentConnectOpts): https.Agent {
    const proxy = EnvProxyAgent.proxyFor(`https://${options.host}:${options.port}`)
    if (!proxy) return this.direct
    let tunnel = this.tunnels.get(proxy)
    if (!tunnel) {
      tunnel = new HttpsProxyAgent(proxy, this.agentOptions)
      this.tunnels.set(proxy, tunnel)
    }
    return tunnel
  }

  override destroy(): void {
    this.direct.destroy()
    for (const tunnel of this.tunnels.values()) tunnel.destroy()
    super.destroy()
  }
}
