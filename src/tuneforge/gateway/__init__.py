"""The gateway to upstream providers: which models go where, one client, one error type."""

from tuneforge.gateway.errors import UpstreamError, redact
from tuneforge.gateway.gateway import Gateway
from tuneforge.gateway.upstreams import Upstream, parse_upstreams

__all__ = ["Gateway", "Upstream", "UpstreamError", "parse_upstreams", "redact"]
