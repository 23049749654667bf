import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { repaint, sgr } from "../src/ansi";
import { ScreenSchema, StyledSpanSchema } from "../src/gen/wsh/v1/types_pb";

test("sgr sets attributes and both colour kinds from the default pen", () => {
  const span = create(StyledSpanSchema, {
    text: "x",
    bold: true,
    underline: true,
    fg: { value: { case: "indexed", value: 196 } },
    bg: { value: { case: "rgb", value: 0x102030 } },
  });
  assert.equal(sgr(span), "\x1b[0;1;4;38;5;196;48;2;16;32;48m");
  assert.equal(sgr(create(StyledSpanSchema, { text: "plain" })), "\x1b[0m");
});

test("repaint clears, writes each row at its place, then puts the cursor back", () => {
  const screen = create(ScreenSchema, {
    rows: 3,
    cols: 10,
    lines: ["$ echo hi", "hi"],
    cursor: { row: 2, col: 2, visible: true },
  });
  const out = repaint(screen);
  assert.ok(out.startsWith("\x1b[?25l\x1b[0m\x1b[H\x1b[2J"));
  assert.ok(out.includes("\x1b[1;1H$ echo hi\x1b[2;1Hhi"));
  assert.ok(out.endsWith("\x1b[3;3H\x1b[?25h"));
  const hidden = repaint(create(ScreenSchema, { rows: 1, cols: 1, lines: [], cursor: { visible: false } }));
  assert.ok(!hidden.endsWith("\x1b[?25h"));
});

test("styled rows are written span by span and reset at the end", () => {
  const screen = create(ScreenSchema, {
    rows: 1,
    cols: 10,
    styledLines: [{ spans: [{ text: "ok", bold: true }, { text: " done" }] }],
  });
  assert.ok(repaint(screen).includes("\x1b[1;1H\x1b[0;1mok\x1b[0m done\x1b[0m"));
});
