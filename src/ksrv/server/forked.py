"""The fork server: a warm model-server process that forks replicas instead of starting them.

A fresh `ksrv serve` spends most of its start importing (numpy, grpc, the server, then the
framework: scikit-learn alone takes a second); a child forked from a process that imported
them already starts in milliseconds and shares those pages with its siblings copy-on-write.
The control plane starts one fork server with one end of a socket pair (no path to find or
guard) and sends requests on it, one JSON line each: `{"id", "argv", "env", "cwd",
"log_path"}`. The fork server imports what the model format in `argv` needs (`warm`), forks,
and answers `{"id", "pid"}` (or `{"id", "error"}`); when a child exits it writes `{"pid",
"exit"}` (it is the child's parent, the one process that can read its exit status). The child
starts a new session, sends its output to `log_path`, takes `env` as its whole environment and
runs `argv` in-process.

Forking is safe only before threads, event loops and gRPC channels exist: this process never
creates any (a blocking `selectors` loop, no asyncio, no gRPC objects; imported native
libraries' own worker threads, such as OpenBLAS's, are rebuilt by their fork handlers). Each
child starts its own event loop. The fork server exits when its parent (the control plane)
is gone; the replicas it forked keep running.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ksrv.runtimes import registry

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1 << 20

Run = Callable[[list[str]], int]
"""Runs a replica's argv (after the interpreter and `-m module`) in-process; its exit code."""


@dataclass(frozen=True, slots=True)
class ForkRequest:
    """One replica to start, as the control plane sends it."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str

    @classmethod
    def parse(cls, line: bytes) -> tuple[Any, ForkRequest]:
        """The request's `id` and the request. Raises ValueError for a line that is none."""
        document = json.loads(line)
        if not isinstance(document, dict):
            raise ValueError("a request is a JSON object")
        argv, env = document.get("argv"), document.get("env")
        cwd, log_path = document.get("cwd"), document.get("log_path")
        if not (isinstance(argv, list) and all(isinstance(arg, str) for arg in argv)):
            raise ValueError("argv must be a list of strings")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise ValueError("env must map names to strings")
        if not (isinstance(cwd, str) and isinstance(log_path, str)):
            raise ValueError("cwd and log_path must be strings")
        request = cls(argv, {str(k): v for k, v in env.items()}, cwd, log_path)
        return document.get("id"), request


@dataclass(slots=True)
class ForkServer:
    """The connection to the control plane and the children it asked for."""

    connection: socket.socket
    run: Run
    module: str
    children: set[int] = field(default_factory=set)
    warmed: set[str] = field(default_factory=set)
    _buffer: bytes = b""
    _wakeup: tuple[int, int] = (-1, -1)
    _selector: selectors.BaseSelector | None = None

    def serve_forever(self) -> None:
        """Answer fork requests until SIGTERM or until the control plane hangs up."""
        self._wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup[1])
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the pipe
        self._selector = selector = selectors.DefaultSelector()
        selector.register(self.connection, selectors.EVENT_READ, "request")
        selector.register(self._wakeup[0], selectors.EVENT_READ, "signal")
        # Frozen objects are never written by the collector, so children keep sharing them.
        gc.collect()
        gc.freeze()
        logger.info("fork server ready (pid %d)", os.getpid())
        is_open = True
        while is_open:
            for key, _ in selector.select():
                if key.data == "request":
                    is_open = self._read()
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wakeup[0], 4096)
            self._reap()
        logger.info("the control plane hung up: exiting")

    def _read(self) -> bool:
        """Handle every complete request line; False once the control plane hung up."""
        try:
            data = self.connection.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._handle(line)
        if len(self._buffer) > MAX_REQUEST_BYTES:
            logger.error("a request line over %d bytes: hanging up", MAX_REQUEST_BYTES)
            return False
        return True

    def _handle(self, line: bytes) -> None:
        request_id = None
        try:
            request_id, request = ForkRequest.parse(line)
            problem = self._check(request)
            if problem is not None:
                raise ValueError(problem)
        except ValueError as exc:
            self._send({"id": request_id, "error": str(exc)})
            return
        model_format = _option(request.argv, "--model-format")
        if model_format is not None:
            self.warm(model_format)
        sys.stdout.flush()  # nothing buffered here may be written again by the child
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            self._send({"id": request_id, "error": f"fork failed: {exc}"})
            return
        if pid == 0:
            self._close_in_child()
            _become_replica(request, self.run, self.module)
        self.children.add(pid)
        self._send({"id": request_id, "pid": pid})

    def _check(self, request: ForkRequest) -> str | None:
        """Why this process cannot run the request's argv (it runs only its own module)."""
        argv = request.argv
        if argv[:1] != [sys.executable] or argv[1:3] != ["-m", self.module]:
            return f"the fork server runs only `{sys.executable} -m {self.module} ...`"
        return None

    def warm(self, model_format: str) -> None:
        """Import what `model_format`'s runtime needs (once per format) for children to share."""
        name = model_format.partition(":")[0].lower()
        if name in self.warmed:
            return
        self.warmed.add(name)
        try:
            preload = getattr(registry.runtime_class(name), "preload", None)
            if preload is not None:
                preload()
        except Exception:  # the replica reports a broken runtime itself, with its own words
            logger.warning("could not preload the %s runtime", name, exc_info=True)
            return
        gc.collect()
        gc.freeze()
        logger.info("preloaded the %s runtime", name)

    def _reap(self) -> None:
        """Collect exited children and say how each ended."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self._send({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a control plane that hung up is noticed on read
            self.connection.sendall(json.dumps(message).encode() + b"\n")

    def _close_in_child(self) -> None:
        """Let go of everything of the fork server's in a new child (by object, so that no
        socket object closes a reused descriptor number later)."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if self._selector is not None:
            self._selector.close()
        for fd in self._wakeup:
            os.close(fd)
        self.connection.close()
        self.children.clear()


def serve(connection: socket.socket, run: Run, module: str, preload: Sequence[str] = ()) -> None:
    """Fork replicas of `python -m {module}` as `connection` asks, until it closes or SIGTERM.

    The caller has imported what every replica needs (the server, its transports) already;
    the runtimes of the `preload` formats are imported now, any other on its first request
    (requests sent meanwhile wait in the socket).
    """
    connection.setblocking(True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server = ForkServer(connection, run, module)
        for model_format in preload:
            server.warm(model_format)
        server.serve_forever()
    except SystemExit:
        logger.info("fork server stopping")
    finally:
        connection.close()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _answer(connection: socket.socket, message: dict[str, Any]) -> bool:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        return False
    return True


def _option(argv: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None


def _become_replica(request: ForkRequest, run: Run, module: str) -> NoReturn:
    """In the new child: become the process `argv` would have started, then exit."""
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        log = os.open(request.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(request.cwd)
        os.environ.clear()
        os.environ.update(request.env)
        sys.argv = [module, *request.argv[3:]]
        # The replica sets logging up itself (`ksrv serve --log-level`), as a fresh one would.
        logging.root.handlers.clear()
        code = run(request.argv[3:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        # Never back into the fork server's loop (its finally would remove the socket).
        os._exit(code)
