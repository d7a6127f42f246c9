"""Maps the top-level source folders into the ``raftka`` import namespace.

The design card keeps common/, controller/, broker/, client/, ops/ and proto/ at the top of
the tree; users import them as raftka.common, raftka.controller, ... . Subpackages are found
automatically, so adding a folder with an ``__init__.py`` needs no edit here.
"""

from setuptools import find_packages, setup

ROOTS = {
    "raftka.v1": "proto/raftka/v1",
    "raftka.common": "common",
    "raftka.controller": "controller",
    "raftka.broker": "broker",
    "raftka.client": "client",
    "raftka.ops": "ops",
}

packages: list[str] = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=ROOTS)
