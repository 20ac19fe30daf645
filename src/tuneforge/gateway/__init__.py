"""The gateway to upstream providers: which models go where, one client, one error type."""

from tuneforge.gateway.errors import UpstreamError, redact
from tuneforge.gateway.gateway import Gateway
from tuneforge.gateway.upstreams import Upstream, parse_upstreams
from tuneforge.gateway.vllm import Route, parse_vllm_servers

__all__ = ["Gateway", "Route", "Upstream", "UpstreamError", "parse_upstreams", "parse_vllm_servers", "redact"]
