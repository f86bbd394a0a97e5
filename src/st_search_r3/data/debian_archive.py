"""Debian packages fetched from the archive and unpacked, for the builders that read files they ship."""

from __future__ import annotations

import subprocess
from pathlib import Path


def unpacked_packages(folder: Path, packages: tuple[str, ...]) -> Path:
    """Fetches ``packages`` with ``apt-get download`` into ``folder`` and unpacks them with ``dpkg-deb``
    into ``folder/root`` (once: an existing ``root`` is reused). Returns ``folder/root``.

    ``root`` is unpacked under a temporary name and renamed, so it is complete or absent.
    """
    root = folder / "root"
    if root.is_dir():
        return root
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", *packages], cwd=folder, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        hint = f"sudo apt-get update   (the files come from the Debian archive: apt-get download {packages[0]} ...)"
        raise FileNotFoundError(f"Could not download {packages}: {error}. {hint}") from error
    staging = folder / "root.tmp"
    for deb in sorted(folder.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
    staging.rename(root)
    return root
