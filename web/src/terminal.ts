// The terminal view: one session live in xterm.js. Output comes from a
// TerminalFeed; keystrokes go by SendInput (gRPC-Web cannot stream from the
// browser); the session is resized to the window unless read-only; copy and
// scrollback paging beside it.

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import type { Hub } from "./api";
import { clear, h } from "./dom";
import { describeError, isAbort } from "./errors";
import { InputQueue, type TerminalFeed } from "./feed";
import type { Screen, Session } from "./gen/wsh/v1/types_pb";
import { lastPage, newerPage, olderPage, type Page, pageLabel } from "./scrollback";

const RESIZE_DEBOUNCE_MS = 150;

export class TerminalView {
  readonly root: HTMLElement;
  private readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly abort = new AbortController();
  private readonly input: InputQueue;
  private readonly encoder = new TextEncoder();
  private readonly termBox = h("div", { class: "term", id: "terminal" });
  private readonly state = h("span", { id: "terminal-state", role: "status" }, "connecting");
  private readonly scrollbackBox = h("div", { id: "scrollback-box" });
  private readonly readOnlyBox: HTMLInputElement;
  private resizeTimer = 0;
  private parsed = 0;
  private readonly onWindowResize = () => this.scheduleResize();

  constructor(
    private readonly hub: Hub,
    private readonly session: Session,
    private readonly closed: () => void,
    private readonly report: (message: string, err?: unknown) => void,
    private readonly feed: TerminalFeed,
  ) {
    this.readOnlyBox = h("input", { type: "checkbox", id: "read-only" });
    this.readOnlyBox.addEventListener("change", () => {
      this.term.options.disableStdin = this.readOnly;
      if (!this.readOnly) this.scheduleResize();
    });
    this.root = h(
      "section",
      { class: "terminal-view", "aria-labelledby": "terminal-title" },
      h(
        "div",
        { class: "toolbar" },
        h("h2", { id: "terminal-title" }, `${session.name} on ${session.server}`),
        this.state,
        h("label", { for: "read-only" }, this.readOnlyBox, " read-only"),
        h("button", { type: "button", id: "copy", onclick: () => void this.copy() }, "Copy text"),
        h("button", { type: "button", id: "scrollback", onclick: () => void this.showPage(null) }, "Scrollback"),
        h("button", { type: "button", id: "close-terminal", onclick: () => this.close(),
          "aria-keyshortcuts": "Control+Backslash", title: "Close (Ctrl+\\ in the terminal)" }, "Close"),
      ),
      this.termBox,
      this.scrollbackBox,
    );
    this.term = new Terminal({
      cols: session.cols,
      rows: session.rows,
      scrollback: 0,
      convertEol: false,
      fontFamily: "DejaVu Sans Mono, monospace",
      fontSize: 14,
      screenReaderMode: false,
    });
    this.term.loadAddon(this.fit);
    const target = { server: session.server, name: session.name };
    this.input = new InputQueue(
      (data) => this.hub.sendInput({ ...target, input: { case: "data", value: this.encoder.encode(data) } }),
      (err) => this.report(`Input to ${session.name} failed`, err),
    );
    // The same key as `wsh attach`'s detach key leaves the terminal: inside
    // it, Tab and Escape belong to the program, so the keyboard needs a way out.
    this.term.attachCustomKeyEventHandler((event) => {
      if (event.type === "keydown" && event.ctrlKey && event.key === "\\") {
        event.preventDefault();
        this.close();
        return false;
      }
      return true;
    });
    this.term.onData((data) => {
      if (!this.readOnly) this.input.push(data);
    });
  }

  get readOnly(): boolean {
    return this.readOnlyBox.checked;
  }

  /** Call once the root is in the document. */
  start(): void {
    this.term.open(this.termBox);
    window.addEventListener("resize", this.onWindowResize);
    this.scheduleResize();
    this.term.focus();
    void this.follow();
  }

  private async follow(): Promise<void> {
    const view = this;
    try {
      this.state.textContent = "live";
      await this.feed.run(
        {
          // data-parsed counts writes xterm.js has taken into its buffer
          // (drawn on the next animation frame): bench/web.py times both.
          write: (data) =>
            view.term.write(data, () => {
              view.termBox.dataset.parsed = String(++view.parsed);
            }),
          screen: (screen) => view.showScreen(screen),
          exited: (code) => {
            view.state.textContent = code < 0 ? `killed by signal ${-code}` : `exited ${code}`;
          },
        },
        this.abort.signal,
      );
    } catch (err) {
      if (isAbort(err)) return;
      this.state.textContent = "ended";
      this.report(`${this.session.name}: ${describeError(err)}`, err);
    }
  }

  private showScreen(screen: Screen): void {
    // The repaint is for a terminal of the session's size.
    if (screen.cols !== this.term.cols || screen.rows !== this.term.rows) {
      this.term.resize(screen.cols, screen.rows);
    }
  }

  private scheduleResize(): void {
    window.clearTimeout(this.resizeTimer);
    this.resizeTimer = window.setTimeout(() => void this.resizeToWindow(), RESIZE_DEBOUNCE_MS);
  }

  private async resizeToWindow(): Promise<void> {
    if (this.readOnly || this.abort.signal.aborted) return;
    const size = this.fit.proposeDimensions();
    if (!size || !Number.isFinite(size.cols) || !Number.isFinite(size.rows)) return;
    const cols = Math.max(2, Math.min(1000, size.cols));
    const rows = Math.max(2, Math.min(1000, size.rows));
    if (this.term.cols === cols && this.term.rows === rows) return;
    // The terminal first: output drawn for the new size may come before the
    // resize's answer.
    this.term.resize(cols, rows);
    try {
      await this.hub.resizeSession({ server: this.session.server, name: this.session.name, rows, cols });
    } catch (err) {
      // An exited session keeps its size; nothing to tell.
      if (!isAbort(err)) this.state.title = describeError(err);
    }
  }

  /** The screen's text as the terminal shows it (whatever the feed). */
  private screenText(): string {
    const buffer = this.term.buffer.active;
    const lines: string[] = [];
    for (let row = 0; row < this.term.rows; row++) {
      lines.push(buffer.getLine(buffer.viewportY + row)?.translateToString(true) ?? "");
    }
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }

  private async copy(): Promise<void> {
    const text = this.term.getSelection() || this.screenText();
    try {
      await navigator.clipboard.writeText(text);
      this.report(`Copied ${text.length} characters.`);
    } catch (err) {
      this.report("The browser refused the clipboard", err);
    }
  }

  private async showPage(page: Page | null): Promise<void> {
    const target = { server: this.session.server, name: this.session.name };
    try {
      let wanted = page;
      if (!wanted) {
        const probe = await this.hub.getScrollback({ ...target, offset: 0, limit: 1 });
        wanted = lastPage(probe.totalLines);
      }
      const got = await this.hub.getScrollback({ ...target, offset: wanted.offset, limit: wanted.limit });
      const shown = got.lines.length;
      const older = olderPage(wanted);
      const newer = newerPage(wanted, shown, got.totalLines);
      clear(this.scrollbackBox);
      this.scrollbackBox.append(
        h(
          "div",
          { class: "toolbar" },
          h("span", { id: "scrollback-label" }, pageLabel(got.offset, shown, got.totalLines)),
          h("button", { type: "button", id: "scrollback-older", disabled: !older,
            onclick: () => older && void this.showPage(older) }, "Older"),
          h("button", { type: "button", id: "scrollback-newer", disabled: !newer,
            onclick: () => newer && void this.showPage(newer) }, "Newer"),
          h("button", { type: "button", id: "scrollback-hide",
            onclick: () => clear(this.scrollbackBox) }, "Hide"),
        ),
        h("pre", { class: "scrollback", id: "scrollback-lines", tabindex: 0,
          "aria-label": "Scrollback lines" }, got.lines.join("\n")),
      );
    } catch (err) {
      this.report("Could not read the scrollback", err);
    }
  }

  close(): void {
    this.abort.abort();
    window.removeEventListener("resize", this.onWindowResize);
    window.clearTimeout(this.resizeTimer);
    this.term.dispose();
    this.closed();
  }
}
