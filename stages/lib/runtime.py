"""Where and how torch computes: the device and the thread count (results depend on both)."""
import os

import torch

from stages.lib.cli import StageError

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice for this machine, before any change


def resolve_device(name):
    """'auto' picks the GPU when there is one; 'cpu' and 'cuda' force a device.

    On the GPU it asks for deterministic kernels in full float32 (no TF32), so a rerun on the same
    GPU gives the same floats, as a rerun on the same CPU does."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise StageError("params.yaml: 'device' is 'cuda' but no GPU is available; use 'auto' or 'cpu'")
    if name == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(name)


def use_threads(threads):
    """Set torch's intra-op thread count ('auto': torch's default here); returns the count used.

    Float results depend on it: bit-identical reruns need the same count."""
    count = DEFAULT_THREADS if threads == "auto" else threads
    torch.set_num_threads(count)
    return count
