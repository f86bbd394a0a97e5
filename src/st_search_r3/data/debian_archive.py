"""Debian packages fetched from the archive and unpacked, for the builders that read files they ship."""

from __future__ import annotations

import subprocess
from pathlib import Path

from st_search_r3.atomic import staged_folder


def unpacked_packages(folder: Path, packages: tuple[str, ...]) -> Path:
    """Fetches ``packages`` with ``apt-get download`` into ``folder`` and unpacks them with ``dpkg-deb``
    into ``folder/root`` (once: an existing ``root`` is reused). Returns ``folder/root``.

    ``root`` is unpacked into a staging folder that takes its place when complete (:mod:`st_search_r3.atomic`).
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
    with staged_folder(root, replace=False) as staging:
        for deb in sorted(folder.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
    return root
