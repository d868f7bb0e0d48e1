# SPDX-License-Identifier: Apache-2.0
"""Markers of the integration suite (the shared fixtures are in tests/conftest.py)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "package: builds the Debian package, installs it into the system and signs in through the "
        "system apache2 (root; deselect with -m 'not package')")
