import os

import pytest

# Tests never reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _own_library(tmp_path_factory, monkeypatch):
    """Keep every test's loops out of the user's real library, and the user's own
    config out of every test."""
    monkeypatch.setenv("LOFID_LIBRARY", str(tmp_path_factory.mktemp("library")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
