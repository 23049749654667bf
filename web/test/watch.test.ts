import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  ServerHealth,
  ServerSchema,
  WatchEvent,
  WatchSessionsResponseSchema,
} from "../src/gen/wsh/v1/hub_pb";
import { SessionSchema, SessionState } from "../src/gen/wsh/v1/types_pb";
import { WatchState } from "../src/watch";

const server = (hostname: string, health = ServerHealth.HEALTHY) =>
  create(ServerSchema, { hostname, health, address: hostname === "hub" ? "local" : `http://${hostname}` });
const session = (serverName: string, name: string, extra = {}) =>
  create(SessionSchema, { server: serverName, name, state: SessionState.RUNNING, ...extra });
const ev = (event: WatchEvent, init: Record<string, unknown> = {}) =>
  create(WatchSessionsResponseSchema, { event, ...init });

function snapshot(state: WatchState, resync = false): boolean {
  let changed = false;
  for (const e of [
    ev(WatchEvent.SERVER, { server: "hub", serverInfo: server("hub"), resync }),
    ev(WatchEvent.SERVER, { server: "b1", serverInfo: server("b1"), resync }),
    ev(WatchEvent.SESSION, { server: "b1", session: "api", sessionInfo: session("b1", "api"), quiet: true, resync }),
    ev(WatchEvent.SYNCED, { resync }),
  ]) changed = state.apply(e);
  return changed;
}

test("nothing is shown until the snapshot is complete", () => {
  const state = new WatchState();
  assert.equal(state.apply(ev(WatchEvent.SERVER, { server: "hub", serverInfo: server("hub") })), false);
  assert.equal(state.apply(ev(WatchEvent.SYNCED)), true);
  assert.deepEqual(state.cluster().servers.map((s) => s.hostname), ["hub"]);
});

test("events change the snapshot: create, rename, tags, exit, kill, busy and idle", () => {
  const state = new WatchState();
  assert.ok(snapshot(state));
  assert.equal(state.cluster().quiet?.get("b1/api"), true);
  assert.ok(state.apply(ev(WatchEvent.SESSION_CREATED, { server: "b1", session: "web", sessionInfo: session("b1", "web") })));
  assert.ok(state.apply(ev(WatchEvent.SESSION_BUSY, { server: "b1", session: "api", generation: 7n })));
  assert.equal(state.cluster().quiet?.get("b1/api"), false);
  assert.ok(state.apply(ev(WatchEvent.SESSION_RENAMED, { server: "b1", session: "api2", previousName: "api", sessionInfo: session("b1", "api2") })));
  assert.equal(state.cluster().quiet?.get("b1/api2"), false);
  assert.ok(state.apply(ev(WatchEvent.SESSION_TAGS_CHANGED, { server: "b1", session: "web", sessionInfo: session("b1", "web", { tags: ["x"] }) })));
  assert.ok(state.apply(ev(WatchEvent.SESSION_EXITED, { server: "b1", session: "web", sessionInfo: session("b1", "web", { state: SessionState.EXITED, exitCode: 3, tags: ["x"] }) })));
  assert.ok(state.apply(ev(WatchEvent.SESSION_IDLE, { server: "b1", session: "api2" })));
  const names = state.cluster().sessions.map((s) => `${s.name}:${s.exitCode ?? ""}:${s.tags.join()}`).sort();
  assert.deepEqual(names, ["api2::", "web:3:x"]);
  assert.ok(state.apply(ev(WatchEvent.SESSION_KILLED, { server: "b1", session: "web" })));
  assert.deepEqual(state.cluster().sessions.map((s) => s.name), ["api2"]);
});

test("a server that goes down hides its sessions until it is back", () => {
  const state = new WatchState();
  snapshot(state);
  state.apply(ev(WatchEvent.SERVER_HEALTH_CHANGED, { server: "b1", serverInfo: server("b1", ServerHealth.UNAVAILABLE) }));
  assert.deepEqual(state.cluster().sessions, []);
  assert.deepEqual(state.cluster().missing.map((s) => s.hostname), ["b1"]);
  state.apply(ev(WatchEvent.SERVER_HEALTH_CHANGED, { server: "b1", serverInfo: server("b1") }));
  assert.deepEqual(state.cluster().sessions.map((s) => s.name), ["api"]);
  state.apply(ev(WatchEvent.SESSION_REMOVED, { server: "b1", session: "api" }));
  state.apply(ev(WatchEvent.SERVER_REMOVED, { server: "b1" }));
  assert.deepEqual(state.cluster().servers.map((s) => s.hostname), ["hub"]);
});

test("a resync's snapshot replaces everything known", () => {
  const state = new WatchState();
  snapshot(state);
  state.apply(ev(WatchEvent.SESSION_CREATED, { server: "b1", session: "gone", sessionInfo: session("b1", "gone") }));
  assert.equal(snapshot(state, true), true);
  assert.deepEqual(state.cluster().sessions.map((s) => s.name), ["api"]);
});

test("latency comes from ListServers, merged into what the stream said", () => {
  const state = new WatchState();
  snapshot(state);
  assert.ok(state.latency([create(ServerSchema, { hostname: "b1", latencyMs: 2.5 })]));
  assert.equal(state.cluster().servers.find((s) => s.hostname === "b1")?.latencyMs, 2.5);
  assert.equal(state.latency([create(ServerSchema, { hostname: "b1", latencyMs: 2.5 })]), false);
});

test("foreground and readiness come from ListSessions for known sessions only", () => {
  const state = new WatchState();
  snapshot(state);
  assert.ok(state.details([session("b1", "api", { foreground: "bash", ready: true }), session("b1", "stray")]));
  const sessions = state.cluster().sessions;
  assert.deepEqual(sessions.map((s) => [s.name, s.foreground, s.ready]), [["api", "bash", true]]);
  assert.equal(state.details([session("b1", "api", { foreground: "bash", ready: true })]), false);
});
