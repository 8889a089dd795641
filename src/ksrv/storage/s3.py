"""`s3://bucket/key-or-prefix` through boto3, configured as KServe's storage initializer is.

Settings come from KServe's environment variables (`AWS_ENDPOINT_URL`, or `S3_ENDPOINT` with
`S3_USE_HTTPS`; `AWS_DEFAULT_REGION`, `S3_VERIFY_SSL`, `AWS_CA_BUNDLE` (else KServe's global
bundle, `$CA_BUNDLE_VOLUME_MOUNT_POINT/cabundle.crt`, when `CA_BUNDLE_CONFIGMAP_NAME` is set),
`S3_USER_VIRTUAL_BUCKET`, `S3_USE_ACCELERATE`, `awsAnonymousCredential`, `S3_*_TIMEOUT`,
`S3_MAX_ATTEMPTS`) and from the `serving.kserve.io/s3-*` annotations the controller would have
turned into those. boto3 is imported only here, and only when an s3:// URI is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ksrv.errors import StorageError
from ksrv.storage.base import (
    DownloadOptions,
    Listing,
    RemoteObject,
    TransientError,
    relative_path,
)

CHUNK_BYTES = 1024 * 1024
ANNOTATION = "serving.kserve.io/"
# KServe's storage-config secret (`STORAGE_CONFIG`, then `STORAGE_OVERRIDE_CONFIG`), type s3.
STORAGE_CONFIG_KEYS = {
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region": "AWS_DEFAULT_REGION",
    "verify_ssl": "S3_VERIFY_SSL",
    "anonymous": "awsAnonymousCredential",
    "ca_bundle": "AWS_CA_BUNDLE",
}
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}


@dataclass(frozen=True, slots=True)
class S3Settings:
    """How to reach S3, decoded once from the environment and annotations."""

    endpoint_url: str | None = None
    region: str | None = None
    verify: bool | str = True  # False, True or a CA bundle path
    is_anonymous: bool = False
    addressing_style: str = "auto"
    enable_accelerate: bool = False
    connect_timeout_s: float = 15.0
    read_timeout_s: float = 30.0
    max_attempts: int = 3

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], annotations: Mapping[str, str] | None = None
    ) -> S3Settings:
        """KServe's variables win over the matching `serving.kserve.io/s3-*` annotations."""
        notes = annotations or {}

        def pick(variable: str, annotation: str) -> str | None:
            return env.get(variable) or notes.get(ANNOTATION + annotation)

        endpoint = env.get("AWS_ENDPOINT_URL")
        if not endpoint and (host := pick("S3_ENDPOINT", "s3-endpoint")):
            is_https = _flag(pick("S3_USE_HTTPS", "s3-usehttps"), default=True)
            endpoint = host if "://" in host else f"{'https' if is_https else 'http'}://{host}"
        verify: bool | str = _flag(pick("S3_VERIFY_SSL", "s3-verifyssl"), default=True)
        ca_bundle = pick("AWS_CA_BUNDLE", "s3-cabundle")
        if not ca_bundle and env.get("CA_BUNDLE_CONFIGMAP_NAME"):
            # KServe's cluster-wide bundle: its ConfigMap is mounted in the storage initializer.
            folder = env.get("CA_BUNDLE_VOLUME_MOUNT_POINT") or "/etc/ssl/custom-certs"
            ca_bundle = f"{folder.rstrip('/')}/cabundle.crt"
        if verify and ca_bundle:
            verify = ca_bundle
        is_virtual = _flag(pick("S3_USER_VIRTUAL_BUCKET", "s3-usevirtualbucket"), default=False)
        return cls(
            endpoint_url=endpoint or None,
            region=env.get("AWS_DEFAULT_REGION")
            or env.get("AWS_REGION")
            or notes.get(ANNOTATION + "s3-region"),
            verify=verify,
            is_anonymous=_flag(
                pick("awsAnonymousCredential", "s3-useanoncredential"), default=False
            ),
            # Custom endpoints (MinIO, Ceph, moto) rarely resolve bucket subdomains.
            addressing_style="virtual" if is_virtual else ("path" if endpoint else "auto"),
            enable_accelerate=_flag(pick("S3_USE_ACCELERATE", "s3-useaccelerate"), default=False),
            connect_timeout_s=float(env.get("S3_CONNECT_TIMEOUT", 15)),
            read_timeout_s=float(env.get("S3_READ_TIMEOUT", 30)),
            max_attempts=int(env.get("S3_MAX_ATTEMPTS", 3)),
        )


def with_storage_config(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with KServe's storage-config JSON for type s3 applied over it, as the storage
    initializer does before it downloads."""
    merged = dict(env)
    for variable in ("STORAGE_CONFIG", "STORAGE_OVERRIDE_CONFIG"):
        raw = env.get(variable)
        if not raw:
            continue
        try:
            config = json.loads(raw)
        except ValueError as exc:
            raise StorageError(f"{variable} is not JSON: {exc}") from exc
        if not isinstance(config, dict) or config.get("type", "s3") != "s3":
            continue
        for key, name in STORAGE_CONFIG_KEYS.items():
            if config.get(key) not in (None, ""):
                merged[name] = str(config[key])
    return merged


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b")."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: expected s3://bucket/path")
    return bucket, key


class S3Provider:
    """Objects under a bucket prefix, or one object."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self.env = with_storage_config(options.environ())
        self.settings = S3Settings.from_env(self.env, options.annotations)
        self.client = self._client()

    def _client(self) -> Any:
        import boto3  # type: ignore[import-untyped]
        import botocore  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        settings = self.settings
        env = self.env
        config = Config(
            signature_version=botocore.UNSIGNED if settings.is_anonymous else None,
            s3={
                "addressing_style": settings.addressing_style,
                "use_accelerate_endpoint": settings.enable_accelerate,
            },
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
            max_pool_connections=max(10, self.options.concurrency),
        )
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=env.get("AWS_SESSION_TOKEN"),
            region_name=settings.region,
        )
        return session.client(
            "s3", endpoint_url=settings.endpoint_url, verify=settings.verify, config=config
        )

    def listing(self, uri: str) -> Listing:
        bucket, prefix = split_uri(uri)
        objects: list[RemoteObject] = []
        is_single = False
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    path = relative_path(prefix, item["Key"])
                    if path is None:
                        continue
                    is_single = is_single or item["Key"] == prefix
                    etag = item.get("ETag", "").strip('"')
                    key = f"{bucket}/{item['Key']}"
                    objects.append(RemoteObject(path, key, item["Size"], etag))
            if not objects and prefix and not prefix.endswith("/"):
                # Listing may be denied where reading is not (public objects): ask for it.
                head = self.client.head_object(Bucket=bucket, Key=prefix)
                etag = head.get("ETag", "").strip('"')
                name = prefix.rsplit("/", 1)[-1]
                objects.append(RemoteObject(name, uri[5:], head["ContentLength"], etag))
                is_single = True
        except Exception as exc:
            raise _wrap(uri, exc) from exc
        if is_single and len(objects) > 1:
            is_single = False  # `s3://b/model` names an object and a folder: take both as files
        return Listing(tuple(objects), is_single=is_single)

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        bucket, _, key = obj.key.partition("/")
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            request["Range"] = f"bytes={offset}-{end}"
        if obj.version:
            request["IfMatch"] = f'"{obj.version}"'  # every part from the same object version
        try:
            body = self.client.get_object(**request)["Body"]
            try:
                while block := body.read(CHUNK_BYTES):
                    yield block
            finally:
                body.close()
        except StorageError:
            raise
        except Exception as exc:
            raise _wrap(f"s3://{obj.key}", exc) from exc


def _wrap(uri: str, exc: Exception) -> StorageError:
    """botocore's errors as StorageError (TransientError when a retry may help)."""
    from botocore import exceptions as bce

    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NoSuchBucket":
            return StorageError(f"{uri}: bucket does not exist")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{uri}: object does not exist")
        if code in DENIED:
            return StorageError(f"{uri}: access denied ({code}); check the credentials")
        if code in ("PreconditionFailed", "412"):
            return StorageError(f"{uri}: the object changed during the download")
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError"):
            return TransientError(f"{uri}: {code} {error.get('Message', '')}".strip())
        return StorageError(f"{uri}: {code}: {error.get('Message', exc)}")
    if isinstance(exc, bce.NoCredentialsError):
        return StorageError(
            f"{uri}: no credentials; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or awsAnonymousCredential=true"
        )
    if isinstance(exc, bce.EndpointConnectionError):
        return StorageError(f"{uri}: cannot reach the endpoint: {exc}")
    if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError, bce.ReadTimeoutError)):
        return TransientError(f"{uri}: {exc}")
    if isinstance(exc, bce.IncompleteReadError | bce.ResponseStreamingError | OSError):
        return TransientError(f"{uri}: {exc}")
    if isinstance(exc, bce.BotoCoreError):
        return StorageError(f"{uri}: {exc}")
    return StorageError(f"{uri}: {exc.__class__.__name__}: {exc}")
