"""Container images with no registry: a debootstrap base, our Dockerfile, a pause image.

All are built with podman and saved as OCI archives in the cache; `up` imports them into
the node's containerd. The server and operator images are tagged with a hash of everything
that goes into them, so an unchanged tree builds nothing and a changed one cannot be
mistaken for the old image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import config
from .config import Paths
from .sh import run, run_logged, say

PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs")
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
# What the Dockerfile's build context holds (see .dockerignore); the hash covers exactly this.
IMAGE_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "modeldeploy",
    "server",
    "operator",
)


@dataclass(frozen=True)
class Image:
    """A built image: its reference in containerd and the OCI archive it is imported from."""

    ref: str
    archive: Path


@dataclass(frozen=True)
class ImageSet:
    server: Image
    operator: Image
    pause: Image

    def all(self) -> tuple[Image, ...]:
        return (self.pause, self.server, self.operator)


def content_hash(root: Path, inputs: tuple[str, ...] = IMAGE_INPUTS, extra: str = "") -> str:
    """sha256 over the relative paths and bytes of the inputs (caches and bytecode left out)."""
    digest = hashlib.sha256(extra.encode())
    for name in inputs:
        top = root / name
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for f in files:
            rel = f.relative_to(root).as_posix()
            if "__pycache__" in f.parts or f.suffix == ".pyc" or not f.exists():
                continue
            digest.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_set(paths: Paths, tag: str | None = None) -> ImageSet:
    """Names and archives of the current tree's images (built or not)."""
    tag = tag or content_hash(config.REPO_ROOT, extra=_base_id_or_empty())
    return ImageSet(
        server=Image(f"{config.SERVER_IMAGE_REPO}:{tag}", paths.images / f"server-{tag}.tar"),
        operator=Image(f"{config.OPERATOR_IMAGE_REPO}:{tag}", paths.images / f"operator-{tag}.tar"),
        pause=Image(config.PAUSE_IMAGE, paths.images / "pause.tar"),
    )


def current_image_set(paths: Paths) -> ImageSet:
    """The images `build` made last (what `up` imports and tests use)."""
    marker = paths.images / "current.json"
    if not marker.exists():
        raise RuntimeError("no images built yet: run `python -m e2e.cluster build`")
    return image_set(paths, tag=json.loads(marker.read_text())["tag"])


def build_images(paths: Paths) -> ImageSet:
    paths.images.mkdir(parents=True, exist_ok=True)
    ensure_base_image(paths)
    images = image_set(paths)
    ensure_pause_image(paths, images.pause)
    for target, image in (("server", images.server), ("operator", images.operator)):
        ensure_project_image(paths, target, image)
    (paths.images / "current.json").write_text(
        json.dumps({"tag": images.server.ref.split(":")[-1]})
    )
    _prune_archives(paths, images)
    return images


def _podman(*args: str) -> list[str]:
    return [*PODMAN, *args]


def image_exists(ref: str) -> bool:
    return run(_podman("image", "exists", ref), check=False).returncode == 0


def _base_id_or_empty() -> str:
    proc = run(_podman("image", "inspect", "--format", "{{.Id}}", config.BASE_IMAGE), check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def debian_mirror() -> str:
    """The Debian mirror apt already uses on this machine (read, never written anywhere)."""
    sources = Path("/etc/apt/sources.list.d")
    for f in sorted(sources.glob("*.sources")):
        uris, suites = "", ""
        for line in f.read_text().splitlines() + [""]:
            if line.startswith("URIs:"):
                uris = line.split(":", 1)[1].strip()
            elif line.startswith("Suites:"):
                suites = line.split(":", 1)[1]
            elif not line.strip():
                if uris and "bookworm" in suites.split() and "security" not in uris:
                    return uris.split()[0]
                uris, suites = "", ""
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb" and parts[2] == "bookworm":
            return parts[1]
    raise RuntimeError("no bookworm mirror found in apt's sources")


def ensure_base_image(paths: Paths) -> None:
    """Debian bookworm minbase + Python 3.11, imported as a local image (no registry)."""
    if image_exists(config.BASE_IMAGE):
        say(f"base image {config.BASE_IMAGE}: cached")
        return
    say(f"base image {config.BASE_IMAGE}: debootstrap bookworm (about a minute)")
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=paths.images))
    try:
        run_logged(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "bookworm",
                str(root),
                debian_mirror(),
            ],
            paths.cache / "logs" / "debootstrap.log",
            label="debootstrap",
        )
        # Package caches and lists are dead weight in an image.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (root / sub).glob("*.deb" if "archives" in sub else "*_*"):
                f.unlink()
        tar = run(
            [
                "bash",
                "-c",
                f"tar -C {root} -c . | {' '.join(PODMAN)} import "
                f"--change 'CMD [\"python3\"]' - {config.BASE_IMAGE}",
            ]
        )
        say(f"base image: imported {tar.stdout.strip()[:19]} in {time.monotonic() - start:.0f}s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ensure_pause_image(paths: Paths, image: Image) -> None:
    src = config.IMAGES_DIR / "pause.c"
    stamp = paths.images / "pause.sha"
    want = content_hash(config.IMAGES_DIR, ("pause.c", "Containerfile.pause"))
    if image_exists(image.ref) and image.archive.exists() and _read(stamp) == want:
        say(f"pause image {image.ref}: cached")
        return
    say(f"pause image {image.ref}: building")
    with tempfile.TemporaryDirectory(dir=paths.images) as ctx:
        run(["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-o", f"{ctx}/pause", str(src)])
        run(
            _podman(
                "build",
                "--isolation",
                "chroot",
                *ULIMITS,
                "-f",
                str(config.IMAGES_DIR / "Containerfile.pause"),
                "-t",
                image.ref,
                ctx,
            )
        )
    _save(image)
    stamp.write_text(want)


def ensure_traefik_image(paths: Paths) -> Image:
    """The gateway image: Traefik's static binary FROM scratch (built first when missing).

    Its archive sits in a folder of its own, out of reach of `_prune_archives`."""
    from .gobuild import build_binaries

    build_binaries(paths, only=("traefik",))
    image = Image(
        config.TRAEFIK_IMAGE, paths.images / "traefik" / f"traefik-{config.TRAEFIK_VERSION}.tar"
    )
    stamp = image.archive.with_suffix(".sha")
    binary = paths.traefik()
    st = binary.stat()
    want = content_hash(
        config.IMAGES_DIR, ("Containerfile.traefik",), f"{st.st_size}:{st.st_mtime_ns}"
    )
    if image_exists(image.ref) and image.archive.exists() and _read(stamp) == want:
        say(f"traefik image {image.ref}: cached")
        return image
    say(f"traefik image {image.ref}: building")
    image.archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=image.archive.parent) as ctx:
        shutil.copy2(binary, f"{ctx}/traefik")
        run(
            _podman(
                "build",
                "--isolation",
                "chroot",
                *ULIMITS,
                "-f",
                str(config.IMAGES_DIR / "Containerfile.traefik"),
                "-t",
                image.ref,
                ctx,
            )
        )
    _save(image)
    stamp.write_text(want)
    return image


def ensure_project_image(paths: Paths, target: str, image: Image) -> None:
    """podman build of one Dockerfile target on the local base; skipped when the tag exists."""
    if image_exists(image.ref) and image.archive.exists():
        say(f"{target} image {image.ref}: cached")
        return
    say(f"{target} image {image.ref}: podman build --target {target}")
    repo = image.ref.rsplit(":", 1)[0]
    ca = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    elapsed = run_logged(
        _podman(
            "build",
            "--isolation",
            "chroot",
            *ULIMITS,
            *ca,
            "--layers",
            "--build-arg",
            f"BASE_IMAGE={config.BASE_IMAGE}",
            "--target",
            target,
            "-t",
            image.ref,
            "-t",
            f"{repo}:{config.DEV_TAG}",
            "-f",
            str(config.REPO_ROOT / "Dockerfile"),
            str(config.REPO_ROOT),
        ),
        paths.cache / "logs" / f"image-{target}.log",
        label=f"{target} image",
    )
    _save(image)
    say(f"{target} image: built in {elapsed:.0f}s")


def _save(image: Image) -> None:
    tmp = image.archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    run(_podman("save", "--format", "oci-archive", "-o", str(tmp), image.ref))
    tmp.rename(image.archive)


def _prune_archives(paths: Paths, keep: ImageSet) -> None:
    """Old archives and tags are useless once a newer tree is built; keep storage bounded."""
    wanted = {i.archive.name for i in keep.all()}
    for f in paths.images.glob("*.tar"):
        if f.name not in wanted:
            f.unlink()
    current = {keep.server.ref, keep.operator.ref}
    listed = run(_podman("images", "--format", "{{.Repository}}:{{.Tag}}"), check=False).stdout
    for ref in listed.split():
        repo, _, tag = ref.rpartition(":")
        if (
            repo in (config.SERVER_IMAGE_REPO, config.OPERATOR_IMAGE_REPO)
            and tag != config.DEV_TAG
            and ref not in current
        ):
            run(_podman("rmi", ref), check=False)


def _read(p: Path) -> str:
    return p.read_text().strip() if p.exists() else ""
