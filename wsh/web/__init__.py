"""The web view: a browser app (built from ``web/`` into ``static/``) and the
gRPC-Web bridge that ``wsh web`` serves it with (:mod:`.bridge`, :mod:`.server`)."""
