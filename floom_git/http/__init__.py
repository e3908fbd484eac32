"""HTTP: decode requests, call services, encode responses. Never imports pygit2."""
