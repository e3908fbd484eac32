"""Re-export of floom_git.paths (a leaf now) for the modules part B of issue 14 reworks
(services/sync.py, services/runs.py, services/push.py, storage/repo.py): remove once they import
floom_git.paths."""

from floom_git.paths import *  # noqa: F403
