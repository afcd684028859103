"""Where and how torch computes: the device and the thread count (results depend on both), and the
params keys `device` and `threads` that choose them."""
import os
from dataclasses import dataclass
from typing import Annotated, Literal

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


Device = Literal["auto", "cpu", "cuda"]  # params key `device`: auto picks the GPU when there is one
Threads = Annotated[str | int, PlainValidator(_threads)]  # params key `threads`: auto (torch's default) | a count
WorkingBatch = Annotated[str | int, PlainValidator(_working_batch)]  # an attack's batch: auto | a count
GPU_WORKING_BATCH = 4096  # below this, an attack step of the CNN on a GPU is bound by launches, not arithmetic


@dataclass(frozen=True)
class StageRun:
    """What a stage reads of params.yaml, typed; every stage that computes reads `device` and `threads`.
    Each such stage extends it with the rest of what it reads (dvc.yaml lists exactly those keys)."""
    device: str
    threads: str | int


def resolve_device(name):
    """'auto' picks the GPU when there is one; 'cpu' and 'cuda' force a device.

    On the GPU it asks for deterministic kernels, so a rerun on the same GPU gives the same floats, as a
    rerun on the same CPU does; convolutions run in TF32 (PyTorch's default for cuDNN), matrix products
    in full float32. Measured on an H200 for one training step of the CNN at batch 64 as a CUDA graph
    (benchmarks/gpu_step.py --variants): deterministic kernels in FP32 114,000 images/s, deterministic
    in TF32 223,000 (convolutions and matrix products), any kernels in FP32 243,000."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise StageError("params.yaml: 'device' is 'cuda' but no GPU is available; use 'auto' or 'cpu'")
    if name == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(name)


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
