"""The workspace as an MCP server: its built-in tools (tools.py) and the SDK server that serves
them and the registered worker tools (server.py). Transports live elsewhere: HTTP in
http/mcp_endpoint.py, stdio as the `floom-git mcp` client command."""
