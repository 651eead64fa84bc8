// `bun run bench [suite...] [--quick | --scale F]`: the system-level benchmarks. stdout has one JSON object
// per line and nothing else; progress goes to stderr. Every process a suite starts is stopped before the
// suite returns, on failure too, and on Ctrl-C. See bench/README.md for the suites and how to read them.
import { emit, errorText, progress } from "./lib/emit";
import { stopAll } from "./lib/proc";
import { amplificationSuite } from "./lib/suite-amplification";
import { failoverSuite } from "./lib/suite-failover";
import { microSuite } from "./lib/suite-micro";
import { profileSuite } from "./lib/suite-profile";
import { scaleSuite } from "./lib/suite-scale";
import { systemSuite } from "./lib/suite-system";
import { timelineSuite } from "./lib/suite-timeline";
import { knownSuites, parseSettings, type RunSettings } from "./lib/settings";

const suites: Record<(typeof knownSuites)[number], (s: RunSettings) => Promise<void>> = {
  system: (s) => systemSuite(s, "system"),
  broker: (s) => systemSuite(s, "broker"),
  amplification: amplificationSuite,
  failover: failoverSuite,
  scale: scaleSuite,
  micro: microSuite,
  profile: profileSuite,
  timeline: timelineSuite,
};

let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress(`${sig}: stopping every process this run started`);
    void stopAll().finally(() => process.exit(130));
  });
}

let settings: RunSettings;
try {
  settings = parseSettings(process.argv.slice(2), process.env);
} catch (e) {
  process.stderr.write(`bench: ${errorText(e)}\n`);
  process.exit(2);
}
if (settings.suites.includes("help")) {
  process.stderr.write(`usage: bun run bench [${knownSuites.join("|")}...] [--quick | --scale F]\n  see bench/README.md\n`);
  process.exit(0);
}

let failed = 0;
for (const name of settings.suites as (typeof knownSuites)[number][]) {
  const t0 = performance.now();
  progress(`suite ${name} (scale ${settings.scale})`);
  try {
    await suites[name](settings);
  } catch (e) {
    failed++;
    emit({ suite: name, error: errorText(e) });
  } finally {
    await stopAll(); // a suite's own cleanup should have done this; this catches what it missed
  }
  progress(`suite ${name} done in ${Math.round((performance.now() - t0) / 1000)} s`);
}
process.exit(failed > 0 ? 1 : 0);
