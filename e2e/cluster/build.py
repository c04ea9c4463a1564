"""`build`: binaries, then images; each step is skipped when its cached output is current."""

from __future__ import annotations

import time

from .config import Paths
from .sh import say


def build_all(
    paths: Paths, only: tuple[str, ...] = (), nice: bool = False, binaries_only: bool = False
) -> None:
    from .gobuild import build_binaries

    start = time.monotonic()
    build_binaries(paths, only=only, nice=nice)
    if not binaries_only and not only:
        from .images import build_images

        images = build_images(paths)
        from .lifecycle import ensure_images, status

        if status(paths).healthy:  # a running cluster gets the new images at once
            ensure_images(paths, images)
    elif "traefik" in only and not binaries_only:  # the gateway's image goes with its binary
        from .images import ensure_traefik_image
        from .lifecycle import ensure_images, status

        traefik = ensure_traefik_image(paths)
        if status(paths).healthy:
            ensure_images(paths, (traefik,))
    say(f"build: done in {time.monotonic() - start:.0f}s")
