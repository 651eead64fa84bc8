// Loopback TCP ceiling: this process sends on one connection for the given milliseconds, a child process
// (this same file with --sink) receives and reports what arrived. Prints one JSON line.
//   bun bench/lib/tcp-pair.ts [durationMs]
import type { Socket } from "bun";

const chunkBytes = 64 * 1024;

if (process.argv[2] === "--sink") {
  let received = 0;
  let first = 0;
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_s, d) {
        if (first === 0) first = performance.now();
        received += d.length;
      },
      close() {
        const seconds = (performance.now() - first) / 1000;
        console.log(JSON.stringify({ bytes: received, seconds }));
        server.stop(true);
      },
    },
  });
  console.log(server.port);
} else {
  const durationMs = Number(process.argv[2] ?? 2000);
  const sink = Bun.spawn([process.execPath, import.meta.path, "--sink"], { stdout: "pipe", stderr: "inherit" });
  const reader = (sink.stdout as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error("sink exited before it listened");
    text += decoder.decode(r.value, { stream: true });
  }
  const port = Number(text.slice(0, text.indexOf("\n")));
  text = text.slice(text.indexOf("\n") + 1);
  const chunk = new Uint8Array(chunkBytes).fill(1);
  const { promise: done, resolve } = Promise.withResolvers<void>();
  let end = 0;
  let offset = 0;
  const pump = (s: Socket<undefined>) => {
    for (;;) {
      if (performance.now() >= end) {
        s.end();
        resolve();
        return;
      }
      const n = s.write(offset === 0 ? chunk : chunk.subarray(offset));
      if (n <= 0) return; // wait for drain
      offset += n;
      if (offset >= chunk.length) offset = 0;
      else return; // partial write: the socket buffer is full
    }
  };
  const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, drain: (s) => pump(s) } });
  end = performance.now() + durationMs;
  pump(socket);
  await done;
  while (!text.includes("\n")) {
    const r = await reader.read();
    if (r.done) break;
    text += decoder.decode(r.value, { stream: true });
  }
  await sink.exited;
  const result = JSON.parse(text.trim()) as { bytes: number; seconds: number };
  console.log(JSON.stringify({ mb_per_s: Math.round(result.bytes / result.seconds / 1e6), bytes: result.bytes, seconds: +result.seconds.toFixed(2), connections: 1, chunk_bytes: chunkBytes }));
}
