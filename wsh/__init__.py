"""wsh: terminal sessions on real PTYs for AI agents, clustered over gRPC."""

__version__ = "0.1.0"
