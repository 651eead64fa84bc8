// Free loopback ports for child processes that must know their addresses before they start (sentinel
// peers, brokers behind the e2e proxies). Picking them one at a time (listen on port 0, close, hand the
// number on) races: until the child binds, the OS may give the same port to the next port-0 listener of
// this very process (seen: a broker's proxy took the port just picked for the sentinel, which then could
// not listen). Reserved ports stay bound here until release(), so nothing opened meanwhile can get them;
// only another process's bind or outgoing connection between release() and the child's bind could.

export interface ReservedPorts {
  ports: number[];
  /** Frees the ports for the children: call it after opening this process's own listeners, just before spawning. */
  release(): void;
}

export function reservePorts(n: number): ReservedPorts {
  const listeners = Array.from({ length: n }, () => Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }));
  return {
    ports: listeners.map((l) => l.port),
    release: () => {
      for (const l of listeners) l.stop(true);
    },
  };
}
