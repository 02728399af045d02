"""The one exception the scene layer raises for an asset that cannot be imported or rendered."""
from __future__ import annotations


class AssetError(ValueError):
    """An asset that cannot be imported or rendered. The message is one line and says why."""

    def __init__(self, message: str):
        # Importers and renderers produce multi-line noise; the contract is one readable line.
        line = " ".join(str(message).split())
        if len(line) > 500:
            line = line[:497] + "..."
        super().__init__(line)


class RenderFault(RuntimeError):
    """The machine failed to render a scene it had built: no image came out, the render was
    cancelled, a device or denoiser error. Not known to be the asset's fault: the farm blames it by
    evidence (the same asset failing on another worker or a fresh child, or succeeding there)."""
