"""HTTPS in the core against nginx serving TLS with certificates made by the test."""

from __future__ import annotations

from typing import Any

import pytest

import hammer
from accounting import check_invariant
from hammer.config import ConfigError


def test_verified_https_with_session_resumption(nginx: Any, test_pki: Any) -> None:
    server = nginx(tls=test_pki)
    report = hammer.run(server.tls_url, cacert=test_pki.ca, connections=4, requests=200,
                        max_requests_per_conn=20)
    check_invariant(report)
    assert report.counts.ok == 200
    assert report.errors == {}
    assert server.requests_served(wait_for=200) == 200
    tls = report.to_dict()["tls"]
    assert tls["verified"] is True
    # 200 requests, 20 per connection (the last few cut short by the end of the run)
    assert 10 <= tls["handshakes"] <= 10 + 4
    assert tls["resumed"] >= tls["handshakes"] - 4  # later connections resume the session
    # nginx agrees, connection by connection
    entries = server.access_log_entries()
    connections = {e.connection: e.tls_reused for e in entries}
    assert len(connections) == tls["handshakes"]
    assert sum(connections.values()) == tls["resumed"]
    assert tls["handshake_ms"]["p50"] is not None
    assert report.to_dict()["connect_ms"]["p50"] is not None


def test_open_loop_https(nginx: Any, test_pki: Any) -> None:
    server = nginx(tls=test_pki)
    report = hammer.run(server.tls_url, cacert=test_pki.ca, rate=500, duration="1s",
                        connections=16)
    check_invariant(report)
    assert report.counts.ok == 500
    assert server.requests_served(wait_for=500) == 500


def test_untrusted_certificate_is_a_tls_error(nginx: Any, test_pki: Any) -> None:
    server = nginx(tls=test_pki)
    # the system trust store does not know the test CA
    report = hammer.run(server.tls_url, connections=2, requests=10)
    check_invariant(report)
    assert report.errors == {"tls": 10}
    assert report.counts.sent == 0
    assert server.requests_served() == 0


def test_insecure_skips_verification_and_says_so(nginx: Any, test_pki: Any) -> None:
    server = nginx(tls=test_pki)
    report = hammer.run(server.tls_url, insecure=True, connections=2, requests=10)
    check_invariant(report)
    assert report.counts.ok == 10
    assert report.to_dict()["tls"]["verified"] is False
    assert any("NOT verified" in note for note in report.notes)


def test_wrong_host_name_fails_verification(nginx: Any, test_pki: Any) -> None:
    server = nginx(tls=test_pki)
    # the certificate is for localhost and 127.0.0.1, not for this name
    report = hammer.run(server.tls_url, cacert=test_pki.ca, sni="www.example.invalid",
                        connections=1, requests=5)
    check_invariant(report)
    assert report.errors == {"tls": 5}
    ok = hammer.run(f"https://127.0.0.1:{server.tls_port}/", cacert=test_pki.ca,
                    connections=1, requests=5)
    assert ok.counts.ok == 5  # an IP literal is verified against the IP SAN


def test_client_certificate(nginx: Any, test_pki: Any) -> None:
    server = nginx(tls=test_pki, client_auth=True)
    without = hammer.run(server.tls_url, cacert=test_pki.ca, connections=1, requests=3)
    check_invariant(without)
    assert without.counts.ok == 0
    assert without.counts.http_error + without.counts.error == 3  # nginx: 400 or TLS alert
    with_cert = hammer.run(server.tls_url, cacert=test_pki.ca, cert=test_pki.client_cert,
                           key=test_pki.client_key, connections=2, requests=20)
    check_invariant(with_cert)
    assert with_cert.counts.ok == 20


def test_bad_tls_files_are_usage_errors(test_pki: Any, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        hammer.make_config("https://localhost:1/", cacert=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="need an https"):
        hammer.make_config("http://localhost:1/", insecure=True)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load CA file"):
        hammer.run("https://localhost:1/", cacert=str(bad), requests=1)
