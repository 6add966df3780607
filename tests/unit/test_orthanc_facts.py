"""orthanc.py is the control node's one home for what it knows about Orthanc (#22): the probe tries every default
pair the host programs flag, versions read the same wherever `Orthanc --version` is parsed."""

from __future__ import annotations

from orthanc_harden import orthanc, settings
from orthanc_harden.audit import probe
from orthanc_harden.remote import orthanc_config


def test_the_network_probe_tries_every_default_pair_the_host_programs_flag_the_common_ones_first():
    assert set(orthanc.DEFAULT_CREDENTIALS) == orthanc_config.DEFAULT_CREDENTIALS
    assert len(orthanc.DEFAULT_CREDENTIALS) == len(orthanc_config.DEFAULT_CREDENTIALS)
    assert orthanc.DEFAULT_CREDENTIALS[:2] == (("orthanc", "orthanc"), ("demo", "demo"))
    assert probe.DEFAULT_CREDENTIALS is orthanc.DEFAULT_CREDENTIALS


def test_orthanc_version_output_is_read_as_the_last_word_of_its_first_line():
    assert orthanc.reported_version("/usr/sbin/Orthanc 1.10.1\nCopyright (C) ...\n") == "1.10.1"
    assert orthanc.reported_version("  Orthanc 1.5.7  \n") == "1.5.7"
    assert orthanc.reported_version("") is None and orthanc.reported_version("\n \n") is None


def test_the_floor_is_the_fixing_version_and_the_settings_default():
    assert orthanc.version_tuple(orthanc.FLOOR) == (1, 5, 8) == orthanc.version_tuple(orthanc.FIXED_IN)
    assert settings.SETTINGS["orthanc_harden_min_version"].default == orthanc.FLOOR
    assert orthanc.version_tuple("2:1.12.3-1") == (1, 12, 3) and orthanc.version_tuple("dev") is None
