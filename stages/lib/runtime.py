"""Where and how torch computes: the device and the thread count (results depend on both)."""
import torch

from stages.lib.cli import StageError

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice for this machine, before any change


def resolve_device(name):
    """'auto' picks the GPU when there is one; 'cpu' and 'cuda' force a device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise StageError("params.yaml: 'device' is 'cuda' but no GPU is available; use 'auto' or 'cpu'")
    return torch.device(name)


def use_threads(threads):
    """Set torch's intra-op thread count ('auto': torch's default here); returns the count used.

    Float results depend on it: bit-identical reruns need the same count."""
    count = DEFAULT_THREADS if threads == "auto" else threads
    torch.set_num_threads(count)
    return count
