import assert from "node:assert/strict";
import { setThreadNice, setThreadRealtime } from "./thread_priority.ts";

/** Fields of /proc/<path>/stat after "pid (comm) ", indexed from the state field (3). */
function statFields(path: string): string[] {
  const text = Deno.readTextFileSync(`/proc/${path}/stat`);
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}
const NICE = 19 - 3; // field 19
const POLICY = 41 - 3; // field 41
const RT_PRIORITY = 40 - 3; // field 40

const linux = Deno.build.os === "linux";

Deno.test("priority calls refuse out-of-range values and change nothing", () => {
  for (const bad of [20, -21, 1.5, NaN]) assert.throws(() => setThreadNice(bad), RangeError);
  for (const bad of [0, 100, 2.5]) assert.throws(() => setThreadRealtime(bad), RangeError);
});

Deno.test({
  name: "setThreadNice changes the calling thread only (a worker), without privileges",
  ignore: !linux,
  fn: async () => {
    const before = statFields("thread-self")[NICE];
    // In a worker: a nice value once raised cannot be lowered again without CAP_SYS_NICE.
    const code = `
      import { setThreadNice } from ${
      JSON.stringify(new URL("./thread_priority.ts", import.meta.url).href)
    };
      const ok = setThreadNice(7);
      const stat = Deno.readTextFileSync("/proc/thread-self/stat");
      self.postMessage({ ok, nice: stat.slice(stat.lastIndexOf(")") + 2).split(" ")[${NICE}] });
    `;
    const worker = new Worker(
      URL.createObjectURL(new Blob([code], { type: "text/javascript" })),
      { type: "module" },
    );
    try {
      const reply = await new Promise<{ ok: boolean; nice: string }>((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
      });
      assert.deepEqual(reply, { ok: true, nice: "7" });
      assert.equal(statFields("thread-self")[NICE], before, "the test's own thread is unchanged");
    } finally {
      worker.terminate();
    }
  },
});

Deno.test({
  name: "setThreadRealtime(priority, tid) raises another process as root, fails softly otherwise",
  ignore: !linux,
  fn: async () => {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      const ok = setThreadRealtime(11, child.pid);
      const fields = statFields(String(child.pid));
      if (Deno.uid() === 0) {
        assert.equal(ok, true);
        assert.equal(fields[POLICY], "1", "SCHED_FIFO");
        assert.equal(fields[RT_PRIORITY], "11");
      } else {
        assert.equal(ok, false);
        assert.equal(fields[POLICY], "0", "unchanged");
      }
    } finally {
      child.kill();
      await child.status;
    }
  },
});
