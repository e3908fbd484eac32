"""msgspec Structs: the single source of truth for files (worker.yml) and the wire (API bodies)."""
