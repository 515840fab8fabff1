"""Package layout: the card's top-level folders install as subpackages of `edgebench`.

engines/, agent/ and host/ sit at the repository root (the product's design card fixes that), but nothing
generic may land at the top of site-packages, so each is mapped to `edgebench.<folder>`. Metadata lives in
pyproject.toml; only the package map, which pyproject cannot compute, is here.
"""

from setuptools import find_packages, setup

CARD_FOLDERS = ("engines", "agent", "host")

packages = ["edgebench", *(f"edgebench.{sub}" for sub in find_packages("edgebench"))]
package_dir = {"edgebench": "edgebench"}
for folder in CARD_FOLDERS:
    packages.append(f"edgebench.{folder}")
    packages += [f"edgebench.{folder}.{sub}" for sub in find_packages(folder)]
    package_dir[f"edgebench.{folder}"] = folder

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"": ["*.csv", "*.json", "*.toml", "*.txt", "data/*"]},
    include_package_data=True,
)
