"""The embedding model in child processes, for ingests of more than one batch.

Why processes and not threads: Chroma's write and Presidio's analysis both hold the GIL
(a Chroma write of 256 chunks holds it for about 230 ms), and while they do, a thread
running the model cannot even dispatch its next operation, so both cores idle. In its own
process the model only shares the CPU. Why several single-thread processes and not one with
a thread per core: see `EmbeddingPool`.

Each child loads the same model at the same precision as the parent, so its vectors are
the ones the parent would compute. They start in the background, since loading takes a few
seconds, and the ingest embeds in-process until one is ready. If one dies, the batch it
held is embedded in-process and the ingest goes on with the others.
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

# Defaults for the child's environment; the parent's own settings of these win.
CHILD_ENV = {
    # OpenMP threads sleep rather than spin while they wait: the spinning took CPU the
    # parent's writes needed (3,000 chunks at int8, three runs each way: 149-165 chunks/s
    # spinning, 161-171 sleeping).
    "OMP_WAIT_POLICY": "PASSIVE",
    # glibc malloc gives freed memory back to the kernel (large blocks it mapped on their own,
    # and the top of the heap past its trim threshold), and the model's activations are
    # 5-20 MB tensors allocated anew in every layer: each batch of 256 chunks faulted its
    # pages in again, 20,000-120,000 times. With fixed thresholds they stay in the heap:
    # under 300 faults a batch, and 5-12% less time a chunk (9.1 against 9.5-10.4 ms, int8,
    # one thread, two runs each way), for the same resident size (about 870 MB).
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}


def _serve(conn: Connection, model_path: str | None, device: str, precision: str, threads: int) -> None:
    """The child: load the model, then embed each list of texts received until told to stop.

    Batches and vectors travel on their own threads, so the model never waits on the socket:
    a batch is larger than the socket's buffer, and the parent reads each process's vectors
    only when it writes that batch, in the ingest's order. Done in line, a process would sit
    with finished vectors until the parent had written every batch before them."""
    import torch

    from core.embeddings import Embedder

    try:
        if threads:
            torch.set_num_threads(threads)
        embedder = Embedder(model_path, device, precision)  # type: ignore[arg-type]
        embedder.embed(["warm-up"])
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                texts = conn.recv()
            except (EOFError, OSError):  # the parent went away
                texts = None
            inbox.put(texts)
            if texts is None:
                return

    def write() -> None:
        while (reply := outbox.get()) is not None:
            try:
                conn.send(reply)
            except OSError:  # the parent went away
                return

    threading.Thread(target=read, daemon=True).start()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    while (texts := inbox.get()) is not None:
        try:
            outbox.put(("ok", np.asarray(embedder.embed(texts), dtype=np.float32)))
        except Exception as exc:
            outbox.put(("error", f"{type(exc).__name__}: {exc}"))
    outbox.put(None)
    writer.join()


class EmbeddingProcess:
    """One child process embedding the batches it is sent in order: `send` batches, do other
    work, `receive` their vectors in the order they were sent."""

    def __init__(self, model_path: str | None = None, device: str = "cpu", precision: str = "fp32",
                 threads: int = 0) -> None:
        self._args = (model_path, device, precision, threads)
        self._conn: Connection | None = None
        self._process: subprocess.Popen | None = None
        self._state = "stopped"  # stopped -> starting -> ready, or failed
        self.outstanding = 0  # texts sent and not yet received back

    def start(self) -> None:
        """Start the child in the background (it takes a few seconds to load the model).

        A fresh interpreter running this module, not `multiprocessing`: that would import the
        parent's main script again in the child, whatever script it is."""
        if self._state != "stopped":
            return
        ours, theirs = socket.socketpair()
        model_path, device, precision, threads = self._args
        command = [sys.executable, "-m", "retrieval.embed_process", "--fd", str(theirs.fileno()),
                   "--device", device, "--precision", precision, "--threads", str(threads),
                   *(["--model", model_path] if model_path else [])]
        env = {**CHILD_ENV, **os.environ}
        self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._state = "starting"

    def ready(self, wait: float = 0.0) -> bool:
        """Whether the child has loaded its model; waits up to `wait` seconds for it."""
        if self._state == "starting" and self._conn is not None and self._conn.poll(wait):
            try:
                status, message = self._conn.recv()
            except (EOFError, OSError):
                status, message = "error", "it exited while loading"
            if status == "ready":
                self._state = "ready"
            else:
                self._fail(f"the embedding process could not start: {message}")
        return self._state == "ready"

    def send(self, texts: Sequence[str]) -> bool:
        """Hand the child a batch; False (and the child is not used again) if it is gone."""
        assert self._conn is not None and self._state == "ready"
        try:
            self._conn.send(list(texts))
        except OSError as exc:
            self._fail(f"the embedding process died: {exc!r}")
            return False
        self.outstanding += len(texts)
        return True

    def receive(self) -> np.ndarray:
        """The vectors for the earliest batch not yet received; raises RuntimeError (and stops using the child) if it failed."""
        assert self._conn is not None
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._fail(f"the embedding process died: {exc!r}")
            raise RuntimeError("the embedding process died") from exc
        if status != "ok":
            self._fail(f"the embedding process failed: {payload}")
            raise RuntimeError(payload)
        self.outstanding -= len(payload)
        return payload

    def close(self) -> None:
        if self._conn is not None and self._state in ("starting", "ready"):
            try:
                self._conn.send(None)
            except OSError:
                pass
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._state = "stopped"

    def _fail(self, message: str) -> None:
        log.warning("%s; embedding in-process instead", message)
        self._state = "failed"
        if self._process is not None and self._process.poll() is None:
            self._process.kill()


class EmbeddingPool:
    """Several embedding processes that share the CPU, given batches in turn (see `next_ready`).

    On a CPU, several single-thread processes beat one process with a thread per core: a
    multi-threaded model waits at a barrier after every operation, and whenever the
    parent's writes take one of its cores the other one idles there. On 2 cores, with the
    parent busy 1.5 ms a chunk as an ingest is, one 2-thread process kept the cores 84-85%
    busy and embedded 144-148 chunks/s; two 1-thread processes kept them 96-98% busy and
    embedded 164-173 (three runs each, side by side).
    """

    def __init__(self, workers: int, model_path: str | None = None, device: str = "cpu",
                 precision: str = "fp32", threads_each: int = 0) -> None:
        self.processes = [EmbeddingProcess(model_path, device, precision, threads_each) for _ in range(workers)]
        self.lock = threading.Lock()  # one ingest at a time uses the pool
        self._turn = -1

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def ready(self, wait: float = 0.0) -> list[EmbeddingProcess]:
        """The processes that have loaded their model; waits up to `wait` seconds for all of them."""
        deadline = time.monotonic() + wait
        return [p for p in self.processes if p.ready(max(0.0, deadline - time.monotonic()))]

    def next_ready(self, by_load: bool = False) -> EmbeddingProcess | None:
        """The next ready process in turn, or with `by_load` the one with the fewest texts sent
        and not yet received back; None while none is ready (the caller embeds in-process).

        In turn while batches are of one size: the parent reads results in order, so a
        process's count still holds batches it has finished, and going by it left a process
        idle (10,000 chunks: 88% of the cores busy against 99% in turn). By load for the last
        pieces of an ingest, which are sent all at once, to even out where the processes end."""
        ready = self.ready()
        if not ready:
            return None
        if by_load:
            return min(ready, key=lambda p: p.outstanding)
        self._turn += 1
        return ready[self._turn % len(ready)]

    def close(self) -> None:
        for process in self.processes:
            process.close()


def pool_for(device: str, precision: str, workers: int = 0) -> EmbeddingPool:
    """The pool an ingest uses on this machine. `workers` 0 means: on a CPU one single-thread
    process per core, up to 4 (each holds its own copy of the model: 0.85-0.9 GB resident);
    on a GPU one process, which has the device to itself."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device != "cpu":
        return EmbeddingPool(workers or 1, None, device, precision)
    workers = workers or min(cores, 4)
    return EmbeddingPool(workers, None, device, precision, threads_each=max(1, cores // workers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="helpdesk's embedding process (started by an ingest)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument("--model")
    args = parser.parse_args()
    _serve(Connection(args.fd), args.model, args.device, args.precision, args.threads)
