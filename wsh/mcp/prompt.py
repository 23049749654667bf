"""The MCP prompt that teaches an agent to drive terminals through wsh, in a few lines."""

from __future__ import annotations

from wsh.mcp.screens import CURSOR

NAME = "wsh_workflow"
DESCRIPTION = (
    "How to drive terminal sessions with the wsh tools: the send/wait/read loop, and fanning "
    "work out to several sessions across servers and collecting each as it finishes."
)

WORKFLOW = f"""\
You drive real terminals through wsh. Sessions live on the servers of a cluster
(list_servers); each has a name, a server and tags.

The loop, one command at a time:
1. create_session (name, optional server and tags), or list_sessions.
2. run(session, text="make test\\n"): types the text (\\n is Enter), waits until the
   output settles, returns the screen. The cursor shows as {CURSOR}.
3. Read the screen and decide; run again. For a program that keeps going (a server,
   a long build), send_input then await_idle with last_generation = the generation
   send_input returned, or get_screen to look without waiting.
4. Interrupt with send_input(text="\\x03") (Ctrl-C); press keys with keys=["Up", "Enter"].
5. Older output: get_scrollback, page by page.

Fan out and race:
1. create_session three times with tags=["job"] (on different servers if you like),
   then send_input the work to each.
2. race_idle(tags=["job"]) returns the first session to settle. Call it again with
   exclude=[{{"session", "server", "generation"}} of every result so far] to get the next.
3. Read each result's screen and exit code; kill_session what you no longer need.

When a tool fails it says why (reason) and what to do (hint): SESSION_AMBIGUOUS means
several servers hold that name (pass server); IDLE_TIMEOUT means the session is still
busy (look at it with get_screen, wait again, or interrupt it).
"""


def workflow() -> str:
    """The prompt's text (a single user message)."""
    return WORKFLOW
