"""`python -m floom_git` runs the CLI."""

from floom_git.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
