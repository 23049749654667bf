import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describeError, decodeReason, errorReason, needsToken } from "../src/errors";
import { InputQueue } from "../src/feed";
import { IdleSchema } from "../src/gen/wsh/v1/types_pb";
import { raceLine } from "../src/race";
import { lastPage, newerPage, olderPage, pageLabel } from "../src/scrollback";

// google.rpc.ErrorInfo{reason: "SESSION_NOT_FOUND", domain: "wsh.v1", metadata: {session: "x"}}
// encoded by hand: the page has no schema for it and reads field 1 only.
function errorInfo(reason: string): Uint8Array {
  const enc = new TextEncoder();
  const r = enc.encode(reason);
  const d = enc.encode("wsh.v1");
  const entry = [0x0a, 7, ...enc.encode("session"), 0x12, 1, ...enc.encode("x")];
  return new Uint8Array([0x0a, r.length, ...r, 0x12, d.length, ...d, 0x1a, entry.length, ...entry]);
}

test("the reason comes from the ErrorInfo detail, wherever its field sits", () => {
  assert.equal(decodeReason(errorInfo("SESSION_NOT_FOUND")), "SESSION_NOT_FOUND");
  assert.equal(decodeReason(new Uint8Array([0x12, 1, 0x41, 0x0a, 2, 0x4f, 0x4b])), "OK");
  const err = new ConnectError("No session x.", Code.NotFound);
  // As the transport stores a detail read from grpc-status-details-bin.
  err.details = [{ type: "google.rpc.ErrorInfo", value: errorInfo("SESSION_NOT_FOUND") }];
  assert.equal(errorReason(err), "SESSION_NOT_FOUND");
  assert.equal(describeError(err), "SESSION_NOT_FOUND: No session x.");
  assert.equal(describeError(new ConnectError("", Code.Unavailable)), "Unavailable");
  assert.equal(errorReason(new Error("x")), "");
});

test("a missing or wrong token asks for the token", () => {
  assert.ok(needsToken(new ConnectError("", Code.Unauthenticated)));
  assert.ok(needsToken(new ConnectError("", Code.PermissionDenied)));
  assert.ok(!needsToken(new ConnectError("", Code.NotFound)));
});

test("keys typed during a send go together in the next, in order", async () => {
  const sent: string[] = [];
  let release: () => void = () => {};
  const queue = new InputQueue(
    (data) => {
      sent.push(data);
      return new Promise<void>((resolve) => (release = resolve));
    },
    () => assert.fail("no failure"),
  );
  queue.push("e");
  queue.push("c");
  queue.push("h");
  assert.deepEqual(sent, ["e"]);
  release();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(sent, ["e", "ch"]);
  queue.push("o");
  release();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(sent, ["e", "ch", "o"]);
});

test("a failed send is reported and the queue goes on", async () => {
  const failures: unknown[] = [];
  let calls = 0;
  const queue = new InputQueue(
    async () => {
      calls += 1;
      if (calls === 1) throw new Error("exited");
    },
    (err) => failures.push(err),
  );
  queue.push("a");
  await new Promise((r) => setTimeout(r, 0));
  queue.push("b");
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(failures.length, 1);
  assert.equal(calls, 2);
});

test("scrollback pages go from the newest back to the oldest and forward again", () => {
  const last = lastPage(450, 200);
  assert.deepEqual(last, { offset: 250, limit: 200 });
  const older = olderPage(last)!;
  assert.deepEqual(older, { offset: 50, limit: 200 });
  assert.deepEqual(olderPage(older), { offset: 0, limit: 200 });
  assert.equal(olderPage({ offset: 0, limit: 200 }), null);
  assert.deepEqual(newerPage(older, 200, 450), { offset: 250, limit: 200 });
  assert.equal(newerPage(last, 200, 450), null);
  // A page cut short by the size budget continues where it stopped.
  assert.deepEqual(newerPage({ offset: 0, limit: 200 }, 120, 450), { offset: 120, limit: 200 });
  assert.deepEqual(lastPage(10, 200), { offset: 0, limit: 200 });
  assert.equal(pageLabel(250, 200, 450), "lines 251-450 of 450");
  assert.equal(pageLabel(0, 0, 0), "no lines of 0");
});

test("a race line says who settled, where, when and how", () => {
  const idle = create(IdleSchema, { session: "api", server: "build-1", ready: true, foreground: "bash" });
  assert.equal(raceLine(1, idle, 1234), "1. api on build-1 after 1.2 s (ready, bash)");
  const exited = create(IdleSchema, { session: "job", server: "hub", exitCode: 2 });
  assert.equal(raceLine(2, exited, 50), "2. job on hub after 0.1 s (exit 2)");
  assert.ok(toBinary(IdleSchema, idle).length > 0);
});
