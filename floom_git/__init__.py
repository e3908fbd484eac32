"""floom-git: a workspace server for background workers in which the workspace is a git
repository."""

__version__ = "0.1.0"
