"""Run gitops/argocd-health.lua with a real Lua interpreter, the way Argo CD does.

Argo CD hands the script the object as the global ``obj`` and reads the table it returns.
The object is passed here as a Lua table constructor built from the parsed YAML.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "gitops"
HEALTH_LUA = GITOPS / "argocd-health.lua"


def lua_path() -> str:
    """lua5.4 (Debian's lua5.4 package, which scripts/setup.sh installs), else plain lua."""
    for name in ("lua5.4", "lua"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no Lua interpreter: install the Debian package lua5.4 (scripts/setup.sh does)"
    )


def _lua_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 32 or code == 127:
            out.append(f"\\{code:03d}")
        elif code > 127:
            out.extend(f"\\{b:03d}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_lua(value: Any) -> str:
    """A Lua expression for a JSON-like value (what Argo CD's Lua sees of an object)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{_lua_string(str(k))}] = {to_lua(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"cannot express {type(value).__name__} in Lua")


RUNNER = """
obj = {obj}
local hs = dofile({script})
io.write(tostring(hs.status), "\\n", tostring(hs.message))
"""


def health(obj: dict[str, Any], script: Path = HEALTH_LUA) -> tuple[str, str]:
    """(status, message) the health check returns for ``obj``."""
    program = RUNNER.format(obj=to_lua(obj), script=_lua_string(str(script)))
    proc = subprocess.run(
        [lua_path(), "-"], input=program, capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise AssertionError(f"lua failed: {proc.stderr}")
    status, _, message = proc.stdout.partition("\n")
    return status, message
