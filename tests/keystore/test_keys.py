import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keystore.keys import (
    KEY_PREFIX,
    derive_key,
    derived_key_id,
    display_prefix,
    generate_key,
    hash_key,
    is_well_formed,
    random_key_id,
)

KEY_FORMAT = re.compile(r"lt-[A-Za-z0-9_-]{43}")
ROW_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
masters = st.binary(min_size=16, max_size=64)
# ARM resource IDs are ASCII.
app_ids = st.text(alphabet=string.ascii_letters + string.digits + "/-._ ", min_size=1, max_size=200)
generations = st.integers(min_value=0, max_value=10**6)


def test_generated_keys_have_the_format_and_are_unique() -> None:
    keys = {generate_key() for _ in range(2000)}
    assert len(keys) == 2000
    for key in keys:
        assert KEY_FORMAT.fullmatch(key)
        assert key.startswith(KEY_PREFIX)
        assert is_well_formed(key)


def test_generated_keys_use_the_whole_alphabet() -> None:
    # A crude entropy check: 2000 keys * 43 chars must hit all 64 URL-safe characters.
    chars = set("".join(generate_key()[3:] for _ in range(2000)))
    assert len(chars) == 64


@given(masters, app_ids, generations)
def test_derivation_is_deterministic_and_well_formed(master: bytes, app: str, gen: int) -> None:
    key = derive_key(master, application_id=app, generation=gen)
    assert key == derive_key(master, application_id=app, generation=gen)
    assert is_well_formed(key)


@given(masters, app_ids, generations)
def test_derivation_ignores_application_id_case(master: bytes, app: str, gen: int) -> None:
    assert derive_key(master, application_id=app.upper(), generation=gen) == derive_key(
        master, application_id=app.lower(), generation=gen
    )


@given(masters, masters, app_ids, app_ids, generations, generations)
def test_derivation_differs_across_inputs(
    m1: bytes, m2: bytes, a1: str, a2: str, g1: int, g2: int
) -> None:
    first = derive_key(m1, application_id=a1, generation=g1)
    second = derive_key(m2, application_id=a2, generation=g2)
    same_inputs = m1 == m2 and a1.lower() == a2.lower() and g1 == g2
    assert (first == second) == same_inputs


def test_derivation_separates_generation_app_and_master() -> None:
    master = b"m" * 32
    app = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Solutions/applications/app"
    base = derive_key(master, application_id=app, generation=1)
    assert base != derive_key(master, application_id=app, generation=2)
    assert base != derive_key(master, application_id=app + "2", generation=1)
    assert base != derive_key(b"n" * 32, application_id=app, generation=1)
    # "app1" + gen 1 must not collide with "app" + gen 11.
    assert derive_key(master, application_id="app1", generation=1) != derive_key(
        master, application_id="app", generation=11
    )


def test_derivation_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        derive_key(b"", application_id="a", generation=0)
    with pytest.raises(ValueError):
        derive_key(b"m", application_id="", generation=0)
    with pytest.raises(ValueError):
        derive_key(b"m", application_id="a", generation=-1)


@given(st.text(max_size=80))
def test_well_formedness_matches_the_exact_format(value: str) -> None:
    assert is_well_formed(value) == (KEY_FORMAT.fullmatch(value) is not None)


def test_well_formedness_rejects_near_misses() -> None:
    key = generate_key()
    assert not is_well_formed(key + "\n")
    assert not is_well_formed(key[:-1])
    assert not is_well_formed(key + "A")
    assert not is_well_formed("LT-" + key[3:])
    assert not is_well_formed(key[:10] + "+" + key[11:])
    assert not is_well_formed(" " + key)


def test_hash_and_prefix() -> None:
    key = generate_key()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(key))
    assert hash_key(key) != hash_key(generate_key())
    assert display_prefix(key) == key[:9]
    assert display_prefix(key).startswith("lt-")
    with pytest.raises(ValueError) as raised:
        display_prefix("not-a-key")
    assert "not-a-key" not in str(raised.value)


def test_key_ids_are_row_key_safe() -> None:
    ids = {random_key_id() for _ in range(1000)}
    assert len(ids) == 1000
    derived = derived_key_id(
        deployment_id="0123456789abcdef" * 4, generation=3, master_version="s0123456789ab"
    )
    assert derived == "dep-0123456789abcdef-g3-s0123456789ab"
    for key_id in [*ids, derived]:
        assert not ROW_KEY_UNSAFE.search(key_id)


@pytest.mark.parametrize(
    ("deployment_id", "generation", "master_version"),
    [
        ("ab" * 31, 1, "v"),
        ("AB" * 32, 1, "v"),
        ("ab" * 32, -1, "v"),
        ("ab" * 32, 1, "a/b"),
        ("ab" * 32, 1, ""),
    ],
)
def test_derived_key_id_refuses_bad_parts(deployment_id: str, generation: int, master_version: str) -> None:
    with pytest.raises(ValueError):
        derived_key_id(deployment_id=deployment_id, generation=generation, master_version=master_version)
