"""Programs git runs on the server's behalf (the pre-receive hook); each reads its environment."""
