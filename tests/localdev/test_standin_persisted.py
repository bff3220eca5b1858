"""The stand-in's signing key and TLS certificate kept in a folder: same `kid`, same CA file after a restart,
files only their owner may read, anything unusable replaced."""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from localdev.azurite import free_port
from localdev.keyvault_standin import self_signed_pem
from localdev.run import standin_state_dir
from localdev.standin import persisted, start_in_thread
from localdev.standin.persisted import SIGNING_KEY_FILE, TLS_CERT_FILE, TLS_KEY_FILE


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_signing_key_is_kept_privately_with_its_kid(tmp_path: Path) -> None:
    folder = tmp_path / "standin"
    first = persisted.signing_key(folder)
    again = persisted.signing_key(folder)
    assert (again.kid, again.certificate_der) == (first.kid, first.certificate_der)
    assert again.jwk(issuer=None) == first.jwk(issuer=None)
    assert mode(folder / SIGNING_KEY_FILE) == 0o600 and mode(folder) == 0o700
    assert [p.name for p in folder.iterdir()] == [SIGNING_KEY_FILE]  # no temporary file left behind


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.write_text("not a key"),
        lambda path: path.write_bytes(path.read_bytes()[:200]),
        lambda path: os.chmod(path, 0o644),  # others could have read it
        lambda path: path.write_bytes(b""),
    ],
)
def test_an_unusable_signing_key_file_is_replaced(tmp_path: Path, spoil: Callable[[Path], object]) -> None:
    first = persisted.signing_key(tmp_path)
    spoil(tmp_path / SIGNING_KEY_FILE)
    replaced = persisted.signing_key(tmp_path)
    assert replaced.kid != first.kid
    assert mode(tmp_path / SIGNING_KEY_FILE) == 0o600
    assert persisted.signing_key(tmp_path).kid == replaced.kid


def test_the_tls_certificate_is_kept_and_replaced_when_unusable(tmp_path: Path) -> None:
    cert, key = persisted.tls_files(tmp_path, host="127.0.0.1")
    original = cert.read_bytes()
    assert persisted.tls_files(tmp_path, host="127.0.0.1") == (cert, key)
    assert cert.read_bytes() == original
    assert mode(cert) == mode(key) == 0o600

    _, other_key = self_signed_pem()
    key.write_bytes(other_key)  # a pair that does not match (a crash between the two writes)
    persisted.tls_files(tmp_path, host="127.0.0.1")
    assert cert.read_bytes() != original
    ssl.create_default_context().load_cert_chain(cert, key)  # a matching pair again

    expiring, its_key = self_signed_pem(days=0)
    cert.write_bytes(expiring)
    key.write_bytes(its_key)
    persisted.tls_files(tmp_path, host="127.0.0.1")
    assert cert.read_bytes() != expiring

    kept = cert.read_bytes()
    persisted.tls_files(tmp_path, host="127.0.0.2")  # not named in the certificate
    assert cert.read_bytes() != kept


def test_a_restarted_standin_accepts_its_earlier_tokens_and_keeps_its_ca_file(tmp_path: Path) -> None:
    port, tls_port = free_port(), free_port()  # the same issuers before and after
    with start_in_thread(port=port, tls_port=tls_port, state_dir=tmp_path) as before:
        token = before.state.mint_token(tid=before.state.config.publisher_tenant_id, oid="o", aud="api://x")
        jwks_before = httpx.get(f"{before.base_url}/common/discovery/v2.0/keys").json()
        ca_path = before.ca_path
    assert ca_path == tmp_path / TLS_CERT_FILE and ca_path.exists()  # not removed on stop
    with start_in_thread(port=port, tls_port=tls_port, state_dir=tmp_path) as after:
        assert after.ca_path == ca_path
        assert httpx.get(f"{after.base_url}/common/discovery/v2.0/keys").json() == jwks_before
        assert after.state.verify_token(token, audiences=frozenset({"api://x"}))["oid"] == "o"
        assert after.https_url is not None
        with httpx.Client(verify=ssl.create_default_context(cafile=ca_path)) as http:
            assert http.get(f"{after.https_url}/common/discovery/v2.0/keys").status_code == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SIGNING_KEY_FILE, TLS_CERT_FILE, TLS_KEY_FILE])


def test_without_a_folder_every_start_has_fresh_keys() -> None:
    with start_in_thread() as one, start_in_thread() as two:
        assert one.state.keys.current.kid != two.state.keys.current.kid


def test_make_run_keeps_them_in_the_users_cache_folder(tmp_path: Path) -> None:
    assert standin_state_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "liutong-local" / "standin"
    assert standin_state_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "liutong-local" / "standin"
