"""Storage credentials for the storage-initializer, as KServe's credential builder finds them
(`pkg/credentials`): from the component's service account's secrets, or, for a model with a
`storage:` spec, from the `storage-config` secret.

Secrets are never read into the pod: keys become `secretKeyRef` env vars or secret volumes;
only the S3 settings KServe copies as values (endpoint, region, flags from annotations, secret
data or the ConfigMap) are literal. The env names are KServe's, which are also what
`ksrv storage download` reads (`ksrv.storage.s3`, `gcs`, `azure`, `hf`, `http`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ksrv.errors import ResourceInvalid, ResourceNotFound
from ksrv.k8s.config import ClusterConfig
from ksrv.k8s.context import ComponentContext

SCHEME_PLACEHOLDER: Final = "<scheme-placeholder>"
IRSA_ANNOTATION: Final = "eks.amazonaws.com/role-arn"
GCS_VOLUME: Final = "user-gcp-sa"
GCS_MOUNT_PATH: Final = "/var/secrets/"
HDFS_VOLUME: Final = "hdfs-secrets"
HDFS_MOUNT_PATH: Final = "/var/secrets/kserve-hdfscreds"
AWS_CA_BUNDLE: Final = "AWS_CA_BUNDLE"
AWS_CA_BUNDLE_CONFIGMAP: Final = "AWS_CA_BUNDLE_CONFIGMAP"
_S3_ANNOTATION: Final = "serving.kserve.io/"
# (annotation suffix, secret data key, `credentials.s3` key, env var), in KServe's order; each
# value comes from the annotation, else the secret's data, else the ConfigMap.
_S3_SETTINGS: Final = (
    ("s3-verifyssl", "S3_VERIFY_SSL", "s3VerifySSL", "S3_VERIFY_SSL"),
    ("s3-useanoncredential", "awsAnonymousCredential", "s3UseAnonymousCredential",
     "awsAnonymousCredential"),
    ("s3-region", "AWS_DEFAULT_REGION", "s3Region", "AWS_DEFAULT_REGION"),
    ("s3-usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "s3UseVirtualBucket",
     "S3_USER_VIRTUAL_BUCKET"),
    ("s3-useaccelerate", "S3_USE_ACCELERATE", "s3UseAccelerate", "S3_USE_ACCELERATE"),
    ("s3-cabundle", AWS_CA_BUNDLE, "s3CABundle", AWS_CA_BUNDLE),
    ("s3-cabundle-configmap", AWS_CA_BUNDLE_CONFIGMAP, "s3CABundleConfigMap",
     AWS_CA_BUNDLE_CONFIGMAP),
)  # fmt: skip
# Azure's env vars; a legacy `AZ_*` secret key stands in for its `AZURE_*` name.
_AZURE_KEYS: Final = (
    "AZURE_SUBSCRIPTION_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_ACCESS_KEY", "AZURE_ACCESS_TOKEN", "AZURE_ACCESS_EXPIRES_ON_SECONDS",
    "AZURE_ACCOUNT_NAME", "AZURE_SERVICE_URL",
)  # fmt: skip
_AZURE_LEGACY: Final = {
    f"AZURE_{name}": f"AZ_{name}"
    for name in ("SUBSCRIPTION_ID", "TENANT_ID", "CLIENT_ID", "CLIENT_SECRET")
}
# A secret with any of these keys is an Azure service principal (or token) secret.
_AZURE_SERVICE_PRINCIPAL: Final = {"AZ_CLIENT_ID", "AZURE_CLIENT_ID", "AZURE_ACCESS_TOKEN"}
_STORAGE_TYPES: Final = ("s3", "hdfs", "webhdfs")
_BUCKET_TYPES: Final = ("s3",)


@dataclass(frozen=True, slots=True)
class StorageSpecRequest:
    """A model's `storage:` spec: which entry of the storage-config secret, and overrides."""

    key: str = ""
    parameters: Mapping[str, str] | None = None


def add_service_account_credentials(
    init: dict[str, Any],
    volumes: list[dict[str, Any]],
    ctx: ComponentContext,
    service_account: str | None,
    annotations: Mapping[str, str],
) -> None:
    """KServe's `CreateSecretVolumeAndEnv`: the service account's secrets (or the one the
    `serving.kserve.io/storageSecretName` annotation names), each by the keys it holds.

    Raises:
        ResourceNotFound: a secret the service account names is not there.
    """
    cluster, config, namespace = ctx.cluster, ctx.config, ctx.namespace
    account = cluster.service_account(namespace, service_account or "default")
    if account is None:  # KServe logs this and provisions without credentials
        return
    meta = account.get("metadata") or {}
    account_annotations = meta.get("annotations") or {}
    if IRSA_ANNOTATION in account_annotations:
        _merge_env(init, s3_settings_env(account_annotations, {}, config.credentials.s3))
    named = config.credentials.storage_secret_name_annotation
    if named and named in annotations:
        names = [annotations[named]]
    else:
        names = [str(ref.get("name")) for ref in account.get("secrets") or () if ref.get("name")]
    for name in names:
        secret = cluster.secret(namespace, name)
        if secret is None:
            raise ResourceNotFound(
                f"secret {name!r} of service account {meta.get('name')!r} is not in namespace "
                f"{namespace!r}"
            )
        _add_secret(init, volumes, secret, config)


def _add_secret(
    init: dict[str, Any],
    volumes: list[dict[str, Any]],
    secret: dict[str, Any],
    config: ClusterConfig,
) -> None:
    """KServe's `mountSecretCredential`: the first kind of credential the secret's keys show."""
    name = secret["metadata"]["name"]
    data = secret_data(secret)
    credentials = config.credentials
    env = init.setdefault("env", [])
    if credentials.s3_secret_access_key_name in data:
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        keys = [
            _secret_env("AWS_ACCESS_KEY_ID", name, credentials.s3_access_key_id_name),
            _secret_env("AWS_SECRET_ACCESS_KEY", name, credentials.s3_secret_access_key_name),
        ]
        _merge_env(init, [*keys, *s3_settings_env(annotations, data, credentials.s3)])
    elif credentials.gcs_credential_file_name in data:
        _mount_secret(init, volumes, name, GCS_VOLUME, GCS_MOUNT_PATH)
        path = GCS_MOUNT_PATH + credentials.gcs_credential_file_name
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": path})
    elif _AZURE_SERVICE_PRINCIPAL & set(data):
        env.extend(_azure_env(name, data))
    elif "AZURE_STORAGE_ACCESS_KEY" in data:
        env.append(_secret_env("AZURE_STORAGE_ACCESS_KEY", name, "AZURE_STORAGE_ACCESS_KEY"))
    elif "https-host" in data:
        if "headers" in data:  # `ksrv.storage.http` reads `{host}-headers` as KServe does
            env.append({"name": f"{data['https-host']}-headers", "value": data["headers"]})
    elif "HDFS_NAMENODE" in data:
        _mount_secret(init, volumes, name, HDFS_VOLUME, HDFS_MOUNT_PATH)
    elif "HF_TOKEN" in data:
        env.append(_secret_env("HF_TOKEN", name, "HF_TOKEN"))
    elif "MODELSCOPE_API_TOKEN" in data:
        env.append(_secret_env("MODELSCOPE_API_TOKEN", name, "MODELSCOPE_API_TOKEN"))


def _azure_env(secret: str, data: Mapping[str, str]) -> list[dict[str, Any]]:
    """KServe's Azure env, from `AZURE_*` keys or their legacy `AZ_*` names. KServe also refers
    to AZURE_TENANT_ID when the secret lacks it (the pod then fails to start); only the keys
    the secret holds are referred to here."""
    found = []
    for name in _AZURE_KEYS:
        legacy = _AZURE_LEGACY.get(name, name)
        key = legacy if legacy in data else name
        if key in data:
            found.append(_secret_env(name, secret, key))
    return found


def _mount_secret(
    init: dict[str, Any], volumes: list[dict[str, Any]], secret: str, volume: str, path: str
) -> None:
    _add_volume(volumes, {"name": volume, "secret": {"secretName": secret}})
    init.setdefault("volumeMounts", []).append(
        {"name": volume, "mountPath": path, "readOnly": True}
    )


def s3_settings_env(
    annotations: Mapping[str, str], data: Mapping[str, str], s3_config: Mapping[str, str]
) -> list[dict[str, Any]]:
    """KServe's `BuildS3EnvVars`: endpoint, https, region and flags as literal env vars."""

    def value(annotation: str, data_key: str, config_key: str) -> str:
        if _S3_ANNOTATION + annotation in annotations:
            return annotations[_S3_ANNOTATION + annotation]
        if data_key in data:
            return data[data_key]
        return s3_config.get(config_key, "")

    env: list[dict[str, Any]] = []
    endpoint = value("s3-endpoint", "S3_ENDPOINT", "s3Endpoint").strip()
    if endpoint:
        lowered = endpoint.lower()
        if lowered.startswith("https://"):
            use_https, host, url = "1", endpoint[len("https://") :], endpoint
        elif lowered.startswith("http://"):
            use_https, host, url = "0", endpoint[len("http://") :], endpoint
        else:
            use_https, host = value("s3-usehttps", "S3_USE_HTTPS", "s3UseHttps"), endpoint
            url = f"{'http' if use_https == '0' else 'https'}://{endpoint}"
        if use_https:
            env.append({"name": "S3_USE_HTTPS", "value": use_https})
        env += [{"name": "S3_ENDPOINT", "value": host}, {"name": "AWS_ENDPOINT_URL", "value": url}]
    for annotation, data_key, config_key, name in _S3_SETTINGS:
        found = value(annotation, data_key, config_key)
        if found:
            env.append({"name": name, "value": found})
    return env


def add_storage_spec_credentials(
    init: dict[str, Any],
    ctx: ComponentContext,
    annotations: Mapping[str, str],
    request: StorageSpecRequest,
) -> None:
    """KServe's `CreateStorageSpecSecretEnvs`: `STORAGE_CONFIG` from the storage-config secret's
    entry (`key`, else `default` / `default_{type}`), `STORAGE_OVERRIDE_CONFIG` from the
    parameters, and the `<scheme-placeholder>://path` arguments made real URIs.

    Raises:
        ResourceNotFound: the secret or the named key is missing.
        ResourceInvalid: the entry is not JSON, or its type or bucket cannot be told.
    """
    cluster, config, namespace = ctx.cluster, ctx.config, ctx.namespace
    parameters = dict(request.parameters or {})
    storage_type, bucket = parameters.get("type", ""), parameters.get("bucket", "")
    secret_name = config.credentials.storage_spec_secret_name or "storage-config"
    named = config.credentials.storage_secret_name_annotation
    if named and named in annotations:
        secret_name = annotations[named]
    secret = cluster.secret(namespace, secret_name)
    key, entry = request.key, None
    if secret is not None:
        data = secret_data(secret)
        if not key:
            key = f"default_{storage_type}" if storage_type else "default"
        elif key not in data:
            raise ResourceNotFound(f"storage key {key!r} is not in secret {secret_name!r}")
        entry = data.get(key)
    elif key:
        raise ResourceNotFound(f"storage secret {secret_name!r} is not in namespace {namespace!r}")
    env = init.setdefault("env", [])
    if entry is not None:
        if not storage_type:
            stored = _entry_json(entry, key, secret_name)
            storage_type = str(stored.get("type", ""))
            if storage_type and storage_type not in _STORAGE_TYPES:
                raise ResourceInvalid(
                    f"storage type must be one of [{', '.join(_STORAGE_TYPES)}]; storage type "
                    f"[{storage_type}] is not supported",
                    "InvalidStorageSpec",
                )
            bucket = bucket or str(stored.get("bucket", ""))
            if "cabundle_configmap" in stored:
                env.append({"name": AWS_CA_BUNDLE_CONFIGMAP, "value": stored["cabundle_configmap"]})
        env.append(_secret_env("STORAGE_CONFIG", secret_name, key))
    if not storage_type:
        raise ResourceInvalid("unable to determine storage type", "InvalidStorageSpec")
    init["args"] = _real_uris(init.get("args") or [], storage_type, bucket)
    if parameters:
        override = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
        env.append({"name": "STORAGE_OVERRIDE_CONFIG", "value": override})


def _real_uris(args: list[str], storage_type: str, bucket: str) -> list[str]:
    prefix = f"{SCHEME_PLACEHOLDER}://"
    if not args or not args[0].startswith(prefix):
        return args
    args = list(args)
    for index in range(0, len(args), 2):
        path = args[index].removeprefix(prefix)
        if storage_type in _BUCKET_TYPES:
            if not bucket:
                raise ResourceInvalid(
                    f"format [{storage_type}] requires a bucket but one wasn't found in storage "
                    "data or parameters",
                    "InvalidStorageSpec",
                )
            args[index] = f"{storage_type}://{bucket}/{path}"
        else:
            args[index] = f"{storage_type}://{path}"
    return args


def _entry_json(entry: str, key: str, secret_name: str) -> dict[str, Any]:
    try:
        stored = json.loads(entry)
    except json.JSONDecodeError as exc:
        raise ResourceInvalid(
            f"invalid json encountered in key {key} of storage secret {secret_name}: {exc}",
            "InvalidStorageSpec",
        ) from None
    if not isinstance(stored, dict):
        raise ResourceInvalid(
            f"key {key} of storage secret {secret_name} must be a JSON object",
            "InvalidStorageSpec",
        )
    return stored


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's entries as text: `data` decoded from base64, `stringData` over it (as the
    API server merges them)."""
    found: dict[str, str] = {}
    name = (secret.get("metadata") or {}).get("name")
    for key, encoded in (secret.get("data") or {}).items():
        try:
            found[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ResourceInvalid(
                f"secret {name!r}: data.{key} is not base64-encoded text", "InvalidSecret"
            ) from None
    found.update({str(k): str(v) for k, v in (secret.get("stringData") or {}).items()})
    return found


def env_value(container: dict[str, Any], name: str) -> str | None:
    """The literal value of env var `name` in `container` ("" when set from a reference)."""
    for var in container.get("env") or ():
        if var.get("name") == name:
            return str(var.get("value", ""))
    return None


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _merge_env(container: dict[str, Any], overrides: list[dict[str, Any]]) -> None:
    """KServe's `MergeEnvs`: an override replaces the variable of the same name, or is added."""
    env = container.setdefault("env", [])
    for override in overrides:
        index = next((i for i, var in enumerate(env) if var.get("name") == override["name"]), None)
        if index is None:
            env.append(override)
        else:
            env[index] = override


def _add_volume(volumes: list[dict[str, Any]], volume: dict[str, Any]) -> None:
    if all(existing.get("name") != volume["name"] for existing in volumes):
        volumes.append(volume)
