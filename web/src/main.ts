// The page: a header (views, token), a status line, and one view at a time:
// the cluster, a terminal, or a race.

import { hubClient, hubTransport, storeToken } from "./api";
import { AttachFeed } from "./attach";
import { ClusterView } from "./cluster";
import { describeError, needsToken } from "./errors";
import { allTags } from "./model";
import { RaceView } from "./race";
import { WatchSource } from "./watch";
import { TerminalView } from "./terminal";
import type { Session } from "./gen/wsh/v1/types_pb";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

function main(): void {
  const transport = hubTransport(window.location.origin);
  const hub = hubClient(transport);
  const main = byId<HTMLElement>("main");
  const status = byId<HTMLParagraphElement>("status");
  const tokenForm = byId<HTMLFormElement>("token-form");
  const tokenInput = byId<HTMLInputElement>("token-input");
  const navCluster = byId<HTMLButtonElement>("nav-cluster");
  const navRace = byId<HTMLButtonElement>("nav-race");
  const source = new WatchSource(hub);
  let terminal: TerminalView | null = null;

  const report = (message: string, err?: unknown): void => {
    status.classList.toggle("error", err !== undefined);
    status.textContent = err === undefined ? message : `${message}: ${describeError(err)}`;
    if (needsToken(err)) {
      status.textContent += " (type the hub's token above)";
      tokenInput.focus();
    }
  };

  const show = (view: "cluster" | "race" | "terminal", root: HTMLElement): void => {
    navCluster.toggleAttribute("aria-current", view === "cluster");
    navRace.toggleAttribute("aria-current", view === "race");
    if (view === "cluster") navCluster.setAttribute("aria-current", "page");
    if (view === "race") navRace.setAttribute("aria-current", "page");
    main.replaceChildren(root);
  };

  const closeTerminal = (): void => {
    terminal?.close();
  };

  const open = (session: Session): void => {
    closeTerminal();
    const view = new TerminalView(
      hub,
      session,
      () => {
        if (terminal === view) {
          terminal = null;
          show("cluster", cluster.root);
          // Back where the person was: the session's Open button.
          const again = cluster.root.querySelector<HTMLElement>(
            `[data-key="${CSS.escape(`${session.server}/${session.name}#open`)}"]`,
          );
          (again ?? main).focus();
        }
      },
      report,
      new AttachFeed(transport, session.server, session.name),
    );
    terminal = view;
    show("terminal", view.root);
    view.start();
  };

  const cluster = new ClusterView(hub, { open, report, changed: () => source.refresh() });
  const race = new RaceView(hub, report);

  navCluster.addEventListener("click", () => {
    closeTerminal();
    show("cluster", cluster.root);
  });
  navRace.addEventListener("click", () => {
    closeTerminal();
    show("race", race.root);
  });
  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken(tokenInput.value.trim());
    tokenInput.value = "";
    report("Token set for this tab.");
    source.refresh();
  });

  show("cluster", cluster.root);
  let failing = false;
  void source.run(
    (state) => {
      if (failing) report("Connected.");
      failing = false;
      cluster.update(state);
      race.setTags(allTags(state.sessions));
    },
    (err) => {
      failing = true;
      report("Cannot list the cluster", err);
    },
    new AbortController().signal,
  );
}

main();
