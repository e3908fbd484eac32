"""Secrets are encrypted at rest and only names leave the store."""

import pytest

from floom_git.errors import InvalidInput
from floom_git.services.secrets import SecretStore


def test_secret_round_trip_is_encrypted_at_rest(tmp_path):
    store = SecretStore(tmp_path / "system")
    store.set("default", "API_KEY", "super-secret-value", "u1")
    raw = (tmp_path / "system/secrets/default.json").read_text()
    assert "super-secret-value" not in raw
    assert store.values("default", ["API_KEY", "OTHER"]) == {"API_KEY": "super-secret-value"}
    assert set(store.names("default")) == {"API_KEY"}
    assert store.values("other", ["API_KEY"]) == {}
    assert oct((tmp_path / "system/server.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("name", ["lower", "PATH", "1ABC", "A-B", "FLOOM_SECRET", ""])
def test_bad_secret_names_are_refused(tmp_path, name):
    with pytest.raises(InvalidInput):
        SecretStore(tmp_path / "system").set("default", name, "v", "u1")
