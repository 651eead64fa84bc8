// What a bench run was asked for: the suites, and how much to scale the message counts down (--quick for
// a run that proves the harness works in minutes, --scale F for anything between).

export interface RunSettings {
  suites: string[];
  /** Multiplies every message count, byte target and duration that has a full-size default. */
  scale: number;
  /** Upper bound for one measured command (a bench, a peer script). */
  runTimeoutMs: number;
  peerTimeoutMs: number;
}

export const knownSuites = ["system", "broker", "amplification", "failover", "scale", "micro", "profile", "timeline"] as const;

export function parseSettings(argv: string[], env: Record<string, string | undefined>): RunSettings {
  const suites: string[] = [];
  let scale = 1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") scale = 0.01;
    else if (a === "--scale") {
      scale = Number(argv[++i]);
      if (!(scale > 0 && scale <= 10)) throw new Error(`--scale takes a number in (0, 10], got ${argv[i]}`);
    } else if (a === "--help" || a === "-h") {
      suites.push("help");
    } else if ((knownSuites as readonly string[]).includes(a)) suites.push(a);
    else throw new Error(`unknown suite or flag "${a}"; suites: ${knownSuites.join(", ")}; flags: --quick, --scale F`);
  }
  return {
    suites: suites.length === 0 ? ["system"] : suites,
    scale,
    runTimeoutMs: positive(env.BENCH_RUN_TIMEOUT_MS, 900_000),
    peerTimeoutMs: positive(env.BENCH_PEER_TIMEOUT_MS, 1_200_000),
  };
}

/** A full-size count scaled down, never below a floor that still measures something. */
export function scaled(s: RunSettings, full: number, floor: number): number {
  return Math.max(floor, Math.round(full * s.scale));
}

function positive(text: string | undefined, fallback: number): number {
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!(n > 0)) throw new Error(`expected a positive number of milliseconds, got "${text}"`);
  return n;
}
