"""The callbot server: calls, text channel, store, consoles, CLI."""
