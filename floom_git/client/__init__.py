"""The command-line client (`floom-git login|workers|run|...`): talks to a floom-git server only
through its REST API, never through the server's storage, services or runtime."""
