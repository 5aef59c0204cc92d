"""Loops made on a real Ray cluster (started here, CPU only): a daemon that plays them,
batch filling over two workers, a worker killed mid-loop, the cluster stopped and
started while the daemon plays, and workers that run another lofid."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import holds_for, lofid, running, wait_for  # noqa: E402
from ray_cluster import LocalRay  # noqa: E402

# How long a connection to the cluster may take: a few seconds, but now and then the
# Ray Client server's process for a new client dies as it starts (an open Ray bug,
# ray-project/ray#63202) and Ray answers only after its own 30-s wait; the next try
# goes through. Twice in one test on a busy machine.
CONNECTS = 120

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray_cluster = LocalRay(cpus=16)
    ray_cluster.start()
    yield ray_cluster
    import ray
    if ray.is_initialized():
        ray.shutdown()
    ray_cluster.remove()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import tiny_motion_adapter_dir, tiny_pipeline_dir
    tmp = tmp_path_factory.mktemp("models")
    return tiny_pipeline_dir(tmp), tiny_motion_adapter_dir(tmp)


def _config(path, cluster, namespace, **keys):
    keys = {"generator": "ray", "ray_address": cluster.address, "ray_worker_gpus": 0,
            "ray_namespace": namespace, **keys}
    path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str)
                            else f"{k} = {v}\n" for k, v in keys.items()))
    return path


def test_a_daemon_plays_animatediff_loops_made_on_the_cluster(cluster, tiny, tmp_path):
    from lofid.library import Library
    model, adapter = tiny
    cfg = _config(tmp_path / "lofid.toml", cluster, "play", ray_workers=1,
                  model=str(model), motion_adapter=str(adapter), steps=2, loop_frames=8,
                  loop_size="64x64", loop_fps=10, rotate=1.0, size="160x90")
    with running(tmp_path, "-o", "null", "--realtime", "--config", cfg) as d:
        lib = Library(tmp_path / "lib")

        def made_there():
            key = d.status()["loop"]
            return key is not None and key in lib and lib.meta(key)["generator"] == "animatediff"
        wait_for(made_there, timeout=CONNECTS, every=0.2)
        status = d.status()["generator"]["cluster"]
        assert status["state"] == "connected" and status["remote_loops"] >= 1
        assert status["workers"][0]["name"] == "lofid-worker-0"
        shown = d.ctl("status")
        assert f"ray cluster {cluster.address}: connected" in shown.stdout
    # The weights as the workers see them.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "lofid").mkdir()
    (tmp_path / "config" / "lofid" / "config.toml").write_text(
        'ray_namespace = "play"\nray_workers = 1\nray_worker_gpus = 0\n')
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    r = lofid("models", "verify", "--ray", cluster.address, model, tmp_path / "nothing.safetensors",
              env=env)
    assert r.returncode == 2, r.stderr
    assert "lofid-worker-0@" in r.stdout and "ok" in r.stdout and "FAIL" in r.stdout


def test_batch_fills_over_two_workers_and_resumes_without_duplicates(cluster, tmp_path):
    from lofid.library import Library
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("rainy night, coffee shop\n\n# a comment\nsnowy cabin, morning\n")
    cfg = _config(tmp_path / "lofid.toml", cluster, "batch", ray_workers=2,
                  ray_generator="procedural")
    args = ["--library", tmp_path / "lib", "generate", "--batch", prompts, "--count", 3,
            "--size", "160x96", "--frames", 12, "--config", cfg, "--ray", cluster.address]
    r = lofid(*args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 6
    assert {"lofid-worker-0", "lofid-worker-1"} <= {w for line in lines for w in line.split()}
    assert "6 loops made, 0 already in the library" in r.stderr
    lib = Library(tmp_path / "lib")
    assert len(lib) == 6 and {e["generator"] for e in lib.entries()} == {"procedural"}
    # Run again with more: only the new ones are made.
    args[args.index("--count") + 1] = 4
    again = lofid(*args)
    assert again.returncode == 0, again.stderr
    assert "2 loops made, 6 already in the library" in again.stderr
    assert len(Library(tmp_path / "lib")) == 8


def _connected(cluster, namespace, workers):
    from lofid.generators.cluster import Cluster
    c = Cluster(cluster.address, namespace=namespace, workers=workers, gpus=0)
    c.connect()
    return c


def test_a_worker_killed_mid_loop_is_retried_elsewhere_then_reported(cluster):
    from lofid.generators.cluster import WorkerLost, job
    from lofid.scene import parse
    c = _connected(cluster, "kill", 2)
    pids = c.pids()
    killed = []

    def kill_its_worker(done, total):
        # The loop is under way: end the process of the worker making it, as an
        # out-of-memory kill or a crash would.
        busy = [w.name for w in c.workers if w.busy and w.name not in killed]
        if busy and len(killed) < limit:
            killed.append(busy[0])
            os.kill(pids[busy[0]], signal.SIGKILL)

    # A big painter loop: seconds of work, time to kill it.
    big = job(parse("rainy night, coffee shop"), 1, (640, 360), 120, 12, "procedural", {})
    limit = 1
    loop = c.make(big, progress=kill_its_worker)
    assert len(killed) == 1 and loop.made_by["worker"] != killed[0]
    assert loop.n_frames == 120
    # Killed again where it was sent next: reported, naming both.
    pids, killed, limit = c.pids(), [], 2
    with pytest.raises(WorkerLost, match="lost twice.*lofid-worker-. and lofid-worker-. died"):
        c.make(big, progress=kill_its_worker)
    c.close()


def test_workers_of_another_lofid_are_refused_with_a_clear_error(cluster, tmp_path):
    import ray
    from lofid.generators.cluster import ClusterError
    from lofid.generators.cluster.worker import LoopWorker
    # A worker whose lofid is another version: a copy of lofid on its own path.
    other = tmp_path / "other"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "lofid"), other / "lofid",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "lofid" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
    c = _connected(cluster, "scratch", 1)    # this process's connection to the cluster
    ns = f"other-{uuid.uuid4().hex[:6]}"
    ray.remote(LoopWorker).options(
        name="lofid-worker-0", namespace=ns, lifetime="detached", num_cpus=1,
        runtime_env={"env_vars": {"PYTHONPATH": str(other)}}).remote("lofid-worker-0", 0)
    c.close()
    from lofid import __version__
    with pytest.raises(ClusterError, match=rf"worker lofid-worker-0 on .* runs lofid 9\.9\.9\+"
                                           rf"{__version__}, this is lofid {__version__}"):
        _connected(cluster, ns, 1)
    # The daemon says so, and plays painted loops meanwhile.
    cfg = _config(tmp_path / "lofid.toml", cluster, ns, ray_workers=1, size="160x90",
                  ray_generator="procedural")
    with running(tmp_path, "-o", "null", "--realtime", "--config", cfg) as d:
        wait_for(lambda: d.status()["generator"]["cluster"]["state"] == "error",
                 timeout=CONNECTS)
        state = d.status()["generator"]["cluster"]
        assert "runs lofid 9.9.9" in state["error"] and state["local_loops"] >= 1
        assert d.status()["clock"]["seconds"] > 0
    assert "runs lofid 9.9.9" in d.stderr()


def test_the_cluster_stopped_and_started_again_while_the_daemon_plays(cluster, tmp_path):
    cfg = _config(tmp_path / "lofid.toml", cluster, "restart", ray_workers=1,
                  ray_generator="procedural", rotate=0.5, size="160x90", loop_size="64x36",
                  loop_frames=6)
    with running(tmp_path, "-o", "null", "--realtime", "--config", cfg) as d:
        def cluster_state():
            return d.status()["generator"]["cluster"]
        wait_for(lambda: cluster_state()["remote_loops"] >= 1, timeout=CONNECTS, every=0.2)
        cluster.stop(graceful=False)    # as when its machine goes away; a `ray stop` takes 30 s
        t0 = time.monotonic()
        wait_for(lambda: cluster_state()["state"] == "unreachable", timeout=30, every=0.2)
        noticed = time.monotonic() - t0
        # The picture goes on, from the painter here.
        played = d.status()["clock"]["seconds"]
        local = cluster_state()["local_loops"]
        wait_for(lambda: d.status()["clock"]["seconds"] > played + 2
                 and cluster_state()["local_loops"] > local, timeout=30, every=0.2)
        assert "unreachable" in d.ctl("status").stdout
        cluster.start()
        remote = cluster_state()["remote_loops"]
        wait_for(lambda: cluster_state()["state"] == "connected"
                 and cluster_state()["remote_loops"] > remote, timeout=CONNECTS + 60,
                 every=0.2)
    assert noticed < 10


@pytest.mark.parametrize("outage", [2.2, 3.0], ids=["back-mid-wait", "back-as-a-wait-ends"])
def test_a_cluster_back_after_a_long_outage_is_tried_again_within_seconds(outage):
    # A restarted cluster answers TCP before its Ray Client server takes clients: the
    # first tries fail. They must be followed by quick ones, not by the long wait the
    # outage grew to (which once left a restarted cluster unused for a minute).
    import contextlib
    import socket
    import threading

    from lofid.generators.cluster import RemoteGenerator, Unreachable, probe

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"ray://127.0.0.1:{port}"

    class Starting:
        """Cluster.connect as a restarting cluster answers it: refused while the port is
        closed (the real probe), then two tries that cannot join yet."""
        workers: list = []
        not_ready = 2
        tries: list = []

        def connect(self):
            self.tries.append(time.monotonic())
            probe(address)
            if self.not_ready:
                self.not_ready -= 1
                raise Unreachable(f"the Ray cluster at {address} does not answer: not ready")
            return []

        def close(self):
            pass

    rg = RemoteGenerator(address, remote="procedural", workers=1, gpus=0)
    rg.cluster = Starting()
    # The real schedule, ten times faster: waits 0.2, 0.4, 0.8, 1.6 s apart (3.0 s
    # in all), 3.2 and 6.4 s next. The cluster comes back during a wait, or as one
    # ends (then the connect after it is the first to find it answering).
    rg.RETRY_FIRST_S, rg.WATCH_EVERY_S = 0.2, 0.05
    rg.start()
    try:
        wait_for(lambda: rg.state()["state"] == "unreachable", timeout=10)
        # The outage lasts `outage` seconds, and all through it lofid says so.
        assert holds_for(lambda: rg.state()["state"] == "unreachable", outage)
        with socket.create_server(("127.0.0.1", port)) as server:
            def answer():       # as a server does: take each connection (a probe)
                with contextlib.suppress(OSError):
                    while True:
                        server.accept()[0].close()
            threading.Thread(target=answer, daemon=True).start()
            back = time.monotonic()
            wait_for(lambda: rg.state()["state"] == "connected", timeout=30, every=0.02)
            waited = time.monotonic() - back
    finally:
        rg.stop()
    # Two failed tries, 0.2 s and 0.4 s apart: well under the 3.2 s and 6.4 s of the
    # grown wait (slack for a busy machine).
    tried = [round(t - back, 2) for t in rg.cluster.tries if t >= back - 0.1]
    assert waited < 3.0, (waited, tried)


def test_a_loop_made_on_the_cluster_is_stored_as_the_worker_encoded_it(cluster, tmp_path,
                                                                        monkeypatch):
    import hashlib

    import numpy as np
    import ray

    from lofid import library as L
    from lofid.generators import procedural
    from lofid.generators.cluster import ClusterError, job
    from lofid.generators.cluster.link import _loop_of
    from lofid.scene import parse
    # The batch test's worker when it ran first (its pipeline-free painter is all
    # this needs): no second worker to start.
    c = _connected(cluster, "batch", 1)
    spec, seed, size, frames, fps = parse("snowy cabin, morning"), 7, (160, 96), 8, 12.0
    asked = job(spec, seed, size, frames, fps, "procedural", {})
    # The worker's own answer, as it crossed the link: the frames file and its digest.
    answer = ray.get(c.workers[0].handle.make.remote(dict(asked, id="stored")), timeout=120)
    assert isinstance(answer["frames"], bytes) and answer["bytes"] == len(answer["frames"])
    assert answer["bytes"] < frames * size[0] * size[1] * 3 / 2    # encoded, not raw
    loop = _loop_of(answer, c.workers[0])

    # Stored as it came: the encoder is never called here, and the file is the
    # worker's bytes (an encode here would differ: Matroska writes fresh UIDs).
    def no_encoding(_):
        raise AssertionError("the library encoded a loop that came encoded")
    monkeypatch.setattr(L, "encode_frames", no_encoding)
    lib = L.Library(tmp_path / "lib")
    key = lib.put(loop)
    on_disk = (lib.root / f"{key}.mkv").read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == answer["sha256"]
    assert lib.meta(key)["storage"]["sha256"] == answer["sha256"]
    monkeypatch.undo()

    # Bit-exact with the same painter loop made here: read back from the library, and
    # as the player sees it (decoded from the bytes in the background). Exact by
    # construction: the worker runs the same painter code on this same machine, and
    # the library's codec is lossless (H.264 RGB at qp 0).
    here = procedural.generate(spec, seed, size, frames, fps)
    assert np.array_equal(lib.get(key).frames, here.frames)
    loop.wait_frame(frames - 1)
    assert np.array_equal(loop.frames, here.frames)
    # Through Cluster.make, the daemon's way: the same loop again.
    again = c.make(asked)
    again.wait_frame(frames - 1)
    assert np.array_equal(again.frames, here.frames)
    assert again.made_by["worker"] == "lofid-worker-0"

    # Bytes that do not match what the worker said: refused, nothing stored.
    damaged = dict(answer, frames=answer["frames"][:-100] + bytes(100))
    with pytest.raises(ClusterError, match=r"worker lofid-worker-0 on .*: its loop came back "
                                           r"damaged: the frames' SHA-256 is .*, their maker said"):
        _loop_of(damaged, c.workers[0])
    with pytest.raises(ClusterError, match="the frames are 99 bytes, their maker said"):
        _loop_of(dict(answer, frames=bytes(99)), c.workers[0])
    # A loop whose bytes went bad after it came: the library refuses it too.
    other = _loop_of(dict(answer, meta=dict(answer["meta"], seed=8)), c.workers[0])
    other.stored = L.StoredFrames(damaged["frames"], answer["bytes"], answer["sha256"])
    empty = L.Library(tmp_path / "empty")
    with pytest.raises(L.LibraryError, match="cannot be stored: its frames file has .* bytes "
                                             "with SHA-256 .*, its frames say"):
        empty.put(other)
    assert len(empty) == 0 and sorted(os.listdir(empty.root)) == [".lock"]
    c.close()


def test_a_connection_the_cluster_never_sets_up_is_given_up_and_tried_again(tmp_path):
    # The Ray Client server now and then hangs starting a new client's session and never
    # answers it (seen in CI: ray.init waited for good). Here the session's server
    # sleeps as it starts while a flag file exists, and the proxy is told to wait for it
    # an hour, so the client hears nothing, as then.
    from lofid.generators.cluster import Cluster, Unreachable
    hook, flag = tmp_path / "hook", tmp_path / "hang"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, sys, time\n"
        "if 'specific-server' in ' '.join(sys.orig_argv) "
        "and os.path.exists(os.environ['LOFID_TEST_HANG_FLAG']):\n"
        "    time.sleep(3600)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    hanging = LocalRay(cpus=2, env={"PYTHONPATH": f"{hook}{os.pathsep}{root}",
                                    "LOFID_TEST_HANG_FLAG": str(flag),
                                    "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "3600"})
    hanging.start()
    try:
        flag.touch()
        # 15 s: a session server starting on a machine busy with other tests took more
        # than 5.
        c = Cluster(hanging.address, namespace="hang", workers=1, gpus=0, connect_timeout=15)
        t0 = time.monotonic()
        with pytest.raises(Unreachable, match="did not set it up within 15 s"):
            c.connect()
        # At least one try waited its 15 s, and connect() did not wait for good.
        assert 15 <= time.monotonic() - t0 < 60
        # The next try is a new client, which the cluster serves.
        flag.unlink()
        assert len(c.connect()) == 1
        c.close()
    finally:
        hanging.remove()
