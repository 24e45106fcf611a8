from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_and_env_override(tmp_path):
    s = load_settings(None, environ={"HELPDESK_HOME": str(tmp_path), "HELPDESK_MODEL__DEVICE": "cpu",
                                     "HELPDESK_RETRIEVAL__K": "7"})
    assert s.home == tmp_path and s.model.device == "cpu" and s.retrieval.k == 7
    assert s.db_url == f"sqlite:///{tmp_path / 'helpdesk.db'}"
    assert s.model.name == "SmolLM2-135M-Instruct"


def test_yaml_file_then_environment_wins(tmp_path):
    path = tmp_path / "helpdesk.yaml"
    path.write_text("model:\n  max_new_tokens: 50\n  device: cpu\nserver:\n  port: 9000\n")
    s = load_settings(path, environ={"HELPDESK_SERVER__PORT": "9001"})
    assert s.model.max_new_tokens == 50 and s.server.port == 9001


@pytest.mark.parametrize(
    "yaml_text, environ, message",
    [
        ("modle:\n  device: cpu\n", {}, "modle: unknown key"),
        ("model:\n  max_new_tokens: -3\n", {}, "model.max_new_tokens"),
        ("retrieval:\n  k: lots\n", {}, "retrieval.k"),
        ("", {"HELPDESK_MODEL__DEVIC": "cpu"}, "model.devic: unknown key"),
        ("", {"HELPDESK_SERVER__PORT": "99999"}, "server.port"),
        ("- a list\n", {}, "must be a mapping"),
        ("model: [unclosed\n", {}, "not valid YAML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, yaml_text, environ, message):
    path = tmp_path / "helpdesk.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=environ)
    assert message in str(err.value)


def test_explicit_missing_settings_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(None, environ={"HELPDESK_CONFIG": str(tmp_path / "missing.yaml")})
