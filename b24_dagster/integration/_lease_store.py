"""Conditional writes on object storage: the one primitive a lease needs.

A lease object is created only if absent (`If-None-Match: *`) and replaced only if it is
still the version read (`If-Match: <etag>`); of two writers racing on one version, the store
lets exactly one win. fsspec has no such call, so a small adapter reaches the store's own
API through the filesystem fsspec already holds (its credentials, endpoint, session):

- `s3://` (AWS S3, MinIO, Cloudflare R2, Ceph, moto): s3fs's aiobotocore client,
  `put_object(IfNoneMatch="*")` / `put_object(IfMatch=etag)`. A store that ignores the
  headers would let two writers both win; each store is probed once per process (a create
  made twice must fail, a replace of a wrong version must fail), and one that ignores them
  is refused with a clear error rather than trusted;
- `memory://` (fsspec's in-process filesystem, for tests): the same contract under a lock.

Any other store is refused (`UnsupportedStore`) with what would work instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
from typing import Any, Protocol

from upath import UPath

__all__ = ["ConditionalObject", "UnsupportedStore", "conditional_object"]


class UnsupportedStore(RuntimeError):
    """The base location cannot do the conditional writes a lease needs."""


class ConditionalObject(Protocol):
    """One object written only on a condition (see the module docstring)."""

    def read(self) -> tuple[bytes, str] | None:
        """Its bytes and version (etag), or None when it does not exist."""

    def create(self, data: bytes) -> str | None:
        """Write it if it does not exist; its new version, or None when it exists."""

    def replace(self, data: bytes, version: str) -> str | None:
        """Write it if it is still `version`; its new version, or None when it changed (or is gone)."""


def conditional_object(path: UPath) -> ConditionalObject:
    """The adapter of `path`'s store; raises `UnsupportedStore` for a store without one."""
    if path.protocol in ("s3", "s3a"):
        return _S3Object(path)
    if path.protocol == "memory":
        return _MemoryObject(path)
    raise UnsupportedStore(
        f"the base location {path.protocol}:// cannot hold a lease here: the lock of a write "
        "step needs conditional writes (create-if-absent, replace-if-unchanged), which this "
        "package drives on s3:// (AWS S3, MinIO, R2, Ceph) only. Put the base on an S3 "
        "bucket or on a local or NFS path (locked with flock).")


# -- S3 -----------------------------------------------------------------------------------

_PROBED: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()
_LOST = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404")
"""Answers of a conditional write that another writer won (409: one was in progress on AWS)."""


class _S3Object:
    def __init__(self, path: UPath) -> None:
        self.fs = path.fs
        self.bucket, self.key, _ = self.fs.split_path(path.path)
        self.where = f"s3://{self.bucket}/{self.key}"

    def _run(self, method: str, **kwargs: Any) -> Any:
        from fsspec.asyn import sync

        async def call() -> Any:
            await self.fs.set_session()
            client = await self.fs.get_s3(self.bucket)
            answer = await getattr(client, method)(Bucket=self.bucket, **kwargs)
            if method == "get_object":
                async with answer["Body"] as stream:
                    answer["Body"] = await stream.read()
            return answer

        return sync(self.fs.loop, call)

    def _conditional(self, data: bytes, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        self._probe()
        try:
            return str(self._run("put_object", Key=self.key, Body=data, **condition)["ETag"])
        except ClientError as exc:
            if _code(exc) in _LOST:
                return None
            raise

    def read(self) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._run("get_object", Key=self.key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return bytes(answer["Body"]), str(answer["ETag"])

    def create(self, data: bytes) -> str | None:
        return self._conditional(data, IfNoneMatch="*")

    def replace(self, data: bytes, version: str) -> str | None:
        return self._conditional(data, IfMatch=version)

    def _probe(self) -> None:
        """Refuse a store that ignores the conditions (once per endpoint and bucket)."""
        endpoint = str(getattr(getattr(self.fs, "s3", None), "_endpoint", None) or self.fs.client_kwargs)
        where = (endpoint, self.bucket)
        with _PROBE_LOCK:
            if where in _PROBED:
                return
            probe = _S3Object.__new__(_S3Object)
            probe.fs, probe.bucket, probe.where = self.fs, self.bucket, self.where
            probe.key = f"{self.key.rpartition('/')[0]}/.probe-{secrets.token_hex(6)}".lstrip("/")
            honoured = _honours_conditions(probe)
            _PROBED[where] = honoured
        if not honoured:
            raise UnsupportedStore(
                f"the S3 endpoint of {self.where} ignores conditional writes (a create-if-absent "
                "of an existing object succeeded): two executions could both take a lease. Use a "
                "store that honours If-None-Match and If-Match (AWS S3 since 2024, MinIO, R2), or "
                "a local or NFS base path.")


def _honours_conditions(probe: _S3Object) -> bool:
    from botocore.exceptions import ClientError

    def put(**condition: str) -> bool:
        try:
            probe._run("put_object", Key=probe.key, Body=b"probe", **condition)
        except ClientError as exc:
            if _code(exc) in _LOST:
                return False
            raise
        return True

    try:
        first = put(IfNoneMatch="*")
        again = put(IfNoneMatch="*")
        stale = put(IfMatch='"00000000000000000000000000000000"')
        return first and not again and not stale
    finally:
        with contextlib.suppress(Exception):
            probe._run("delete_object", Key=probe.key)


def _code(exc: Any) -> str:
    error = getattr(exc, "response", {}) or {}
    code = str((error.get("Error") or {}).get("Code", ""))
    status = str((error.get("ResponseMetadata") or {}).get("HTTPStatusCode", ""))
    return code if code in _LOST else status


# -- memory (tests) -----------------------------------------------------------------------

_MEMORY_LOCK = threading.Lock()


class _MemoryObject:
    """fsspec's in-process store: atomic under one process-wide lock; the version is a digest
    of the bytes, as an S3 etag is (every lease write differs: it carries a fresh nonce)."""

    def __init__(self, path: UPath) -> None:
        self.fs = path.fs
        self.path = path.path

    def _get(self) -> tuple[bytes, str] | None:
        if not self.fs.exists(self.path):
            return None
        data = bytes(self.fs.cat_file(self.path))
        return data, hashlib.md5(data).hexdigest()  # noqa: S324 (a version, not a secret)

    def read(self) -> tuple[bytes, str] | None:
        with _MEMORY_LOCK:
            return self._get()

    def create(self, data: bytes) -> str | None:
        with _MEMORY_LOCK:
            if self._get() is not None:
                return None
            self.fs.pipe_file(self.path, data)
            return hashlib.md5(data).hexdigest()  # noqa: S324

    def replace(self, data: bytes, version: str) -> str | None:
        with _MEMORY_LOCK:
            current = self._get()
            if current is None or current[1] != version:
                return None
            self.fs.pipe_file(self.path, data)
            return hashlib.md5(data).hexdigest()  # noqa: S324
