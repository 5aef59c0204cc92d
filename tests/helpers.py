"""What the tests share: lofid run as a user runs it (a subprocess), a daemon with a
control socket, and waiting on a condition with a deadline -- never a bare sleep, and
a wait that runs out fails the test instead of carrying on."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOFID = (sys.executable, "-m", "lofid.cli")


# --------------------------------------------------------------------------- an X server

@contextlib.contextmanager
def xvfb(width: int, height: int):
    """A real X server (Xvfb) of one screen on a display of its choosing; yields the
    display name (":N")."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
         "-nolisten", "tcp",
         # Without it Xvfb resets itself whenever its last client leaves, and on a
         # busy machine a client that connects during the reset is turned away: an mpv
         # started after the last one closed failed to open its window, a screenshot
         # failed with EIO (a quarter of connections, under load).
         "-noreset"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        number = f.readline().strip()   # Xvfb picks a free display and says which
    try:
        assert number, "Xvfb did not start"
        yield ":" + number
    finally:
        proc.terminate()
        proc.wait(10)


# --------------------------------------------------------------------------- heavy imports

class Lazy:
    """A module imported on its first use. Every test process collects every test
    file: importing torch, diffusers and peft there cost each process about 6 s before
    its first test, for files most processes never run."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        # pytest looks for its own markers on everything a test file holds: a private
        # name is never what a test wants from the module, so it imports nothing.
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)


def needs(*modules: str):
    """Skip a test file (pytestmark) when one of `modules` is not installed, found
    without importing it."""
    import pytest
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


def save_file(tensors: dict, path: str) -> None:
    """safetensors.torch.save_file, imported when first called."""
    from safetensors.torch import save_file as save
    save(tensors, path)


# --------------------------------------------------------------------------- waiting

def wait_for(predicate, timeout: float = 30.0, every: float = 0.02):
    """The first truthy value of predicate(), polled until `timeout` seconds pass;
    AssertionError when it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout:g} s")


def holds_for(predicate, seconds: float, every: float = 0.02) -> bool:
    """True when predicate() stays truthy for `seconds`; False the moment it does not
    (for "nothing happens meanwhile": a failure shows at once, not after the wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(every)
    return bool(predicate())


class Clock:
    """A clock a test moves by hand (clock.now = ...): a director attached to it sees
    time pass only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def turns(director, steps: int) -> list[str]:
    """The keys a director (attached to a Clock, not started) shows: its first loop,
    then the next one each time its clock moves on a second, `steps` times."""
    clock = Clock()
    director.attach_clock(clock)
    director.first()
    seen = [director.current_key]
    for i in range(1, steps + 1):
        clock.now = float(i)
        assert wait_for(director.next_ready, timeout=10) is not None
        seen.append(director.current_key)
    return seen


class States:
    """Collects an output's on_state calls; lets a test wait for one."""

    def __init__(self):
        self.seen: list[tuple[str, str | None]] = []
        self._cond = threading.Condition()

    def __call__(self, name, state, detail):
        with self._cond:
            self.seen.append((state, detail))
            self._cond.notify_all()

    def count(self, state: str) -> int:
        with self._cond:
            return sum(1 for s, _ in self.seen if s == state)

    def wait_for(self, state: str, count: int = 1, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: sum(1 for s, _ in self.seen if s == state) >= count,
                                       timeout)

    def states(self) -> set[str]:
        with self._cond:
            return {s for s, _ in self.seen}

    def details(self, state: str) -> list[str]:
        with self._cond:
            return [d or "" for s, d in self.seen if s == state]


def next_event(session, names, timeout=60):
    """The next event named in `names` from a pynvim msgpack-RPC session, as
    (name, its first argument); AssertionError when none comes within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = session.next_message()
        if message is not None and message[1] in names:
            return message[1], message[2][0]
    raise AssertionError(f"no {names} event within {timeout} s")


# --------------------------------------------------------------------------- lofid

def lofid(*args, env: dict | None = None, cwd=None, timeout: float = 240,
          input: str | None = None) -> subprocess.CompletedProcess:
    """`lofid ARGS...` run to its end: returncode, stdout and stderr as text."""
    return subprocess.run([*LOFID, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout, input=input)


def reap(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Ends `proc` if it still runs -- SIGTERM first, so a daemon finalises its files
    and ends its own children, then SIGKILL -- and waits for it: no process is left
    behind by a test."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def answers(sock) -> bool:
    """Whether a lofid daemon answers `status` on the control socket `sock`."""
    from lofid.control.client import Client
    try:
        client = Client(sock, timeout=10)
    except Exception:
        return False
    try:
        client.call("status")
        return True
    except Exception:
        return False
    finally:
        client.close()


_runs = itertools.count(1)


class Daemon:
    """A running `lofid run --socket`: its process, its socket, what it wrote to stderr
    (kept in a file, so a chatty daemon never blocks on a full pipe)."""

    def __init__(self, proc: subprocess.Popen, sock: Path, log: Path):
        self.proc, self.sock, self.log = proc, sock, log

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def ctl(self, *args, **kw) -> subprocess.CompletedProcess:
        """`lofid ctl --socket SOCK ARGS...`, as a user types it."""
        return lofid("ctl", "--socket", self.sock, *args, **kw)

    def call(self, method: str, *params):
        """One request over the socket, answered in this process."""
        from lofid.control.client import Client
        client = Client(self.sock, timeout=30)
        try:
            return client.call(method, *params)
        finally:
            client.close()

    def status(self) -> dict:
        return self.call("status")

    def wait(self, timeout: float = 60) -> int:
        """The exit status once the process ends by itself (or was told to)."""
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 60) -> int:
        """Asks the daemon to stop over its socket; its exit status."""
        self.call("shutdown")
        return self.wait(timeout)

    def close(self, timeout: float = 60) -> None:
        """Stops it as a user would when it still runs -- over the socket, else
        SIGTERM -- and reaps it; SIGKILL only when it does not end in `timeout`."""
        if self.proc.poll() is None and self.sock is not None:
            try:
                self.call("shutdown")
                self.proc.wait(timeout)
            except Exception:
                pass
        reap(self.proc)


def start_daemon(tmp_path, *args, sock=None, ready=None, env: dict | None = None, cwd=None,
                 timeout: float = 120, preexec_fn=None) -> Daemon:
    """`lofid --library TMP/lib run --socket SOCK ARGS...`, returned once its socket
    answers (or, given `ready`, once ready(daemon) is true; sock=False: no --socket).
    A run that ends before it is ready fails the test with its stderr. The caller
    closes it (or uses `running`)."""
    if sock is False:
        sock, where = None, []
    else:
        sock = Path(sock) if sock is not None else tmp_path / "run" / "lofid.sock"
        where = ["--socket", str(sock)]
    log = tmp_path / f"lofid-run-{next(_runs)}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*LOFID, "--library", str(tmp_path / "lib"), "run", *where, *map(str, args)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, text=True,
            env=env, cwd=cwd, preexec_fn=preexec_fn)
    daemon = Daemon(proc, sock, log)
    try:
        ready = ready or (lambda d: answers(d.sock))
        wait_for(lambda: proc.poll() is not None or ready(daemon), timeout)
        assert proc.poll() is None, \
            f"lofid run exited with {proc.returncode}:\n{daemon.stderr()}"
    except BaseException:
        reap(proc)
        raise
    return daemon


@contextlib.contextmanager
def running(tmp_path, *args, **kw):
    """start_daemon(tmp_path, *args, **kw) for a with block: closed on leaving."""
    daemon = start_daemon(tmp_path, *args, **kw)
    try:
        yield daemon
    finally:
        daemon.close()
