"""``python -m wsh``: the ``wsh`` command."""

from wsh.cli import main

raise SystemExit(main())
