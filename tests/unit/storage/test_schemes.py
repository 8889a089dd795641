"""Which provider serves a URI, and how each parses its URI and settings: pure decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksrv.errors import StorageError
from ksrv.storage import azure, base, hf, http, pvc, s3, transfer
from ksrv.storage.base import RemoteObject


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("/mnt/models", ""),
        ("relative/dir", ""),
        ("file:///mnt/models", "file"),
        ("pvc://claim/path", "pvc"),
        ("https://host/model.tar.gz", "https"),
        ("http://host/model.joblib", "http"),
        ("s3://bucket/prefix", "s3"),
        ("gs://bucket/prefix", "gs"),
        ("hf://org/repo:main", "hf"),
        ("az://account/container/prefix", "az"),
        ("https://acct.blob.core.windows.net/c/p", "az"),
        ("https://acct.z12.blob.storage.azure.net/c/p", "az"),
    ],
)
def test_each_uri_goes_to_its_scheme(uri, scheme):
    assert base.scheme_of(uri) == scheme


@pytest.mark.parametrize("uri", ["oci://reg/img:1", "hdfs://nn/path", "webhdfs://nn/p"])
def test_schemes_kserve_knows_are_named_as_not_supported_yet(uri):
    with pytest.raises(StorageError, match=r"storage URIs are not supported yet"):
        base.scheme_of(uri)


def test_an_unknown_scheme_lists_the_known_ones():
    with pytest.raises(
        StorageError, match=r"ftp://x/y: unknown storage scheme 'ftp'; known: az://"
    ):
        base.scheme_of("ftp://x/y")


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "", "a\\..\\b"])
def test_object_paths_outside_the_destination_are_refused(path):
    with pytest.raises(StorageError, match="refusing unsafe path"):
        base.safe_relative("s3://b/p", path)


def test_cache_dir_comes_from_options_then_env_then_xdg():
    assert base.DownloadOptions(cache_dir=Path("/c")).resolved_cache_dir() == Path("/c")
    options = base.DownloadOptions(env={"KSRV_CACHE_DIR": "/k", "XDG_CACHE_HOME": "/x"})
    assert options.resolved_cache_dir() == Path("/k")
    options = base.DownloadOptions(env={"XDG_CACHE_HOME": "/x"})
    assert options.resolved_cache_dir() == Path("/x/ksrv/storage")


@pytest.mark.parametrize(
    ("env", "annotations", "expected"),
    [
        ({}, {}, s3.S3Settings()),
        (
            {"AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1"},
            {},
            s3.S3Settings(endpoint_url="http://minio:9000", region="eu-west-1",
                          addressing_style="path"),
        ),
        (
            {"S3_ENDPOINT": "minio:9000", "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0"},
            {},
            s3.S3Settings(endpoint_url="http://minio:9000", verify=False, addressing_style="path"),
        ),
        (
            {"AWS_CA_BUNDLE": "/ca.crt", "S3_USER_VIRTUAL_BUCKET": "true",
             "awsAnonymousCredential": "true", "S3_MAX_ATTEMPTS": "5"},
            {},
            s3.S3Settings(verify="/ca.crt", addressing_style="virtual", is_anonymous=True,
                          max_attempts=5),
        ),
        (
            {"CA_BUNDLE_CONFIGMAP_NAME": "global-ca-bundle",
             "CA_BUNDLE_VOLUME_MOUNT_POINT": "/certs"},
            {},
            s3.S3Settings(verify="/certs/cabundle.crt"),
        ),
        (
            {},
            {"serving.kserve.io/s3-endpoint": "s3.local:9000",
             "serving.kserve.io/s3-usehttps": "1", "serving.kserve.io/s3-region": "r1",
             "serving.kserve.io/s3-useanoncredential": "true"},
            s3.S3Settings(endpoint_url="https://s3.local:9000", region="r1", is_anonymous=True,
                          addressing_style="path"),
        ),
    ],
)  # fmt: skip
def test_s3_settings_follow_kserve_variables_and_annotations(env, annotations, expected):
    assert s3.S3Settings.from_env(env, annotations) == expected


@pytest.mark.parametrize(
    ("prefix", "key", "path"),
    [
        ("iris", "iris", "iris"),
        ("models/iris.joblib", "models/iris.joblib", "iris.joblib"),
        ("iris", "iris/model.joblib", "model.joblib"),
        ("iris/", "iris/sub/a.txt", "sub/a.txt"),
        ("iris", "iris-v2/model.joblib", None),
        ("iris", "iris/", None),
        ("", "a/b", "a/b"),
    ],
)
def test_object_keys_map_under_the_prefix_as_a_folder(prefix, key, path):
    assert s3.relative_path(prefix, key) == path


@pytest.mark.parametrize(
    ("url", "content_type", "name"),
    [
        ("http://h/a/model.joblib", "application/octet-stream", "model.joblib"),
        ("http://h/a/model.tar.gz", "application/gzip", "model.tar.gz"),
        ("http://h/download", "application/zip", "download.zip"),
        ("http://h/m%20v1.zip", "", "m v1.zip"),
        ("http://h/", "", "model"),
    ],
)
def test_http_file_names_come_from_the_url_and_content_type(url, content_type, name):
    assert http.file_name(url, content_type) == name


def test_http_headers_per_host_come_from_json_env():
    env = {"example.com-headers": '{"Authorization": "Bearer t"}'}
    assert http.host_headers("https://example.com/m", env) == {"Authorization": "Bearer t"}
    assert http.host_headers("https://other.com/m", env) == {}


def test_azure_connection_string_for_the_account_sets_the_endpoint():
    env = {"AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct;AccountKey=k==;"
           "BlobEndpoint=http://127.0.0.1:10000/acct;"}  # fmt: skip
    location = azure.locate("https://acct.blob.core.windows.net/c/p/q", env)
    assert location == azure.BlobLocation("acct", "http://127.0.0.1:10000/acct", "c", "p/q")
    assert azure.credential(location, env) == {"account_name": "acct", "account_key": "k=="}
    other = azure.locate("az://else/c/p", env)
    assert other.account_url == "https://else.blob.core.windows.net"
    assert azure.credential(other, {}) is None


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [("hf://org/repo", ("org/repo", None)), ("hf://org/repo:v1.0", ("org/repo", "v1.0"))],
)
def test_hf_uris_name_a_repo_and_an_optional_revision(uri, parsed):
    assert hf.parse_uri(uri) == parsed


def test_hf_uri_without_an_org_is_refused():
    with pytest.raises(StorageError, match="expected hf://"):
        hf.parse_uri("hf://repo")


def test_pvc_roots_parse_claim_equals_directory():
    env = {"KSRV_PVC_ROOTS": "a=/data/a, b=/data/b"}
    assert pvc.claim_roots(env) == {"a": Path("/data/a"), "b": Path("/data/b")}
    with pytest.raises(StorageError, match="expected claim=/dir"):
        pvc.claim_roots({"KSRV_PVC_ROOTS": "oops"})


@pytest.mark.parametrize(
    ("size", "is_ranged", "offsets"),
    [(None, True, [0]), (10, True, [0]), (25, True, [0, 10, 20]), (25, False, [0])],
)
def test_objects_split_into_parts_only_when_big_and_ranged(size, is_ranged, offsets):
    obj = RemoteObject("f", "k", size, "v", is_ranged=is_ranged)
    split = transfer.parts(obj, Path("f"), part_bytes=10)
    assert [part.offset for part in split] == offsets
    assert sum(part.length or size or 0 for part in split) == (size or 0)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (None, []),
        ("", []),
        ('["*.bin", "a/*"]', ["*.bin", "a/*"]),
        ("*.bin, *.json", ["*.bin", "*.json"]),
    ],
)
def test_storage_patterns_are_a_json_list_or_csv(raw, parsed):
    assert base.patterns(raw) == parsed


def test_patterns_keep_allowed_and_drop_ignored_objects():
    listing = base.Listing(
        tuple(RemoteObject(p, p, 1, "v") for p in ["a.bin", "b.json", "sub/c.bin", "d.txt"])
    )
    env = {"STORAGE_ALLOW_PATTERNS": "*.bin,*.json", "STORAGE_IGNORE_PATTERNS": "sub/*"}
    kept = base.filtered("s3://b/p", listing, env)
    assert [obj.path for obj in kept.objects] == ["a.bin", "b.json"]


def test_storage_config_secret_becomes_kserve_s3_variables():
    env = {
        "AWS_ACCESS_KEY_ID": "env",
        "STORAGE_CONFIG": '{"type": "s3", "access_key_id": "cfg", "endpoint_url": "http://e",'
        ' "verify_ssl": "0"}',
        "STORAGE_OVERRIDE_CONFIG": '{"type": "s3", "region": "r2"}',
    }
    merged = s3.with_storage_config(env)
    assert merged["AWS_ACCESS_KEY_ID"] == "cfg"
    assert (merged["AWS_ENDPOINT_URL"], merged["S3_VERIFY_SSL"]) == ("http://e", "0")
    assert merged["AWS_DEFAULT_REGION"] == "r2"
    assert s3.with_storage_config({"STORAGE_CONFIG": '{"type": "gs"}'}) == {
        "STORAGE_CONFIG": '{"type": "gs"}'
    }


@pytest.mark.parametrize(
    ("total_mib", "concurrency", "part_mib"),
    [(0, 10, 8), (100, 10, 8), (1024, 10, 26), (10240, 10, 256), (1024, 1, 256)],
)
def test_big_downloads_use_bigger_parts_so_each_connection_gets_about_four(
    total_mib, concurrency, part_mib
):
    mib = 1024 * 1024
    assert transfer.part_size(total_mib * mib, 8 * mib, concurrency) == part_mib * mib
