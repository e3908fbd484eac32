"""The dashboard's pages, one module per group; each view renders what the REST handlers (or
the services they call) answer."""
