// Compiles src/main.ts into one self-contained executable (dist/goulette): the Bun runtime, our code and
// every dependency in one file that runs with no node_modules beside it. `bun run build` runs this file.
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { version } from "./package.json";

const root = import.meta.dir;

/**
 * Modules src/main.ts loads by a runtime path (so parts not written yet do not break the build). A
 * compiled executable only contains what the bundler saw, so each one that exists is added as an entrypoint.
 */
function optionalEntrypoints(): string[] {
  const fixed = ["src/broker/index.ts", "src/sentinel/index.ts"].filter((p) => existsSync(join(root, p)));
  const commands = [...new Bun.Glob("src/cli/commands/*.ts").scanSync({ cwd: root })].filter((p) => !p.endsWith(".test.ts"));
  return [...fixed, ...commands.sort()];
}

function gitCommit(): string {
  const head = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root, stderr: "ignore" });
  if (head.exitCode !== 0) return "unknown";
  const dirty = Bun.spawnSync(["git", "diff", "--quiet", "HEAD", "--"], { cwd: root, stderr: "ignore" }).exitCode !== 0;
  return head.stdout.toString().trim() + (dirty ? "-dirty" : "");
}

export interface BuildResult {
  outfile: string;
  commit: string;
  entrypoints: string[];
}

export interface BuildSettings {
  /** Precompiled bytecode: ~10-25% faster start of each command, roughly 2x the build time. Default on. */
  bytecode?: boolean;
}

export async function build(outfile = join(root, "dist/goulette"), settings: BuildSettings = {}): Promise<BuildResult> {
  outfile = resolve(outfile);
  // The bundler writes a .map per chunk beside the executable although the maps are also embedded in it
  // (stack traces point at src/ without them); building in a scratch folder keeps dist/ to one file.
  const scratch = mkdtempSync(join(tmpdir(), "goulette-build-"));
  try {
    const commit = await compile(join(scratch, "goulette"), settings.bytecode ?? true);
    mkdirSync(dirname(outfile), { recursive: true });
    // Copy then rename: overwriting in place fails (ETXTBSY) while the old executable is running.
    const staged = `${outfile}.${process.pid}.tmp`;
    copyFileSync(join(scratch, "goulette"), staged);
    chmodSync(staged, 0o755);
    renameSync(staged, outfile);
    return { outfile, commit, entrypoints: entrypointsList() };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function entrypointsList(): string[] {
  return ["src/main.ts", ...optionalEntrypoints()].map((p) => join(root, p));
}

async function compile(outfile: string, bytecode: boolean): Promise<string> {
  const commit = gitCommit();
  const entrypoints = entrypointsList();
  const result = await Bun.build({
    entrypoints,
    // Pinned so the executable's embedded layout mirrors src/ and main.ts's runtime imports resolve; left
    // to itself the bundler may widen the root (version.ts imports ../../package.json).
    root: join(root, "src"),
    compile: {
      outfile,
      // A server binary must not pick up a stray .env or bunfig.toml from whatever directory it starts in.
      autoloadDotenv: false,
      autoloadBunfig: false,
    },
    // Modules loaded by a runtime path are separate entrypoints; splitting makes them share one copy of
    // common code, so e.g. `instanceof UsageError` holds for an error thrown by a command module.
    splitting: true,
    minify: true,
    sourcemap: "linked",
    bytecode,
    format: "esm", // bytecode defaults to CommonJS, which has no top-level await
    define: {
      GOULETTE_BUILD_VERSION: JSON.stringify(version),
      GOULETTE_BUILD_COMMIT: JSON.stringify(commit),
    },
    throw: false,
  });
  if (!result.success) {
    throw new Error(`build failed:\n${result.logs.map((l) => String(l)).join("\n")}`);
  }
  return commit;
}

if (import.meta.main) {
  const started = performance.now();
  const r = await build(process.argv[2]);
  const ms = Math.round(performance.now() - started);
  console.log(`built ${r.outfile} (commit ${r.commit}, ${r.entrypoints.length} entrypoints) in ${ms} ms`);
}
