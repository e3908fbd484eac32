"""Background machinery: run executor (confined by the sandbox) and queue, scheduler, watcher;
uses services."""
