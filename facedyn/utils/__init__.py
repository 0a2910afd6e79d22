"""Helpers with no knowledge of faces or training: atomic file writes (io), light packages (lazy), string
choices for config schemas (choices)."""
