"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain values (no pickled objects), so loading one
never runs code: a file that carries a pickled payload is refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from awsaa.errors import AWSAAError
from awsaa.fileio import atomic_save, same_version

FORMAT = "awsaa.checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    state = {"format": FORMAT, "version": VERSION, **state}
    atomic_save(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """Load and check a checkpoint; ``kind`` (e.g. ``"train"``) must match when given."""
    path = Path(path)
    if not path.is_file():
        raise AWSAAError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's weights-only unpickler names the global it refused; other errors are damage
        if "was not an allowed global" in str(e) or "is blocked" in str(e):
            raise AWSAAError(f"checkpoint {path} is refused: it holds pickled objects, not only tensors and "
                             f"plain values, and loading it could run code") from None
        raise AWSAAError(f"checkpoint {path} is corrupt or not a torch checkpoint (it does not unpickle)") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AWSAAError(f"checkpoint {path} is corrupt or not a torch checkpoint: {msg}") from None
    except Exception as e:  # damaged bytes reach the unpickler's internals (KeyError, IndexError, struct.error, ...)
        raise AWSAAError(f"checkpoint {path} is corrupt or not a torch checkpoint "
                         f"(unpickling failed: {type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise AWSAAError(f"checkpoint {path} is not an awsaa checkpoint")
    if not same_version(state.get("version"), VERSION):
        raise AWSAAError(f"checkpoint {path} has version {state.get('version')!r}; this awsaa reads {VERSION}")
    if kind is not None and state.get("kind") != kind:
        raise AWSAAError(f"checkpoint {path} is a {state.get('kind')!r} checkpoint, expected {kind!r}")
    return state


def load_model_state(model: torch.nn.Module, state_dict: dict[str, Any], path: str | os.PathLike,
                     expected_name: str, saved_name: str | None) -> None:
    """Load weights, refusing (one line) a checkpoint of another architecture."""
    if saved_name is not None and saved_name != expected_name:
        raise AWSAAError(f"checkpoint {path} holds a {saved_name!r} model, but this config builds {expected_name!r}")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise AWSAAError(f"checkpoint {path} does not fit model {expected_name!r}: {detail[:300]}") from None
