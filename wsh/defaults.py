"""Defaults, limits and protocol constants shared by the server, the CLI and the SDK.

The server's own settings (flags, variables, config file) are in :mod:`wsh.config`.
"""

from __future__ import annotations

DEFAULT_PORT = 7600
DEFAULT_ADDR = f"127.0.0.1:{DEFAULT_PORT}"

# The largest gRPC message the server sends or accepts, and that hubs and the
# SDK accept (gRPC's default is 4 MiB: a screen of 1000x1000 styled cells or
# a long scrollback page is more).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# A hub's Link stream opens with both sides' identities; a side that has not
# sent its own within this time is not a wsh server (or is stuck).
LINK_HANDSHAKE_TIMEOUT_S = 5.0

MAX_SESSIONS = 256
MAX_INPUT_BYTES = 1024 * 1024
# Sessions one RaceIdle may exclude: a race-first loop over every session of
# a large cluster, in a request well under the 4 MiB message limit.
MAX_RACE_EXCLUSIONS = 10_000
SCROLLBACK_LINES = 10_000
# History memory per session (sys.getsizeof of its lines): 10,000 plain lines
# of 80 columns take about 1.3 MB; lines with a colour per cell, 40 bytes a cell.
SCROLLBACK_BYTES = 8 * 1024 * 1024
# The most text a GetScrollback page holds (a page stops early, at a whole
# line, so the client asks again from offset + lines): under the 16 MiB gRPC
# message limit.
RENDER_BYTES_MAX = 4 * 1024 * 1024
# The most SGR rendering (about 40 characters per cell with colours of its
# own) turned into spans per styled screen or page: spans and their protobuf
# cost up to 20 us each to build, so this bounds a render to about 60 ms.
# Past it a screen's remaining rows are drawn with the default pen; a page
# stops early.
STYLED_RENDER_CHARS = 128 * 1024
SCROLLBACK_PAGE_DEFAULT = 100
SCROLLBACK_PAGE_MAX = 10_000
DEFAULT_ROWS = 24
DEFAULT_COLS = 80
MAX_DIMENSION = 1000
MAX_WAIT_DEFAULT_MS = 30_000
MAX_WAIT_CAP_MS = 300_000
EXITED_RETENTION_S = 300.0
# Attach: clients attached to one session at once, and the output each may
# have pending before it is dropped for a fresh snapshot (a resync).
MAX_ATTACHERS = 32
ATTACH_BUFFER_BYTES = 1024 * 1024
