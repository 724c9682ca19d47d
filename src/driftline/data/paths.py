"""Which folders driftline may read and write: every user-given path is checked here, symlinks resolved."""

from __future__ import annotations

from pathlib import Path

from driftline.config import DriftlineConfig
from driftline.errors import PathNotAllowed


def allowed_roots(cfg: DriftlineConfig) -> list[Path]:
    """The workspace, the config file's folder, every folder the config names, and `storage.allowed_roots`."""
    named = [*cfg.folders.all(), *cfg.storage.allowed_roots, *filter(None, [cfg.storage.archive_dir])]
    if cfg.source is not None:
        named.append(cfg.source.parent)
    roots = list(dict.fromkeys(root.resolve() for root in named))
    # A folder inside another allowed one adds nothing: left out, the error message stays short.
    return [root for root in roots if not any(root != other and root.is_relative_to(other) for other in roots)]


def allowed_path(path: str | Path, cfg: DriftlineConfig) -> Path:
    """The path, resolved (symlinks and `..` followed), if it lies under an allowed root; else PathNotAllowed."""
    resolved = Path(path).expanduser().resolve()
    roots = allowed_roots(cfg)
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise PathNotAllowed(
            f"{path}: outside the allowed folders ({resolved} is not under {shown}); "
            f"move it under one of them or add its folder to storage.allowed_roots in {cfg.source or 'the config'}"
        )
    return resolved
