"""The raw ASGI app (``raw_server.py``) under uvicorn with the model server's protocol, which
writes a response's head and body in one write: the same floor with the same write path as
ours, beside the stock one.

    python bench/raw_onewrite.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from benchlib import BENCH

from modeldeploy.server.onewrite import OneWriteHttpToolsProtocol

if __name__ == "__main__":
    uvicorn.run(
        "raw_server:app",
        app_dir=str(BENCH),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http=OneWriteHttpToolsProtocol,
        loop="uvloop",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
    )
