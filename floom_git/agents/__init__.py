"""AI agent runtime as a library: providers (OpenAI-compatible, Anthropic) behind one streaming
interface, the tool loop with its limits and error codes, built-in run tools, resumable
transcripts and token prices. It knows nothing of HTTP, git or run records; callers wire it in.

    config.resolve_agent_config -> config.make_provider -> loop.run_agent(provider, transcript,
    run_tools.agent_run_tools(...), sink) -> AgentResult (completed | failed | pending_approval)
"""
