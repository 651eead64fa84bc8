// Encode + decode of a 1 MiB produce frame: @bufbuild/protobuf (the generated code we use), protobufjs
// (static code generated here, into a temp dir, from proto/goulette.proto), and our zero-copy tail.
// Prints JSON lines; not a test.  bun bench/proto-compare.ts
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { FrameSchema, ProduceRequestSchema } from "../src/proto/goulette_pb";
import { decodeFrame, encodeFrame, encodeFrameBytes } from "../src/wire/frame";

const root = resolve(import.meta.dir, "..");
const batchBytes = Number(process.env.BATCH_BYTES ?? 1024 * 1024);
const durationMs = Number(process.env.BENCH_MS ?? 1000);

// protobufjs static module, generated at bench time and thrown away after.
const dir = mkdtempSync(join(tmpdir(), "goulette-pbjs-"));
const out = join(dir, "goulette_pbjs.js");
const gen = Bun.spawnSync([join(root, "node_modules/.bin/pbjs"), "-t", "static-module", "-w", "es6", join(root, "proto/goulette.proto"), "-o", out], { cwd: root });
if (gen.exitCode !== 0) throw new Error(`pbjs failed: ${gen.stderr.toString()}`);
// The generated module imports protobufjs by bare name; point it at this project's copy.
writeFileSync(out, readFileSync(out, "utf8").replace(`"protobufjs/minimal.js"`, JSON.stringify(join(root, "node_modules/protobufjs/minimal.js"))));
interface PbjsFrameType {
  encode(m: unknown): { finish(): Uint8Array };
  decode(b: Uint8Array): { produce?: { batch: Uint8Array } };
  create(m: unknown): unknown;
}
const pbjs = (await import(out)) as { goulette: { v1: { Frame: PbjsFrameType } } };
rmSync(dir, { recursive: true, force: true });

const batch = new Uint8Array(batchBytes).map((_, i) => i & 255);
const fields = { topic: "orders", partition: 3, producerEpoch: 1, baseSequence: 1000, recordCount: 1000, timeoutMs: 5000 };
const esFrame = create(FrameSchema, {
  correlationId: 12345n,
  body: { case: "produce", value: create(ProduceRequestSchema, { ...fields, producerId: 77n, batch }) },
});
const PbjsFrame = pbjs.goulette.v1.Frame;
const pbFrame = PbjsFrame.create({ correlationId: 12345, produce: { ...fields, producerId: 77, batch } });

function measure(name: string, op: () => number): void {
  for (let i = 0; i < 5; i++) op(); // warm up
  let ops = 0;
  let check = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < durationMs) {
    check += op();
    ops++;
    now = performance.now();
  }
  const seconds = (now - t0) / 1000;
  if (check !== ops * batchBytes) throw new Error(`${name}: decoded batches have the wrong size`);
  console.log(JSON.stringify({ bench: `proto.${name}`, frameBytes: batchBytes, opsPerSec: Math.round(ops / seconds), MBps: Math.round((ops * batchBytes) / seconds / 1e6) }));
}

measure("bufbuild.encode+decode", () => {
  const bytes = toBinary(FrameSchema, esFrame);
  const f = fromBinary(FrameSchema, bytes);
  return f.body.case === "produce" ? f.body.value.batch.length : 0;
});
measure("protobufjs.encode+decode", () => {
  const bytes = PbjsFrame.encode(pbFrame).finish();
  return PbjsFrame.decode(bytes).produce?.batch.length ?? 0;
});
const esBody = esFrame.body;
const wire = encodeFrameBytes(12345, esBody);
measure("zero-copy-tail.encode+decode", () => {
  // Sender: head (prefix, fields, the batch's tag and length) plus the caller's batch, never copied.
  const f = encodeFrame(12345, esBody);
  // Receiver: decodes the bytes as they arrived (the batch comes back as a view).
  const d = decodeFrame(wire.subarray(4));
  const got = d.body.case === "produce" ? d.body.value.batch.length : 0;
  return f.tail === undefined ? 0 : got;
});
measure("zero-copy-tail.decode-only", () => {
  const d = decodeFrame(wire.subarray(4));
  return d.body.case === "produce" ? d.body.value.batch.length : 0;
});
// Worst case: the sender copies head and batch into one buffer.
measure("zero-copy-tail.encode-contiguous+decode", () => {
  const bytes = encodeFrameBytes(12345, esBody);
  const d = decodeFrame(bytes.subarray(4));
  return d.body.case === "produce" ? d.body.value.batch.length : 0;
});
