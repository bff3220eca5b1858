import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings

SAMPLE = Path(__file__).resolve().parents[2] / "local.settings.sample.json"


def test_every_setting_is_in_the_local_settings_sample_and_nothing_else() -> None:
    values = json.loads(SAMPLE.read_text())["Values"]
    sample_names = {name for name in values if name.startswith("LIUTONG_")}
    settings_names = {f"LIUTONG_{name.upper()}" for name in Settings.model_fields}
    assert sample_names == settings_names


def test_sample_values_parse_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = json.loads(SAMPLE.read_text())["Values"]
    for name, value in values.items():
        if name.startswith("LIUTONG_") and value != "":
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.audiences == ["api://liutong-local", "6c1f0a0e-5d7b-4f4e-9d55-4c8c0f1a7e21"]


def test_an_unresolved_key_vault_reference_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIUTONG_WEBHOOK_SECRET", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/s/)")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
