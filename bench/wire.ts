// Wire throughput on one loopback connection. Prints JSON lines; not a test.
//   bun bench/wire.ts            server in a child process (the realistic shape: two processes)
//   bun bench/wire.ts --inproc   server and client on one event loop
//   bun bench/wire.ts --server   (internal) run only the server, print its port
import { create } from "@bufbuild/protobuf";
import { ProduceRequestSchema, ProduceResponseSchema } from "../src/proto/goulette_pb";
import { WireClient, decodeFrame, encodeFrame, encodeFrameBytes, expectCase, serve, type Body } from "../src/wire";

const args = new Set(process.argv.slice(2));
const durationMs = Number(process.env.BENCH_MS ?? 2000);

function startServer() {
  const ack: Body = { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: 1n }) };
  return serve({
    hostname: "127.0.0.1",
    port: 0,
    maxInFlightPerConnection: 100_000,
    handle: (body) => (body.case === "produce" ? ack : undefined),
  });
}

if (args.has("--server")) {
  const s = startServer();
  console.log(s.port);
  process.stdin.on("data", () => {}); // exit with the parent
  process.stdin.on("end", () => process.exit(0));
} else {
  let port: number;
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let stopServer: () => void;
  if (args.has("--inproc")) {
    const s = startServer();
    port = s.port;
    stopServer = () => s.stop();
  } else {
    child = Bun.spawn([process.execPath, import.meta.path, "--server"], { stdin: "pipe", stdout: "pipe" });
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    port = Number(new TextDecoder().decode(value).trim());
    stopServer = () => child!.kill();
  }
  const mode = child ? "two-processes" : "in-process";

  interface Result {
    requests: number;
    requestsPerSec: number;
    MBps: number;
    cpuUsPerRequest: number;
  }

  async function run(opts: { batchBytes: number; window: number; ms: number; coalesceBelowBytes?: number }): Promise<Result> {
    const c = new WireClient(`127.0.0.1:${port}`, { maxInFlight: 100_000, coalesceBelowBytes: opts.coalesceBelowBytes });
    const batch = new Uint8Array(opts.batchBytes).fill(7);
    const req = (): Body => ({ case: "produce", value: create(ProduceRequestSchema, { topic: "bench", partition: 0, batch }) });
    await c.call(req());
    let done = 0;
    let running = true;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = async () => {
      while (running) {
        expectCase(await c.call(req()), "produceResponse");
        done++;
      }
    };
    const workers = Array.from({ length: opts.window }, worker);
    await Bun.sleep(opts.ms);
    running = false;
    await Promise.all(workers);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    c.close();
    return {
      requests: done,
      requestsPerSec: Math.round(done / seconds),
      MBps: Math.round((done * opts.batchBytes) / seconds / 1e6),
      // CPU this process spent per request (client only with two processes; client + server in-process):
      // less sensitive to other load on the machine than the wall-clock rates.
      cpuUsPerRequest: +((cpu.user + cpu.system) / done).toFixed(2),
    };
  }

  const median = (xs: Result[]): Result => xs.slice().sort((x, y) => x.MBps - y.MBps)[xs.length >> 1]!;

  // Head and batch as two writes (the batch never copied) vs copied into one buffer and one write,
  // interleaved so that load from elsewhere on the machine hits both alike; medians of the runs.
  for (const [label, batchBytes, window] of [["64KiB", 64 * 1024, 32], ["1MiB", 1 << 20, 8]] as const) {
    const two: Result[] = [];
    const one: Result[] = [];
    for (let rep = 0; rep < 3; rep++) {
      two.push(await run({ batchBytes, window, ms: durationMs / 4, coalesceBelowBytes: 1024 }));
      one.push(await run({ batchBytes, window, ms: durationMs / 4, coalesceBelowBytes: 1 << 22 }));
    }
    console.log(JSON.stringify({ bench: `wire.throughput.${label}.two-writes`, mode, frameBytes: batchBytes, window, runs: 3, ...median(two) }));
    console.log(JSON.stringify({ bench: `wire.throughput.${label}.one-write`, mode, frameBytes: batchBytes, window, runs: 3, ...median(one) }));
  }
  const small = await run({ batchBytes: 16, window: 1000, ms: durationMs });
  console.log(JSON.stringify({ bench: "wire.pipelined.small", mode, frameBytes: 16, window: 1000, ...small }));
  stopServer();

  // The CPU a small round trip costs in the codec alone (request encode + decode, response encode +
  // decode, no sockets): the ceiling for requests/s on one core, to read the figures above against the
  // machine's load.
  {
    const req: Body = { case: "produce", value: create(ProduceRequestSchema, { topic: "bench", batch: new Uint8Array(16) }) };
    const ack: Body = { case: "produceResponse", value: create(ProduceResponseSchema, { baseOffset: 1n }) };
    const reqBytes = encodeFrameBytes(1, req).subarray(4);
    const ackBytes = encodeFrameBytes(1, ack).subarray(4);
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < durationMs / 2) {
      for (let i = 0; i < 1000; i++) {
        encodeFrame(i + 1, req);
        decodeFrame(reqBytes);
        encodeFrame(i + 1, ack);
        decodeFrame(ackBytes);
      }
      n += 1000;
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ bench: "wire.codec.small-roundtrip", roundTripsPerSec: Math.round(n / seconds), usPerRoundTrip: +((seconds * 1e6) / n).toFixed(2) }));
  }
  console.log(JSON.stringify({ bench: "wire.machine", loadAverage1m: (await Bun.file("/proc/loadavg").text()).split(" ")[0], cores: navigator.hardwareConcurrency }));
}
