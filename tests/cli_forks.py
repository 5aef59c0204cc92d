"""Many short `lofid` invocations without paying for a new interpreter each time.

A server process imports lofid (and the heavy libraries its commands load) once, then
forks one child per invocation. The child runs `python -m lofid.cli`'s own entry point
with the given arguments, in the given folder, with stdin closed, its output captured and
its address space limited, and ends with the exit code the real command would end with
(an uncaught exception prints its traceback and gives 1, as Python does). What this
skips is only the interpreter's start and the imports, which every other subprocess test
still exercises.

The server reads one JSON request per line on stdin: {"argv", "cwd", "timeout",
"memory"}; it answers one JSON line: {"returncode", "stdout", "stderr"}.
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import traceback


def _child(argv: list[str], cwd: str, memory: int, out: int, err: int) -> None:
    # Never returns: the child's end is os._exit, so nothing of the server runs on.
    code = 1
    try:
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = ["lofid", *argv]
        try:
            runpy.run_module("lofid.cli", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run(request: dict) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(request["argv"], request["cwd"], request["memory"], out.fileno(), err.fileno())
        deadline = time.monotonic() + request["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"returncode": None, "stdout": "", "stderr": "timed out"}
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        return {"returncode": os.waitstatus_to_exitcode(status),
                "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def serve() -> None:
    # Every module of lofid, and the libraries its commands load, imported once here
    # rather than once per invocation.
    import importlib
    import pkgutil

    import lofid
    import torch  # noqa: F401  (the training and AnimateDiff rows load it)
    for module in pkgutil.walk_packages(lofid.__path__, "lofid."):
        if not module.name.endswith("__main__"):     # importing that would run lofid
            importlib.import_module(module.name)
    for line in sys.stdin:
        reply = _run(json.loads(line))
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class Forks:
    """The test side: `Forks(env).run(argv, cwd)` -> subprocess.CompletedProcess."""

    def __init__(self, env: dict, memory: int, timeout: float):
        self.memory, self.timeout = memory, timeout
        self.proc = subprocess.Popen([sys.executable, __file__], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, argv: list[str], cwd) -> subprocess.CompletedProcess:
        request = {"argv": list(argv), "cwd": str(cwd), "timeout": self.timeout,
                   "memory": self.memory}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if reply["returncode"] is None:
            raise subprocess.TimeoutExpired(["lofid", *argv], self.timeout)
        return subprocess.CompletedProcess(["lofid", *argv], reply["returncode"],
                                           reply["stdout"], reply["stderr"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    serve()
