// The cluster view: servers with health and latency, sessions by server with
// their tags, activity, foreground command and exit code; filters by tag and
// server; create, rename, retag, kill, and open a live terminal.

import type { Hub } from "./api";
import { clear, h } from "./dom";
import { type Server } from "./gen/wsh/v1/hub_pb";
import type { Session } from "./gen/wsh/v1/types_pb";
import {
  activity,
  allTags,
  type Cluster,
  emptyCluster,
  exitText,
  type Filters,
  filterSessions,
  groupByServer,
  healthName,
  latencyText,
  parseTags,
  sessionKey,
  tagChanges,
} from "./model";

export interface ClusterActions {
  open(session: Session): void;
  report(message: string, error?: unknown): void;
  changed(): void;
}

/** An open rename or retag: its form is built once and moved into each
 * render, so what is being typed (and the caret) survives live updates. */
type Edit = { key: string; kind: "rename" | "tags"; value: string; form?: HTMLElement };

/** How long a Kill button waits for its confirming second press. */
const CONFIRM_MS = 5000;

export class ClusterView {
  readonly root = h("section", { "aria-labelledby": "cluster-title" });
  private cluster: Cluster = emptyCluster();
  private filters: Filters = { tag: "", server: "" };
  private edit: Edit | null = null;
  /** What the last render showed: a render that would show the same is
   * skipped, so elements (and a person's click or focus) stay put. */
  private shown = "";
  private confirming = new Map<string, number>();
  private readonly serversBox = h("div");
  private readonly filtersBox = h("div", { class: "filters" });
  private readonly sessionsBox = h("div", { id: "sessions" });
  private readonly createForm: HTMLFormElement;

  constructor(
    private readonly hub: Hub,
    private readonly actions: ClusterActions,
  ) {
    this.createForm = this.buildCreateForm();
    this.root.append(
      h("h2", { id: "cluster-title" }, "Servers"),
      this.serversBox,
      h("h2", {}, "Sessions"),
      this.filtersBox,
      this.createForm,
      this.sessionsBox,
    );
  }

  update(cluster: Cluster): void {
    this.cluster = cluster;
    this.render();
  }

  private render(): void {
    const view = this.signature();
    if (view === this.shown) return;
    this.shown = view;
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.key;
    this.renderServers();
    this.renderFilters();
    this.renderServerChoices();
    this.renderSessions();
    if (focused) {
      const again = this.root.querySelector<HTMLElement>(`[data-key="${CSS.escape(focused)}"]`);
      again?.focus();
    }
  }

  private signature(): string {
    const now = Date.now();
    return JSON.stringify([
      this.cluster.servers.map((s) => [s.hostname, s.address, s.health, latencyText(s),
        s.sessionCount, s.lastError]),
      this.cluster.sessions.map((s) => [sessionKey(s), s.tags, activity(s, this.cluster.quiet?.get(sessionKey(s))),
        s.foreground, exitText(s), s.rows, s.cols]),
      this.cluster.missing.map((s) => [s.hostname, s.address, s.health]),
      this.filters,
      this.edit && [this.edit.key, this.edit.kind],
      [...this.confirming].filter(([, until]) => until > now).map(([key]) => key),
    ]);
  }

  private renderServers(): void {
    const rows = this.cluster.servers.map((server) =>
      h(
        "tr",
        { "data-server": server.hostname },
        h("th", { scope: "row" }, server.hostname || "(unknown)"),
        h("td", { "data-label": "Address" }, server.address),
        h("td", { "data-label": "Health", class: `health-${healthName(server.health)}` },
          healthName(server.health)),
        h("td", { "data-label": "Latency" }, latencyText(server)),
        h("td", { "data-label": "Sessions" }, String(server.sessionCount)),
        h("td", { "data-label": "Last error" }, server.lastError),
      ),
    );
    clear(this.serversBox);
    this.serversBox.append(
      h(
        "table",
        { class: "servers cards" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["Server", "Address", "Health", "Latency", "Sessions", "Last error"].map((t) =>
              h("th", { scope: "col" }, t),
            ),
          ),
        ),
        h("tbody", {}, ...rows),
      ),
    );
  }

  private renderFilters(): void {
    const tags = allTags(this.cluster.sessions);
    if (this.filters.tag && !tags.includes(this.filters.tag)) tags.push(this.filters.tag);
    const servers = this.cluster.servers.map((s) => s.hostname).filter(Boolean);
    const select = (id: string, label: string, all: string, values: string[], current: string,
      set: (value: string) => void) => {
      const el = h("select", { id, "data-key": `filter-${id}` },
        h("option", { value: "" }, all),
        ...values.map((v) => h("option", { value: v, selected: v === current }, v)));
      el.addEventListener("change", () => {
        set(el.value);
        this.render();
      });
      return h("label", { for: id }, label, el);
    };
    clear(this.filtersBox);
    this.filtersBox.append(
      select("filter-tag", "Tag", "every tag", tags, this.filters.tag, (v) => (this.filters.tag = v)),
      select("filter-server", "Server", "every server", servers, this.filters.server,
        (v) => (this.filters.server = v)),
    );
  }

  private buildCreateForm(): HTMLFormElement {
    const field = (id: string, label: string, attrs: Record<string, string> = {}) =>
      h("label", { for: id }, label, h("input", { id, ...attrs }));
    const form = h(
      "form",
      { class: "create", "aria-label": "New session", autocomplete: "off" },
      field("create-name", "Name", { placeholder: "optional" }),
      h("label", { for: "create-server" }, "Server", h("select", { id: "create-server" })),
      field("create-command", "Command", { placeholder: "login shell" }),
      field("create-tags", "Tags", { placeholder: "a, b" }),
      h("button", { type: "submit", id: "create-submit" }, "Create"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create(form);
    });
    return form;
  }

  private renderServerChoices(): void {
    const select = this.createForm.querySelector<HTMLSelectElement>("#create-server");
    if (!select) return;
    const current = select.value;
    const names = this.cluster.servers
      .filter((s) => s.hostname)
      .map((s: Server, i) => ({ value: i === 0 ? "" : s.hostname, label: s.hostname }));
    const wanted = names.map((n) => `${n.value}=${n.label}`).join(",");
    if (select.dataset.names === wanted) return;
    select.dataset.names = wanted;
    select.replaceChildren(...names.map((n) => h("option", { value: n.value }, n.label)));
    select.value = names.some((n) => n.value === current) ? current : "";
  }

  private async create(form: HTMLFormElement): Promise<void> {
    const value = (id: string) => (form.querySelector<HTMLInputElement>(`#${id}`)?.value ?? "").trim();
    try {
      const { session } = await this.hub.createSession({
        name: value("create-name"),
        server: value("create-server"),
        command: value("create-command"),
        tags: parseTags(value("create-tags")),
      });
      this.actions.report(`Created ${session?.name} on ${session?.server}.`);
      form.querySelector<HTMLInputElement>("#create-name")!.value = "";
      this.actions.changed();
    } catch (err) {
      this.actions.report("Could not create the session", err);
    }
  }

  private renderSessions(): void {
    const shown = filterSessions(this.cluster.sessions, this.filters);
    const servers = this.filters.server
      ? this.cluster.servers.filter((s) => s.hostname === this.filters.server)
      : this.cluster.servers;
    const groups = groupByServer(servers, shown);
    clear(this.sessionsBox);
    for (const missing of this.cluster.missing) {
      this.sessionsBox.append(
        h("p", { class: "status error" },
          `${missing.hostname || missing.address}: ${healthName(missing.health)}, its sessions are not listed`),
      );
    }
    for (const [server, sessions] of groups) {
      const rows = sessions.map((s) => this.sessionRow(s));
      this.sessionsBox.append(
        h(
          "table",
          { class: "sessions cards", "data-server": server },
          h("caption", {}, `${server} (${sessions.length})`),
          h(
            "thead",
            {},
            h("tr", {}, ...["Session", "Tags", "Activity", "Foreground", "Exit", "Size", "Actions"]
              .map((t) => h("th", { scope: "col" }, t))),
          ),
          h("tbody", {}, ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7 }, "no sessions"))])),
        ),
      );
    }
  }

  private sessionRow(session: Session): HTMLTableRowElement {
    const key = sessionKey(session);
    const state = activity(session, this.cluster.quiet?.get(key));
    return h(
      "tr",
      { "data-session": key, "data-activity": state },
      h("th", { scope: "row", "data-label": "Session" }, session.name),
      h("td", { "data-label": "Tags" }, ...session.tags.map((t) => h("span", { class: "tag" }, t))),
      h("td", { "data-label": "Activity", class: `activity-${state}` }, state),
      h("td", { "data-label": "Foreground" }, session.foreground),
      h("td", { "data-label": "Exit" }, exitText(session)),
      h("td", { "data-label": "Size" }, `${session.cols}x${session.rows}`),
      h("td", { "data-label": "Actions" }, this.edit?.key === key ? this.editForm(session) : this.buttons(session)),
    );
  }

  private buttons(session: Session): HTMLElement {
    const key = sessionKey(session);
    const button = (action: string, label: string, run: () => void, extra: Record<string, string> = {}) =>
      h("button", { type: "button", "data-key": `${key}#${action}`, "data-action": action,
        "aria-label": `${label} ${session.name} on ${session.server}`, onclick: run, ...extra }, label);
    const armed = (this.confirming.get(key) ?? 0) > Date.now();
    return h(
      "div",
      { class: "actions" },
      button("open", "Open", () => this.actions.open(session)),
      button("rename", "Rename", () => this.startEdit(session, "rename")),
      button("tags", "Tags", () => this.startEdit(session, "tags")),
      button("kill", armed ? "Confirm kill" : "Kill", () => void this.kill(session), { class: "danger" }),
    );
  }

  private startEdit(session: Session, kind: Edit["kind"]): void {
    const key = sessionKey(session);
    this.edit = { key, kind, value: kind === "rename" ? session.name : session.tags.join(", ") };
    this.render();
    this.root.querySelector<HTMLInputElement>(`[data-key="${CSS.escape(`${key}#edit`)}"]`)?.focus();
  }

  private editForm(session: Session): HTMLElement {
    const edit = this.edit!;
    if (edit.form) return edit.form;
    const key = sessionKey(session);
    const label = edit.kind === "rename" ? `New name for ${session.name}` : `Tags of ${session.name}`;
    const input = h("input", { "data-key": `${key}#edit`, "aria-label": label, value: edit.value });
    input.addEventListener("input", () => (edit.value = input.value));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.edit = null;
        this.render();
      }
    });
    const form = h("form", { class: "actions" }, input,
      h("button", { type: "submit", "data-key": `${key}#save` }, "Save"),
      h("button", { type: "button", "data-key": `${key}#cancel`,
        onclick: () => { this.edit = null; this.render(); } }, "Cancel"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.saveEdit(session, edit);
    });
    edit.form = form;
    return form;
  }

  private async saveEdit(session: Session, edit: Edit): Promise<void> {
    const target = { server: session.server, name: session.name };
    try {
      if (edit.kind === "rename") {
        const newName = edit.value.trim();
        if (newName && newName !== session.name) await this.hub.updateSession({ ...target, newName });
      } else {
        await this.hub.updateSession({ ...target, ...tagChanges(session.tags, parseTags(edit.value)) });
      }
      this.edit = null;
      this.actions.report(`Updated ${session.name}.`);
      this.actions.changed();
    } catch (err) {
      this.actions.report(`Could not update ${session.name}`, err);
    }
  }

  private async kill(session: Session): Promise<void> {
    const key = sessionKey(session);
    if ((this.confirming.get(key) ?? 0) <= Date.now()) {
      this.confirming.set(key, Date.now() + CONFIRM_MS);
      this.render();
      return;
    }
    this.confirming.delete(key);
    try {
      await this.hub.killSession({ server: session.server, name: session.name });
      this.actions.report(`Killed ${session.name} on ${session.server}.`);
      this.actions.changed();
    } catch (err) {
      this.actions.report(`Could not kill ${session.name}`, err);
    }
  }
}
