"""One function's local containers (devtools/lambda_container.py), as Lambda scales a function out:
an invocation takes an idle container, or, when every container is busy, a new one, up to
`max_containers`; beyond that it waits for one to be free.

A container stays taken until its answer has left (`Taken.answer_left`): its after-answer work
starts then, and the next invocation it serves comes after it, so one invocation's answer is never
confused with the next's. When the pool keeps warm (`make run`), its first container starts at once
(`warm`), and an invocation that finds every container busy starts one more in the background (one
at a time) and takes whichever comes first: a container set free, or the new one once it is ready.
Lambda would make it wait for the cold start (a few hundred milliseconds there); here, where two
cores import the layer for seconds, a busy container is almost always free sooner."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from devtools.lambda_container import LambdaContainer

# Containers per function at most: Lambda's concurrency for it. LOCAL_CONCURRENCY overrides it.
MAX_CONTAINERS = int(os.environ.get("LOCAL_CONCURRENCY", "8"))


class Taken:
    """One invocation's hold on a container."""

    def __init__(self, pool: ContainerPool, container: LambdaContainer) -> None:
        self._pool = pool
        self.container = container
        self._released = False

    def answer_left(self) -> None:
        """The answer has reached its client: the container does its after-answer work, then serves again."""
        if not self._released:
            self._released = True
            self.container.answer_left()
            self._pool._give_back(self.container)


class ContainerPool:
    def __init__(
        self, name: str, code_dir: Path, timeout_seconds: float, *, max_containers: int = MAX_CONTAINERS
    ) -> None:
        self.name = name
        self.code_dir = code_dir
        self.timeout_seconds = timeout_seconds
        self.max_containers = max_containers
        self.keep_warm = False
        self._all: list[LambdaContainer] = []
        self._idle: list[LambdaContainer] = []  # taken from the end; a container being replaced goes first
        self._starting = False  # a container is starting in the background
        self._free = threading.Condition()

    def invoke(self, event: dict) -> object:
        """The handler's answer, its after-answer work starting at once (a schedule, `make invoke`)."""
        taken = self.take()
        try:
            return taken.container.invoke(event)
        finally:
            self._give_back(taken.container)

    def invoke_until_answered(self, event: dict) -> tuple[object, Taken]:
        """The handler's answer, and the hold whose `answer_left` starts the after-answer work."""
        taken = self.take()
        try:
            return taken.container.invoke(event, answer_leaves_later=True), taken
        except BaseException:
            taken.answer_left()
            raise

    def take(self) -> Taken:
        with self._free:
            while not self._idle:
                if len(self._all) < self.max_containers and not self.keep_warm:
                    return Taken(self, self._new())  # a cold start, in this invocation
                if len(self._all) < self.max_containers and not self._starting:
                    self._start_in_background()
                self._free.wait()
            return Taken(self, self._idle.pop())

    def warm(self) -> None:
        """Start one container now (`make run`): the function's first request finds it warm."""
        with self._free:
            if self._all or self._starting:
                return
            self._start_in_background(wait=True)

    def _start_in_background(self, *, wait: bool = False) -> None:
        """A new container, idle once started (called holding the lock; `wait`: until then)."""
        container = self._new()
        self._starting = True

        def start() -> None:
            container.warm()
            with self._free:
                self._starting = False
                self._idle.append(container)
                self._free.notify_all()

        starting = threading.Thread(target=start, name=f"{self.name}-starting", daemon=True)
        starting.start()
        if wait:
            self._free.wait_for(lambda: not self._starting)

    @property
    def pids(self) -> set[int]:
        with self._free:
            return {container.pid for container in self._all if container.pid is not None}

    def stop(self) -> None:
        with self._free:
            containers = list(self._all)
        for container in containers:
            container.stop()

    def _new(self) -> LambdaContainer:
        container = LambdaContainer(self.name, self.code_dir, self.timeout_seconds, keep_warm=self.keep_warm)
        self._all.append(container)
        return container

    def _give_back(self, container: LambdaContainer) -> None:
        with self._free:
            if container.pid is None:  # lost: its replacement is starting, or starts on its next use
                self._idle.insert(0, container)
            else:
                self._idle.append(container)
            self._free.notify()
