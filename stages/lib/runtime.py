"""Where and how torch computes: the device and the thread count (results depend on both), and the
params keys `device` and `threads` that choose them.

On a machine with several GPUs, `device: auto` (or `cuda`) gives each stage process a GPU of its own:
it takes the first GPU that no other stage process on the machine holds (an exclusive lock on one file
per GPU under the system's temporary folder, released when the process ends), so `dvc queue start
--jobs N` on N GPUs runs each worker's stages on a different GPU. `device: cuda:K` names one GPU, and
CUDA_VISIBLE_DEVICES limits the GPUs a process sees, as for any CUDA program."""
import fcntl
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from pydantic import PlainValidator

from stages.lib.errors import StageError

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice for this machine, before any change
MAX_THREADS = 1024


def _threads(value):
    if value == "auto" or (type(value) is int and 1 <= value <= MAX_THREADS):
        return value
    raise ValueError(f"must be 'auto' or an integer from 1 to {MAX_THREADS}")


def _working_batch(value):
    if value == "auto" or (type(value) is int and value >= 1):
        return value
    raise ValueError("must be 'auto' or an integer >= 1")


def _device(value):
    if isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", value):
        return value
    raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:K' (K a GPU's index)")


Device = Annotated[str, PlainValidator(_device)]  # params key `device`: auto picks a GPU when there is one
Threads = Annotated[str | int, PlainValidator(_threads)]  # params key `threads`: auto (torch's default) | a count
WorkingBatch = Annotated[str | int, PlainValidator(_working_batch)]  # an attack's batch: auto | a count
GPU_WORKING_BATCH = 4096  # below this, an attack step of the CNN on a GPU is bound by launches, not arithmetic


@dataclass(frozen=True, kw_only=True)
class StageRun:
    """What a stage reads of params.yaml, typed; every stage that computes reads `device` and `threads`.
    Each such stage extends it (keyword fields only) with the rest of what it reads (dvc.yaml lists exactly
    those keys)."""
    device: str
    threads: str | int


GPU_LOCKS = Path(tempfile.gettempdir()) / "nn-foundations-gpu-locks"  # one lock file per GPU index
_held_gpus = {}  # GPU index -> the open lock file this process holds (released when it exits)


def _lock(index, locks, wait):
    """Hold the lock of GPU `index` (waiting for it when `wait`); False when another process holds it."""
    handle = open(locks / f"gpu{index}.lock", "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False
    _held_gpus[index] = handle
    return True


def claim_gpu(count, locks=GPU_LOCKS):
    """The index of a GPU among `count` that no other process holds, now held by this one until it exits;
    when every GPU is held, this process waits for GPU pid % count. One claim per process."""
    if _held_gpus:
        return next(iter(_held_gpus))
    locks.mkdir(parents=True, exist_ok=True)
    free = next((index for index in range(count) if _lock(index, locks, wait=False)), None)
    if free is not None:
        return free
    index = os.getpid() % count
    print(f"every GPU is held by another stage process: waiting for GPU {index}")
    _lock(index, locks, wait=True)
    return index


def resolve_device(name):
    """'auto' picks a GPU when there is one (with several, one no other stage process holds: claim_gpu),
    'cuda' insists on one, 'cuda:K' names one, 'cpu' forces the CPU.

    On the GPU it asks for deterministic kernels, so a rerun on the same GPU gives the same floats, as a
    rerun on the same CPU does; convolutions run in TF32 (PyTorch's default for cuDNN), matrix products
    in full float32. Measured on an H200 for one training step of the CNN at batch 64 as a CUDA graph
    (benchmarks/gpu_step.py --variants): deterministic kernels in FP32 114,000 images/s, deterministic
    in TF32 223,000 (convolutions and matrix products), any kernels in FP32 243,000."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise StageError(f"params.yaml: 'device' is '{name}' but no GPU is available; use 'auto' or 'cpu'")
    count = torch.cuda.device_count()
    if name.startswith("cuda:") and int(name[5:]) >= count:
        raise StageError(f"params.yaml: 'device' is '{name}' but this machine has {count} GPU(s), cuda:0 to "
                         f"cuda:{count - 1}")
    index = int(name[5:]) if name.startswith("cuda:") else claim_gpu(count) if count > 1 else 0
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def use_threads(threads):
    """Set torch's intra-op thread count ('auto': torch's default here); returns the count used.

    Float results depend on it: bit-identical reruns need the same count."""
    count = DEFAULT_THREADS if threads == "auto" else threads
    torch.set_num_threads(count)
    return count


def set_up(device, threads):
    """(torch.device, thread count) for the params `device` and `threads`, both put in effect."""
    count = use_threads(threads)
    return resolve_device(device), count


def working_batch(batch_size, device, cpu_batch):
    """How many images an attack works on at once: batch_size, or for 'auto' the device's own size,
    cpu_batch on the CPU (the stage's measured best there) and GPU_WORKING_BATCH on a GPU. Results do
    not depend on it (tests/test_problem_4.py checks it on the CPU)."""
    if batch_size != "auto":
        return batch_size
    return GPU_WORKING_BATCH if device.type == "cuda" else cpu_batch
