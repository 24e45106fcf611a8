"""helpdesk: one governed chat turn end to end, the store, settings, CLI and HTTP API."""
