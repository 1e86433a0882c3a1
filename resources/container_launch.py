"""How a processing job starts our container: which image, entrypoint and code input.

Two ways, chosen by configuration:

* a custom image built from ``container/Dockerfile`` (recommended): our code and
  its pinned dependencies are in the image;
* a prebuilt SageMaker framework image (scikit-learn or XGBoost), found offline
  with the ``sagemaker`` package's image URI lookup, with the ``container``
  package uploaded to S3 and mounted as a ``code`` input. It works only where the
  image's libraries can read our inputs and artifacts (pyarrow, xgboost version),
  so it is the quick start, not the production path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from container.contract import input_path
from container.framework_table import framework as table_row
from resources.processing_request import InputChannel
from resources.storage import ObjectStorage

ENTRYPOINT = ["python3", "-m", "container"]
CODE_INPUT = "code"  # our container package, for a prebuilt image (on its PYTHONPATH)
CODE_LOCAL_PATH = input_path(CODE_INPUT)


@dataclass(frozen=True)
class ContainerLaunch:
    image_uri: str
    entrypoint: list[str] = field(default_factory=lambda: list(ENTRYPOINT))
    extra_inputs: list[InputChannel] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)


def custom_image(image_uri: str) -> ContainerLaunch:
    return ContainerLaunch(image_uri=image_uri)


def framework_image(framework: str, region: str, storage: ObjectStorage) -> ContainerLaunch:
    """Prebuilt SageMaker image for ``framework`` plus our code as an input."""
    from sagemaker.core import image_uris  # heavy (~3 s): only when this path is used

    prebuilt = table_row(framework).prebuilt_image
    if prebuilt is None:
        raise ValueError(
            f"there is no prebuilt SageMaker image that runs {framework} models with this "
            "pipeline's container; build container/Dockerfile with FRAMEWORKS including "
            f"{framework} and set BATCH_IMAGE_URI to it")
    name, version = prebuilt
    image = image_uris.retrieve(framework=name, region=region, version=version)
    code_prefix = upload_container_code(storage)
    return ContainerLaunch(
        image_uri=image,
        extra_inputs=[InputChannel(CODE_INPUT, storage.uri(code_prefix), CODE_LOCAL_PATH)],
        environment={"PYTHONPATH": CODE_LOCAL_PATH},
    )


def container_sources() -> list[Path]:
    import container

    package = Path(container.__file__).parent
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def upload_container_code(storage: ObjectStorage) -> str:
    """Upload ``container/*.py`` under a prefix named by its content hash (idempotent)."""
    sources = container_sources()
    root = sources[0].parent
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    prefix = f"code/{digest.hexdigest()[:16]}/"
    marker = prefix + "container/__init__.py"
    if not storage.exists(marker):
        for path in sources:
            if path.name != "__init__.py" or path.parent != root:
                storage.upload_file(path, prefix + "container/" + path.relative_to(root).as_posix())
        storage.upload_file(root / "__init__.py", marker)  # last: marks the upload whole
    return prefix
