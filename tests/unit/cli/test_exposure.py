"""cli.exposure: which addresses count as loopback, and the refusal or warning for the rest."""

from __future__ import annotations

import click
import pytest

from ksrv.cli import exposure


@pytest.mark.parametrize(
    ("host", "is_loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("no-such-host.invalid", False),
    ],
)
def test_only_addresses_of_this_machine_alone_are_loopback(host, is_loopback):
    assert exposure.is_loopback(host) is is_loopback


def test_loopback_binds_need_no_flag_and_say_nothing():
    assert exposure.check({"gateway": "127.0.0.1", "management API": "::1"}, False) is None


def test_a_public_bind_is_refused_naming_what_and_why():
    with pytest.raises(click.ClickException) as caught:
        exposure.check({"gateway": "127.0.0.1", "management API": "0.0.0.0"}, False)
    message = caught.value.message
    assert "the management API on 0.0.0.0" in message and "gateway" not in message
    assert "no authentication" in message and "--insecure-no-auth" in message


def test_a_public_bind_with_insecure_no_auth_is_a_warning():
    warning = exposure.check({"gateway": "0.0.0.0"}, True)
    assert warning is not None
    assert warning.startswith("WARNING:") and "the gateway on 0.0.0.0" in warning


def test_auth_allows_a_public_bind_and_warns_only_without_tls():
    exposed = {"gateway": "0.0.0.0", "management API": "0.0.0.0"}
    warning = exposure.check(exposed, False, enable_auth=True, has_tls=False)
    assert warning is not None and "without TLS" in warning and "--tls-cert" in warning
    assert exposure.check(exposed, False, enable_auth=True, has_tls=True) is None


def test_a_refusal_names_auth_as_the_way_out():
    with pytest.raises(click.ClickException) as caught:
        exposure.check({"gateway": "0.0.0.0"}, False)
    assert "--auth" in caught.value.message


def test_tls_needs_both_files_and_a_matching_pair(tmp_path):
    from tests.tls_support import make_pki

    pki = make_pki(tmp_path)
    assert exposure.checked_tls(None, None) is None
    with pytest.raises(click.ClickException, match="go together"):
        exposure.checked_tls(pki.cert, None)
    with pytest.raises(click.ClickException, match="cannot use TLS certificate"):
        exposure.checked_tls(pki.cert, pki.ca)  # a certificate is no key
    assert exposure.checked_tls(pki.cert, pki.key) is not None
