"""Storage credentials on Kubernetes, as KServe's credential builder sets them: the service
account's secrets, the `storage-config` secret for a `storage:` spec, and the CA bundle. The
env names are checked against what `ksrv storage download` reads."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from ksrv.errors import ResourceInvalid, ResourceNotFound
from ksrv.k8s import config as k8s_config
from ksrv.k8s.storage_credentials import s3_settings_env, secret_data
from ksrv.storage import s3
from tests.unit.k8s.test_storage_init import CONFIG, init, isvc, model, provisioned

HF_DEFAULTS = ("HF_HUB_ENABLE_HF_TRANSFER", "HF_XET_HIGH_PERFORMANCE",
               "HF_XET_NUM_CONCURRENT_RANGE_GETS")  # fmt: skip


def account(name: str = "sa", secrets: tuple[str, ...] = (), **annotations: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations},
        "secrets": [{"name": secret} for secret in secrets],
    }


def secret(name: str, annotations: dict[str, str] | None = None, **data: str) -> dict:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations or {}},
        "data": encoded,
    }


def with_account(uri: str, name: str = "sa", **extra: Any) -> dict:
    return isvc(model(uri, serviceAccountName=name, **extra))


def ref(secret_name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": secret_name, "key": key}}


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    """The init container's env by name, the HF defaults left out."""
    return {
        var["name"]: var.get("value", var.get("valueFrom"))
        for var in init(pod).get("env", [])
        if var["name"] not in HF_DEFAULTS
    }


def test_an_s3_secret_becomes_key_references_and_its_annotations_literal_settings():
    creds = secret("s3", {"serving.kserve.io/s3-endpoint": "minio.svc:9000",
                          "serving.kserve.io/s3-usehttps": "0",
                          "serving.kserve.io/s3-region": "eu-west-1",
                          "serving.kserve.io/s3-verifyssl": "0"},
                   AWS_ACCESS_KEY_ID="id", AWS_SECRET_ACCESS_KEY="key")  # fmt: skip
    pod = provisioned(with_account("s3://b/m"), account(secrets=("s3",)), creds)
    env = env_of(pod)
    assert env == {
        "AWS_ACCESS_KEY_ID": ref("s3", "AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": ref("s3", "AWS_SECRET_ACCESS_KEY"),
        "S3_USE_HTTPS": "0",
        "S3_ENDPOINT": "minio.svc:9000",
        "AWS_ENDPOINT_URL": "http://minio.svc:9000",
        "S3_VERIFY_SSL": "0",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    # ksrv's storage layer reads these names (and the secret's keys arrive under theirs).
    literal = {name: value for name, value in env.items() if isinstance(value, str)}
    settings = s3.S3Settings.from_env(literal)
    assert (settings.endpoint_url, settings.region, settings.verify) == (
        "http://minio.svc:9000", "eu-west-1", False
    )  # fmt: skip


def test_the_configmap_names_the_s3_keys_and_fills_unset_settings():
    credentials = dataclasses.replace(
        CONFIG.credentials, s3_access_key_id_name="awsAccessKeyID",
        s3_secret_access_key_name="awsSecretAccessKey",
        s3={"s3Endpoint": "https://s3.example.com", "s3UseVirtualBucket": "true"},
    )  # fmt: skip
    config = dataclasses.replace(CONFIG, credentials=credentials)
    creds = secret("s3", awsAccessKeyID="id", awsSecretAccessKey="key")
    pod = provisioned(with_account("s3://b/m"), account(secrets=("s3",)), creds, config=config)
    assert env_of(pod) == {
        "AWS_ACCESS_KEY_ID": ref("s3", "awsAccessKeyID"),
        "AWS_SECRET_ACCESS_KEY": ref("s3", "awsSecretAccessKey"),
        "S3_USE_HTTPS": "1",
        "S3_ENDPOINT": "s3.example.com",
        "AWS_ENDPOINT_URL": "https://s3.example.com",
        "S3_USER_VIRTUAL_BUCKET": "true",
    }


def test_an_iam_role_service_account_gets_s3_settings_from_its_own_annotations():
    irsa = account(**{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r",
                      "serving.kserve.io/s3-region": "us-east-2"})  # fmt: skip
    pod = provisioned(with_account("s3://b/m"), irsa)
    assert env_of(pod) == {"AWS_DEFAULT_REGION": "us-east-2"}


def test_a_gcs_secret_is_mounted_and_named_by_google_application_credentials():
    creds = secret("gcs", **{"gcloud-application-credentials.json": "{}"})
    pod = provisioned(with_account("gs://b/m"), account(secrets=("gcs",)), creds)
    assert env_of(pod) == {
        "GOOGLE_APPLICATION_CREDENTIALS": "/var/secrets/gcloud-application-credentials.json"
    }
    assert {"name": "user-gcp-sa", "secret": {"secretName": "gcs"}} in pod["volumes"]
    assert {"name": "user-gcp-sa", "mountPath": "/var/secrets/", "readOnly": True} in init(pod)[
        "volumeMounts"
    ]


def test_an_azure_secret_with_legacy_keys_sets_the_azure_names():
    creds = secret("az", AZ_TENANT_ID="t", AZ_CLIENT_ID="c", AZ_CLIENT_SECRET="s")
    uri = "https://acct.blob.core.windows.net/c/m"
    pod = provisioned(with_account(uri), account(secrets=("az",)), creds)
    assert env_of(pod) == {
        "AZURE_TENANT_ID": ref("az", "AZ_TENANT_ID"),
        "AZURE_CLIENT_ID": ref("az", "AZ_CLIENT_ID"),
        "AZURE_CLIENT_SECRET": ref("az", "AZ_CLIENT_SECRET"),
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"AZURE_STORAGE_ACCESS_KEY": "k"},
         {"AZURE_STORAGE_ACCESS_KEY": ref("creds", "AZURE_STORAGE_ACCESS_KEY")}),
        ({"HF_TOKEN": "t"}, {"HF_TOKEN": ref("creds", "HF_TOKEN")}),
        ({"https-host": "models.example.com", "headers": '{"Authorization": "Bearer x"}'},
         {"models.example.com-headers": '{"Authorization": "Bearer x"}'}),
        ({"unrelated": "x"}, {}),
    ],
)  # fmt: skip
def test_each_kind_of_secret_sets_what_the_downloader_reads(data, expected):
    creds = secret("creds", **data)
    pod = provisioned(with_account("https://models.example.com/m"), account(secrets=("creds",)),
                      creds)  # fmt: skip
    assert env_of(pod) == expected


def test_the_storage_secret_name_annotation_names_the_secret_instead():
    document = with_account("s3://b/m")
    document["metadata"]["annotations"]["serving.kserve.io/storageSecretName"] = "mine"
    creds = secret("mine", AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b")
    pod = provisioned(document, account(secrets=("other",)), creds)
    assert env_of(pod)["AWS_ACCESS_KEY_ID"] == ref("mine", "AWS_ACCESS_KEY_ID")


def test_without_the_service_account_there_are_no_credentials_and_a_missing_secret_is_named():
    assert env_of(provisioned(with_account("s3://b/m"))) == {}
    with pytest.raises(ResourceNotFound, match="secret 'gone' of service account 'sa'"):
        provisioned(with_account("s3://b/m"), account(secrets=("gone",)))


def test_the_default_service_account_is_read_when_none_is_named():
    creds = secret("s3", AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b")
    pod = provisioned(isvc(model("s3://b/m")), account("default", ("s3",)), creds)
    assert "AWS_ACCESS_KEY_ID" in env_of(pod)


def storage_model(**storage: Any) -> dict:
    return isvc({"model": {"modelFormat": {"name": "sklearn"}, "storage": storage}})


STORAGE_CONFIG = secret(
    "storage-config",
    localMinIO='{"type": "s3", "bucket": "models", "endpoint_url": "http://minio:9000"}',
    default='{"type": "s3", "bucket": "fallback"}',
    broken="{not json",
    odd='{"type": "ftp"}',
    nobucket='{"type": "s3", "cabundle_configmap": "my-ca"}',
)


def test_a_storage_spec_reads_its_key_of_the_storage_config_secret():
    pod = provisioned(storage_model(key="localMinIO", path="/iris/v1"), STORAGE_CONFIG)
    assert init(pod)["args"] == ["s3://models/iris/v1", "/mnt/models"]
    assert env_of(pod) == {"STORAGE_CONFIG": ref("storage-config", "localMinIO")}


def test_a_storage_key_beside_a_storage_uri_only_adds_the_storage_config():
    document = isvc(model("s3://models/iris"))
    document["spec"]["predictor"]["model"]["storage"] = {"key": "localMinIO"}
    pod = provisioned(document, STORAGE_CONFIG)
    assert init(pod)["args"] == ["s3://models/iris", "/mnt/models"]
    assert env_of(pod) == {"STORAGE_CONFIG": ref("storage-config", "localMinIO")}
    stored = secret_data(STORAGE_CONFIG)["localMinIO"]
    settings = s3.S3Settings.from_env(s3.with_storage_config({"STORAGE_CONFIG": stored}))
    assert settings.endpoint_url == "http://minio:9000"  # what `ksrv storage download` reads


def test_a_storage_spec_without_a_key_uses_the_default_entry_and_passes_parameters():
    pod = provisioned(storage_model(path="m", parameters={"bucket": "other", "type": "s3"}),
                      STORAGE_CONFIG)  # fmt: skip
    assert init(pod)["args"] == ["s3://other/m", "/mnt/models"]
    assert env_of(pod) == {
        "STORAGE_OVERRIDE_CONFIG": '{"bucket":"other","type":"s3"}'
    }  # no `default_s3` entry: only the parameters


@pytest.mark.parametrize(
    ("storage", "cluster", "error", "match"),
    [
        ({"key": "missing", "path": "m"}, [STORAGE_CONFIG], ResourceNotFound,
         "storage key 'missing' is not in secret 'storage-config'"),
        ({"key": "x", "path": "m"}, [], ResourceNotFound, "storage secret 'storage-config'"),
        ({"key": "broken", "path": "m"}, [STORAGE_CONFIG], ResourceInvalid, "invalid json"),
        ({"key": "odd", "path": "m"}, [STORAGE_CONFIG], ResourceInvalid, r"\[ftp\] is not"),
        ({"key": "nobucket", "path": "m"}, [STORAGE_CONFIG], ResourceInvalid, "requires a bucket"),
        ({"path": "m"}, [], ResourceInvalid, "unable to determine storage type"),
    ],
)  # fmt: skip
def test_a_storage_spec_that_cannot_be_resolved_says_why(storage, cluster, error, match):
    with pytest.raises(error, match=match):
        provisioned(storage_model(**storage), *cluster)


def test_the_configured_ca_bundle_is_mounted_under_its_namespace_copy():
    initializer = dataclasses.replace(CONFIG.storage_initializer, ca_bundle_config_map_name="ca")
    config = dataclasses.replace(CONFIG, storage_initializer=initializer)
    pod = provisioned(isvc(model("s3://b/m")), config=config)
    assert env_of(pod) == {"CA_BUNDLE_CONFIGMAP_NAME": "global-ca-bundle",
                           "CA_BUNDLE_VOLUME_MOUNT_POINT": "/etc/ssl/custom-certs"}  # fmt: skip
    assert {"name": "cabundle-cert", "configMap": {"name": "global-ca-bundle"}} in pod["volumes"]
    assert init(pod)["volumeMounts"][-1] == {
        "name": "cabundle-cert", "mountPath": "/etc/ssl/custom-certs", "readOnly": True
    }  # fmt: skip
    s3_env = s3.S3Settings.from_env(env_of(pod))
    assert s3_env.verify == "/etc/ssl/custom-certs/cabundle.crt"


def test_an_s3_secrets_own_ca_bundle_config_map_and_path_win():
    creds = secret("s3", {"serving.kserve.io/s3-cabundle-configmap": "bucket-ca",
                          "serving.kserve.io/s3-cabundle": "/certs/ca.crt"},
                   AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b")  # fmt: skip
    pod = provisioned(with_account("s3://b/m"), account(secrets=("s3",)), creds)
    env = env_of(pod)
    assert (env["CA_BUNDLE_CONFIGMAP_NAME"], env["CA_BUNDLE_VOLUME_MOUNT_POINT"]) == (
        "bucket-ca", "/certs"
    )  # fmt: skip
    assert env["AWS_CA_BUNDLE"] == "/certs/ca.crt"


@pytest.mark.parametrize(
    ("annotations", "data", "s3_config", "expected"),
    [
        ({}, {}, {}, []),
        ({"serving.kserve.io/s3-endpoint": "https://s3.local"}, {"S3_USE_HTTPS": "0"}, {},
         [("S3_USE_HTTPS", "1"), ("S3_ENDPOINT", "s3.local"),
          ("AWS_ENDPOINT_URL", "https://s3.local")]),
        ({}, {"S3_ENDPOINT": "h:1"}, {"s3UseHttps": "0"},
         [("S3_USE_HTTPS", "0"), ("S3_ENDPOINT", "h:1"), ("AWS_ENDPOINT_URL", "http://h:1")]),
        ({"serving.kserve.io/s3-useanoncredential": "true"}, {}, {"s3Region": "r"},
         [("awsAnonymousCredential", "true"), ("AWS_DEFAULT_REGION", "r")]),
        ({"serving.kserve.io/s3-region": ""}, {}, {"s3Region": "r"}, []),  # annotation wins
    ],
)  # fmt: skip
def test_s3_settings_come_from_annotation_then_secret_then_configmap(
    annotations, data, s3_config, expected
):
    env = s3_settings_env(annotations, data, s3_config)
    assert [(var["name"], var["value"]) for var in env] == expected


def test_secret_data_is_decoded_and_bad_base64_is_named():
    assert secret_data({"data": {"a": "eA=="}, "stringData": {"b": "y"}}) == {"a": "x", "b": "y"}
    with pytest.raises(ResourceInvalid, match=r"secret 's': data\.a is not base64"):
        secret_data({"metadata": {"name": "s"}, "data": {"a": "%%%"}})


def test_the_configmap_can_rename_the_storage_secret_annotation():
    data = {"credentials": '{"storageSecretNameAnnotation": "example.com/secret"}'}
    assert k8s_config.from_configmap(data).credentials.storage_secret_name_annotation == (
        "example.com/secret"
    )
