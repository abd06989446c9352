"""Config files as ``fink init`` writes them, and as older versions of it wrote them."""

from __future__ import annotations

import logging

import pytest

from fink_broker.config import ConfigError, dump_toml, load_settings


def test_a_written_config_loads_back_equal(tmp_path):
    settings = load_settings(None, env={}, overrides={"raw2science.max_files_per_trigger": 7})
    path = tmp_path / "fink.toml"
    path.write_text(dump_toml(settings))
    loaded = load_settings(path, env={})
    assert loaded.raw2science == settings.raw2science
    assert loaded.spark == settings.spark


def test_an_unknown_option_is_an_error(tmp_path):
    path = tmp_path / "fink.toml"
    path.write_text("[raw2science]\nmax_file_per_trigger = 3\n")
    with pytest.raises(ConfigError, match=r"unknown option raw2science\.max_file_per_trigger"):
        load_settings(path, env={})


def test_a_retired_option_loads_with_a_warning(tmp_path, caplog):
    """``fink init`` wrote every option: its files still load once one is retired."""
    path = tmp_path / "fink.toml"
    path.write_text("[raw2science]\nseparate_module_read_mb = 512\nmax_files_per_trigger = 3\n")
    with caplog.at_level(logging.WARNING, logger="fink_broker.config"):
        settings = load_settings(path, env={})
    assert settings.raw2science.max_files_per_trigger == 3
    assert any("separate_module_read_mb is no longer used" in r.message for r in caplog.records)
