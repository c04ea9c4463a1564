"""The labelled-data store of the retraining loop: what ``/feedback`` labelled, kept as
rotating Parquet files on a volume or under an S3 prefix (names in ``contract.retrain``).

- ``format``: the rows' columns and dtypes, and the files' names;
- ``sinks``: a folder or an S3 prefix, one error type (``LabelledDataError``);
- ``writer``: the model server's side, bounded in memory, writing off the event loop;
- ``reader``: ``read_window``, what the trainer, the gate and ``modeldeploy labelled-data``
  read the store with.
"""

from __future__ import annotations

from modeldeploy.server.labelled.reader import read_window as read_window
from modeldeploy.server.labelled.sinks import LabelledDataError as LabelledDataError
from modeldeploy.server.sources.s3client import S3Settings as S3Settings

__all__ = ["LabelledDataError", "S3Settings", "read_window"]
