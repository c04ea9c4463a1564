"""Build the cluster's binaries from Go modules into a cache folder keyed by version.

kube-* and etcd come from the wrapper modules in e2e/gobuild (their upstream go.mod files
carry replace directives that `go install MOD@VER` refuses); helm and versitygw (the
S3-compatible server the s3:// bundle tests run) install as they are; Traefik (optional,
the gateway tests) has its own wrapper module too. A binary that already
reports the wanted version is never rebuilt.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import config
from .config import Paths
from .sh import run, run_logged, say

K8S_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)


@dataclass(frozen=True)
class Target:
    """One build: what it produces, how to tell it is current, and how to make it."""

    name: str
    binaries: tuple[Path, ...]
    version_cmd: tuple[str, ...]
    version_text: str
    # How it is built, when the version alone cannot tell an old build from a current one:
    # kept in a stamp beside the first binary, and a different recipe means a rebuild.
    recipe: str = ""

    @property
    def stamp(self) -> Path:
        return self.binaries[0].with_name(self.binaries[0].name + ".recipe")


def go_env(paths: Paths) -> dict[str, str]:
    """The same Go settings for every build, so all of them share one module and build cache."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(paths.gomodcache),
        GOCACHE=str(paths.gocache),
        GOTOOLCHAIN="local",
        GOWORK="off",
        CGO_ENABLED="0",
        GOFLAGS="-buildvcs=false",
    )
    return env


def version_ldflags(version: str) -> str:
    """-X flags that make `/version` and `--version` tell the truth (Helm checks them)."""
    major, minor = version.lstrip("v").split(".")[:2]
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={date}",
        ]
    return " ".join(flags)


def is_current(target: Target) -> bool:
    """All binaries exist and the first one prints the wanted version."""
    if not all(b.is_file() and os.access(b, os.X_OK) for b in target.binaries):
        return False
    if target.recipe and not (target.stamp.is_file() and target.stamp.read_text() == target.recipe):
        return False
    proc = run(target.version_cmd, check=False, timeout=60)
    return target.version_text in (proc.stdout + proc.stderr)


def targets(paths: Paths) -> dict[str, Target]:
    k8s = tuple(paths.k8s(n) for n in K8S_BINARIES)
    return {
        "kubernetes": Target(
            "kubernetes", k8s, (str(k8s[0]), "--version"), f"Kubernetes {config.K8S_VERSION}"
        ),
        "etcd": Target(
            "etcd",
            (paths.etcd(),),
            (str(paths.etcd()), "--version"),
            f"etcd Version: {config.ETCD_VERSION.lstrip('v')}",
        ),
        "prometheus": Target(
            "prometheus",
            (paths.prometheus(), paths.promtool()),
            (str(paths.prometheus()), "--version"),
            f"prometheus, version {config.PROMETHEUS_VERSION}",
        ),
        "helm": Target(
            "helm",
            (paths.helm(),),
            (str(paths.helm()), "version", "--short"),
            config.HELM_VERSION,
            recipe=HELM_RECIPE,
        ),
        "versitygw": Target(
            "versitygw",
            (paths.versitygw(),),
            (str(paths.versitygw()), "--version"),
            f"Version  : {config.VERSITYGW_VERSION}",
        ),
    }


def optional_targets(paths: Paths) -> dict[str, Target]:
    """Built only when asked for (`build --only kwok`, or by the scale benchmark); `up`
    never needs them."""
    return {
        "kwok": Target(
            "kwok",
            (paths.kwok(),),
            (str(paths.kwok()), "--version"),
            f"kwok version {config.KWOK_VERSION}",
        ),
        "traefik": Target(
            "traefik",
            (paths.traefik(),),
            (str(paths.traefik()), "version"),
            config.TRAEFIK_VERSION,
        ),
    }


def build_kubernetes(paths: Paths, nice: bool) -> float:
    paths.k8s_bin.mkdir(parents=True, exist_ok=True)
    pkgs = [f"k8s.io/kubernetes/cmd/{n}" for n in K8S_BINARIES]
    cmd = [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-ldflags",
        version_ldflags(config.K8S_VERSION),
        "-o",
        f"{paths.k8s_bin}/",
        *pkgs,
    ]
    return run_logged(
        _nice(cmd, nice),
        paths.cache / "logs" / "build-kubernetes.log",
        label=f"building Kubernetes {config.K8S_VERSION}",
        env=go_env(paths),
        cwd=config.GOBUILD_DIR / "kubernetes",
    )


def build_etcd(paths: Paths, nice: bool) -> float:
    paths.etcd_bin.mkdir(parents=True, exist_ok=True)
    cmd = [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-ldflags",
        "-s -w",
        "-o",
        str(paths.etcd()),
        "go.etcd.io/etcd/server/v3",
    ]
    return run_logged(
        _nice(cmd, nice),
        paths.cache / "logs" / "build-etcd.log",
        label=f"building etcd {config.ETCD_VERSION}",
        env=go_env(paths),
        cwd=config.GOBUILD_DIR / "etcd",
    )


def build_prometheus(paths: Paths, nice: bool) -> float:
    paths.prometheus_bin.mkdir(parents=True, exist_ok=True)
    pkg = "github.com/prometheus/common/version"
    date = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime())
    ldflags = (
        f"-s -w -X {pkg}.Version={config.PROMETHEUS_VERSION} -X {pkg}.Branch=HEAD"
        f" -X {pkg}.Revision={config.PROMETHEUS_MODULE_VERSION} -X {pkg}.BuildUser=modeldeploy"
        f" -X {pkg}.BuildDate={date}"
    )
    # Only the Kubernetes service discovery (plus file and http, always in): the other
    # providers' modules are large, and some are not on the module proxy at all.
    cmd = [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-tags",
        "remove_all_sd,enable_kubernetes_sd",
        "-ldflags",
        ldflags,
        "-o",
        f"{paths.prometheus_bin}/",
        "github.com/prometheus/prometheus/cmd/prometheus",
        "github.com/prometheus/prometheus/cmd/promtool",
    ]
    return run_logged(
        _nice(cmd, nice),
        paths.cache / "logs" / "build-prometheus.log",
        label=f"building prometheus {config.PROMETHEUS_VERSION}",
        env=go_env(paths),
        cwd=config.GOBUILD_DIR / "prometheus",
    )


# helm's Makefile also sets the Kubernetes version that `helm template` and `helm lint`
# assume without --kube-version, from the client-go it is built with (major + 1, minor);
# without it they assume v1.20 and a chart's `kubeVersion: >=1.28` refuses to render.
HELM_RECIPE = "ldflags: version, gitTreeState, chartutil and lint k8sVersion from client-go"


def helm_kube_version(paths: Paths) -> tuple[str, str]:
    """(major, minor) as helm's Makefile derives them from its go.mod's k8s.io/client-go."""
    gomod = paths.gomodcache / f"helm.sh/helm/v3@{config.HELM_VERSION}" / "go.mod"
    if not gomod.is_file():
        run(
            ["go", "mod", "download", f"helm.sh/helm/v3@{config.HELM_VERSION}"],
            env=go_env(paths),
            cwd=paths.cache,
            timeout=600,
        )
    for line in gomod.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["k8s.io/client-go"] and len(parts) >= 2:
            major, minor = parts[1].lstrip("v").split(".")[:2]
            return str(int(major) + 1), minor
    raise RuntimeError(f"{gomod} does not require k8s.io/client-go")


def build_helm(paths: Paths, nice: bool) -> float:
    paths.helm_bin.mkdir(parents=True, exist_ok=True)
    env = go_env(paths)
    env["GOBIN"] = str(paths.helm_bin)
    ver = config.HELM_VERSION
    major, minor = helm_kube_version(paths)
    flags = [
        "-s",
        "-w",
        f"-X helm.sh/helm/v3/internal/version.version={ver}",
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
    ]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    cmd = [
        "go",
        "install",
        "-v",
        "-trimpath",
        "-ldflags",
        " ".join(flags),
        f"helm.sh/helm/v3/cmd/helm@{ver}",
    ]
    seconds = run_logged(
        _nice(cmd, nice),
        paths.cache / "logs" / "build-helm.log",
        label=f"building helm {ver}",
        env=env,
        cwd=paths.cache,
    )
    paths.helm().with_name("helm.recipe").write_text(HELM_RECIPE)
    return seconds


def _go_install(
    paths: Paths, nice: bool, name: str, package: str, bin_dir: Path, ldflags: str
) -> float:
    """``go install PACKAGE@VERSION`` into ``bin_dir``, logged: for modules that install as
    they are (no wrapper module)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = go_env(paths)
    env["GOBIN"] = str(bin_dir)
    cmd = ["go", "install", "-v", "-trimpath", "-ldflags", ldflags, package]
    return run_logged(
        _nice(cmd, nice),
        paths.cache / "logs" / f"build-{name}.log",
        label=f"building {name} {package.rpartition('@')[2]}",
        env=env,
        cwd=paths.cache,
    )


def build_kwok(paths: Paths, nice: bool) -> float:
    ver = config.KWOK_VERSION
    return _go_install(
        paths, nice, "kwok", f"sigs.k8s.io/kwok/cmd/kwok@{ver}", paths.kwok_bin, "-s -w"
    )


def build_versitygw(paths: Paths, nice: bool) -> float:
    ver = config.VERSITYGW_VERSION
    return _go_install(
        paths,
        nice,
        "versitygw",
        f"github.com/versity/versitygw/cmd/versitygw@{ver}",
        paths.versitygw_bin,
        f"-s -w -X main.Version={ver} -X main.Build={ver}",
    )


def build_traefik(paths: Paths, nice: bool) -> float:
    """Traefik from the wrapper module (it repeats Traefik's replace and exclude lines);
    -mod=mod lets the build complete go.sum from the module cache."""
    paths.traefik_bin.mkdir(parents=True, exist_ok=True)
    env = go_env(paths)
    env["GOFLAGS"] = "-buildvcs=false -mod=mod"
    pkg = "github.com/traefik/traefik/v3/pkg/version"
    ldflags = f"-s -w -X {pkg}.Version={config.TRAEFIK_VERSION}"
    cmd = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", str(paths.traefik())]
    return run_logged(
        _nice([*cmd, "github.com/traefik/traefik/v3/cmd/traefik"], nice),
        paths.cache / "logs" / "build-traefik.log",
        label=f"building traefik {config.TRAEFIK_VERSION}",
        env=env,
        cwd=config.GOBUILD_DIR / "traefik",
    )


BUILDERS = {
    "kubernetes": build_kubernetes,
    "etcd": build_etcd,
    "prometheus": build_prometheus,
    "helm": build_helm,
    "kwok": build_kwok,
    "versitygw": build_versitygw,
    "traefik": build_traefik,
}


def build_binaries(
    paths: Paths, only: tuple[str, ...] = (), nice: bool = False
) -> dict[str, float]:
    """Build whatever is missing or of the wrong version; returns seconds per build done."""
    if shutil.which("go") is None:
        raise RuntimeError("the go command is missing: install Go >= 1.24 to build the cluster")
    done: dict[str, float] = {}
    wanted = {**targets(paths), **{k: v for k, v in optional_targets(paths).items() if k in only}}
    for name, target in wanted.items():
        if only and name not in only:
            continue
        if is_current(target):
            say(f"{name}: cached ({target.binaries[0].parent})")
            continue
        say(f"{name}: building (first time on this machine: minutes, see README)")
        done[name] = BUILDERS[name](paths, nice)
        if not is_current(target):
            raise RuntimeError(
                f"{name} built but `{' '.join(target.version_cmd)}` "
                f"does not print {target.version_text!r}"
            )
        say(f"{name}: built in {done[name]:.0f}s")
    return done


def _nice(cmd: list[str], nice: bool) -> list[str]:
    return ["nice", "-n", "19", *cmd] if nice else cmd
