// The race view: pick a tag, watch its sessions settle in order (RaceIdle,
// every result until nothing settles within the wait).

import { Code } from "@connectrpc/connect";
import type { Hub } from "./api";
import { clear, h } from "./dom";
import { errorCode, isAbort } from "./errors";
import { IdleMode } from "./gen/wsh/v1/hub_pb";
import type { Idle } from "./gen/wsh/v1/types_pb";

export const RACE_QUIET_MS = 500;
export const RACE_WAIT_MS = 30000;

/** One line per result: "1. build on build-1 after 1.2 s (ready, bash)". */
export function raceLine(place: number, idle: Idle, elapsedMs: number): string {
  const how = idle.exitCode !== undefined ? `exit ${idle.exitCode}` : idle.ready ? "ready" : "quiet";
  const what = idle.foreground ? `, ${idle.foreground}` : "";
  return `${place}. ${idle.session} on ${idle.server} after ${(elapsedMs / 1000).toFixed(1)} s (${how}${what})`;
}

export class RaceView {
  readonly root = h("section", { "aria-labelledby": "race-title" });
  private readonly tagSelect = h("select", { id: "race-tag" });
  private readonly readyBox = h("input", { type: "checkbox", id: "race-ready" });
  private readonly results = h("ol", { class: "race-results", id: "race-results", "aria-live": "polite" });
  private readonly state = h("p", { id: "race-state", role: "status" });
  private readonly startButton = h("button", { type: "submit", id: "race-start" }, "Race");
  private readonly stopButton = h("button", { type: "button", id: "race-stop", disabled: true }, "Stop");
  private running: AbortController | null = null;

  constructor(
    private readonly hub: Hub,
    private readonly report: (message: string, err?: unknown) => void,
  ) {
    const form = h(
      "form",
      { class: "filters", "aria-label": "Race" },
      h("label", { for: "race-tag" }, "Tag", this.tagSelect),
      h("label", { for: "race-ready", class: "check" }, this.readyBox, "ready (prompt back)"),
      this.startButton,
      this.stopButton,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.race();
    });
    this.stopButton.addEventListener("click", () => this.running?.abort());
    this.root.append(h("h2", { id: "race-title" }, "Race"), form, this.state, this.results);
  }

  setTags(tags: string[]): void {
    const wanted = ["", ...tags].join(",");
    if (this.tagSelect.dataset.tags === wanted) return;
    this.tagSelect.dataset.tags = wanted;
    const current = this.tagSelect.value;
    this.tagSelect.replaceChildren(
      h("option", { value: "" }, "every session"),
      ...tags.map((t) => h("option", { value: t }, t)),
    );
    this.tagSelect.value = tags.includes(current) ? current : "";
  }

  private async race(): Promise<void> {
    this.running?.abort();
    const running = new AbortController();
    this.running = running;
    clear(this.results);
    const tag = this.tagSelect.value;
    this.state.textContent = `Racing ${tag ? `tag ${tag}` : "every session"}...`;
    this.startButton.disabled = true;
    this.stopButton.disabled = false;
    const started = performance.now();
    let place = 0;
    try {
      const stream = this.hub.raceIdle(
        {
          tags: tag ? [tag] : [],
          timeoutMs: RACE_QUIET_MS,
          maxWaitMs: RACE_WAIT_MS,
          mode: this.readyBox.checked ? IdleMode.READY : IdleMode.QUIET,
        },
        { signal: running.signal },
      );
      for await (const { idle } of stream) {
        if (!idle) continue;
        place += 1;
        this.results.append(h("li", { "data-session": `${idle.server}/${idle.session}` },
          raceLine(place, idle, performance.now() - started)));
      }
      this.state.textContent = `Done: ${place} settled.`;
    } catch (err) {
      if (isAbort(err)) this.state.textContent = `Stopped after ${place}.`;
      else if (errorCode(err) === Code.DeadlineExceeded)
        this.state.textContent = `Done: ${place} settled; nothing else within ${RACE_WAIT_MS / 1000} s.`;
      else if (errorCode(err) === Code.NotFound) this.state.textContent = "No session to race.";
      else this.report("The race failed", err);
    } finally {
      this.startButton.disabled = false;
      this.stopButton.disabled = true;
      if (this.running === running) this.running = null;
    }
  }
}
