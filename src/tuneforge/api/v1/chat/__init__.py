"""/v1/chat."""
