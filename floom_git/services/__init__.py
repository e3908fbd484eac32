"""The rules of each resource. Services raise domain errors (floom_git.errors) and know no HTTP."""
