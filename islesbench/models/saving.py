"""Reading a saved islesbench model: a full .keras checkpoint with islesbench's custom objects.

Keras is imported inside the function, so that `islesbench --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from islesbench.errors import IslesbenchError


def load_checkpoint(path):
    """Load a full .keras checkpoint; imports the modules that register islesbench's custom objects
    first (a fresh process resuming a fold has not built a model, so they would be unknown).
    A missing or damaged file is one IslesbenchError naming it."""
    import keras

    from islesbench.models import dice_metric, fused_adamw, losses, pspnet, unet, vnet  # noqa: F401  (registration)

    path = Path(path)
    if not path.is_file():
        raise IslesbenchError(f"{path}: checkpoint does not exist")
    try:
        return keras.models.load_model(str(path), safe_mode=True)
    except Exception as exc:  # zipfile, h5py, JSON and Keras all raise their own types for a bad file
        text = " ".join(str(exc).split())[:200]
        raise IslesbenchError(f"{path}: unreadable Keras checkpoint ({type(exc).__name__}: {text})") from None
