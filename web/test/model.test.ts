import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ServerHealth, ServerSchema } from "../src/gen/wsh/v1/hub_pb";
import { SessionSchema, SessionState } from "../src/gen/wsh/v1/types_pb";
import {
  activity,
  allTags,
  BUSY_WITHIN_MS,
  exitText,
  filterSessions,
  groupByServer,
  healthName,
  latencyText,
  parseTags,
  tagChanges,
} from "../src/model";

const session = (init: Parameters<typeof create<typeof SessionSchema>>[1]) =>
  create(SessionSchema, { state: SessionState.RUNNING, lastActivityMs: 60_000, ...init });

test("activity: exited wins, then recent output, then the foreground's readiness", () => {
  assert.equal(activity(session({ state: SessionState.EXITED, exitCode: 0, lastActivityMs: 0 })), "exited");
  assert.equal(activity(session({ lastActivityMs: BUSY_WITHIN_MS - 1, ready: true })), "busy");
  assert.equal(activity(session({ ready: true })), "ready");
  assert.equal(activity(session({ ready: false })), "idle");
  // What the server says of settling wins over the listing's age.
  assert.equal(activity(session({ lastActivityMs: 0, ready: true }), true), "ready");
  assert.equal(activity(session({ lastActivityMs: 60_000 }), false), "busy");
});

test("exit text tells a signal from an exit code", () => {
  assert.equal(exitText(session({})), "");
  assert.equal(exitText(session({ exitCode: 0 })), "exit 0");
  assert.equal(exitText(session({ exitCode: -9 })), "killed by signal 9");
});

test("filters by tag and by server, together", () => {
  const all = [
    session({ name: "a", server: "hub", tags: ["ci"] }),
    session({ name: "b", server: "build-1", tags: ["ci", "x"] }),
    session({ name: "c", server: "build-1", tags: [] }),
  ];
  assert.deepEqual(filterSessions(all, { tag: "ci", server: "" }).map((s) => s.name), ["a", "b"]);
  assert.deepEqual(filterSessions(all, { tag: "", server: "build-1" }).map((s) => s.name), ["b", "c"]);
  assert.deepEqual(filterSessions(all, { tag: "ci", server: "build-1" }).map((s) => s.name), ["b"]);
  assert.deepEqual(filterSessions(all, { tag: "", server: "" }).length, 3);
  assert.deepEqual(allTags(all), ["ci", "x"]);
});

test("groups keep the servers' order, empty servers too, and sort by name", () => {
  const servers = ["hub", "build-1", "build-2"].map((hostname) => create(ServerSchema, { hostname }));
  const groups = groupByServer(servers, [
    session({ name: "z", server: "build-1" }),
    session({ name: "a", server: "build-1" }),
    session({ name: "q", server: "gone" }),
  ]);
  assert.deepEqual([...groups.keys()], ["hub", "build-1", "build-2", "gone"]);
  assert.deepEqual(groups.get("build-1")!.map((s) => s.name), ["a", "z"]);
  assert.deepEqual(groups.get("hub"), []);
});

test("tags typed by a person, and the update that makes them so", () => {
  assert.deepEqual(parseTags(" a, b  c,,a "), ["a", "b", "c"]);
  assert.deepEqual(parseTags(""), []);
  assert.deepEqual(tagChanges(["a", "b"], ["b", "c"]), { addTags: ["c"], removeTags: ["a"] });
});

test("health and latency as shown", () => {
  const healthy = create(ServerSchema, { health: ServerHealth.HEALTHY, address: "http://x", latencyMs: 1.234 });
  assert.equal(healthName(healthy.health), "healthy");
  assert.equal(latencyText(healthy), "1.2 ms");
  assert.equal(latencyText(create(ServerSchema, { health: ServerHealth.HEALTHY, address: "http://x", latencyMs: 42.6 })), "43 ms");
  assert.equal(latencyText(create(ServerSchema, { health: ServerHealth.HEALTHY, address: "local" })), "local");
  assert.equal(latencyText(create(ServerSchema, { health: ServerHealth.UNAVAILABLE })), "");
  assert.equal(healthName(ServerHealth.REJECTED), "rejected");
});
