"""ONNX Runtime for the default encoders: the vectors torch gives, without importing torch.

Importing torch and sentence-transformers costs several seconds; loading an ONNX file
into onnxruntime costs about a tenth of one. So a model is exported from its packaged
weights once, with torch (the only time torch is needed), into a cache folder, and every
later process (each `mmsearch query`, each `embed`) runs the exported file.

The cached file's name is keyed by the encoder id and the sha256 of the weight files it
was exported from: new weights get a new export, and nothing is ever downloaded. The
weights' checksums are remembered by (path, size, mtime) so that a query does not hash
90 MB to find its model. Export runs under a file lock, so processes that need the same
model at once export it once; the file is renamed into place whole.

The cache is ``$MMSEARCH_CACHE``, else ``$XDG_CACHE_HOME/mmsearch``, else
``~/.cache/mmsearch``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MMSearchError
from . import threads

if TYPE_CHECKING:
    import onnxruntime

CACHE_ENV = "MMSEARCH_CACHE"
#: bump when an export function changes what the exported graph computes
EXPORT_VERSION = 1
OPSET = 17


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmsearch"


def _source_digest(folder: Path, sources: Sequence[Path]) -> str:
    """sha256 over the weight files, each remembered by (path, size, mtime_ns)."""
    memo_path = folder / "sources.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    from ..store import sha256_file, write_json_atomic

    digests, changed = [], False
    for source in sources:
        stat = source.stat()
        key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in memo:
            memo[key], changed = sha256_file(source), True
        digests.append(memo[key])
    if changed:
        try:
            write_json_atomic(memo_path, memo)
        except OSError:
            pass  # a read-only cache: the checksums are computed again next time
    return hashlib.sha256("|".join(digests).encode()).hexdigest()


def exported(encoder_id: str, sources: Sequence[Path], export: Callable[[Path], None]) -> Path:
    """The cached ONNX file of ``encoder_id``, made by ``export(path)`` if it is missing.
    A cache this user cannot write still serves the files it holds (a shared cache)."""
    folder = cache_dir() / "onnx"
    try:
        return _exported(folder, encoder_id, sources, export)
    except PermissionError as exc:
        raise MMSearchError(
            f"model cache {folder} is not usable ({exc.strerror}: {exc.filename}): "
            f"set ${CACHE_ENV} to a folder you can write"
        ) from None


def _exported(folder: Path, encoder_id: str, sources: Sequence[Path], export: Callable[[Path], None]) -> Path:
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{EXPORT_VERSION}|{encoder_id}|{_source_digest(folder, sources)}".encode()).hexdigest()[:16]
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', encoder_id)[:80]}-{key}.onnx"
    if path.is_file():
        return path
    with FileLock(f"{path}.lock"):
        if not path.is_file():
            partial = path.with_name(path.name + ".partial")
            try:
                export(partial)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
    return path


def session(path: Path) -> onnxruntime.InferenceSession:
    """An inference session on ``threads()`` threads that do not spin while idle (a
    spinning pool steals the CPU that decoding and other processes need)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise MMSearchError(f"cached model {path} cannot be loaded ({exc}): delete it and run the command again") from None


def torch_export(module: Any, example: tuple[Any, ...], names: Sequence[str], dynamic: dict[str, dict[int, str]], path: Path) -> None:
    """Trace ``module`` on ``example`` into an ONNX file whose output is ``vector``."""
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        # TorchScript tracing warns about every Python-level shape check it freezes;
        # the exported graph is checked against torch's own vectors by the tests.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            input_names=list(names),
            output_names=["vector"],
            dynamic_axes={**dynamic, "vector": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
