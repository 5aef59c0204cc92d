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


# The files that take longest, longest first (seconds on the 2-core CI machine). The
# test processes (pytest-xdist, whole files) take files in collection order, so
# starting with the long ones lets them finish at about the same time instead of one
# waiting for the other's last long file. Files not named keep their order after these.
LONGEST_FIRST = ("test_ray.py", "test_daemon.py", "test_outputs_network.py", "test_stall.py",
                 "test_nvim_lofi.py", "test_obs_studio.py", "test_web_page.py",
                 "test_outputs_stall.py", "test_lofi_tracks.py", "test_schedule.py",
                 "test_outputs_window.py", "test_train_style.py", "test_run.py",
                 "test_nvim_plugin.py", "test_outputs_faults.py", "test_train_motion.py",
                 "test_control_faults.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: files stay whole
