"""Background machinery: run executor and queue, scheduler, watcher; uses services."""
