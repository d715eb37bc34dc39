"""Package discovery for the one namespace ``magicdec_model``.

The source folders sit at the top level (``perfmodel/``, ``validate/``, ...) and are installed as
``magicdec_model.<folder>``. Every sub-package below them is found here, not listed by hand, so a
new sub-package (``validate/attention/``, ``perfmodel/report/``) always ships in the wheel.
Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""

from setuptools import find_packages, setup

#: top-level source folders, each installed as ``magicdec_model.<folder>``
ROOTS = ("perfmodel", "validate", "hardware_profiles", "cli")

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ROOTS:
    package_dir[f"magicdec_model.{root}"] = root
    packages.append(f"magicdec_model.{root}")
    packages += [f"magicdec_model.{root}.{sub}" for sub in find_packages(root)]

setup(packages=packages, package_dir=package_dir)
