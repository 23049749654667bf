// A Screen message as bytes for a terminal: what the page writes into xterm.js
// to show a session's screen as its server sees it (colours, attributes,
// cursor). Attach's snapshot carries such a repaint ready made; until the page
// uses Attach, it builds one from GetScreen/AwaitIdle screens here.

import type { Color, Screen, StyledSpan } from "./gen/wsh/v1/types_pb";

const ESC = "\x1b";

function colorParams(color: Color | undefined, background: boolean): string[] {
  const value = color?.value;
  if (!value || value.case === undefined) return [];
  if (value.case === "indexed") return [background ? "48" : "38", "5", String(value.value)];
  const rgb = value.value;
  return [
    background ? "48" : "38",
    "2",
    String((rgb >> 16) & 0xff),
    String((rgb >> 8) & 0xff),
    String(rgb & 0xff),
  ];
}

/** The SGR sequence that sets a span's style from the default pen. */
export function sgr(span: StyledSpan): string {
  const params: string[] = ["0"];
  if (span.bold) params.push("1");
  if (span.faint) params.push("2");
  if (span.italic) params.push("3");
  if (span.underline) params.push("4");
  if (span.blink) params.push("5");
  if (span.inverse) params.push("7");
  if (span.strikethrough) params.push("9");
  params.push(...colorParams(span.fg, false), ...colorParams(span.bg, true));
  return `${ESC}[${params.join(";")}m`;
}

/** Sequences that make a terminal of the screen's size show `screen`:
 * home, clear, each row (styled when the screen is), then the cursor. */
export function repaint(screen: Screen): string {
  const out: string[] = [`${ESC}[?25l${ESC}[0m${ESC}[H${ESC}[2J`];
  const styled = screen.styledLines.length > 0;
  const rows = styled ? screen.styledLines.length : screen.lines.length;
  for (let row = 0; row < rows && row < screen.rows; row++) {
    out.push(`${ESC}[${row + 1};1H`);
    if (styled) {
      for (const span of screen.styledLines[row].spans) out.push(sgr(span), span.text);
      out.push(`${ESC}[0m`);
    } else {
      out.push(screen.lines[row]);
    }
  }
  const cursor = screen.cursor;
  if (cursor) {
    out.push(`${ESC}[${cursor.row + 1};${cursor.col + 1}H`);
    if (cursor.visible) out.push(`${ESC}[?25h`);
  }
  return out.join("");
}
