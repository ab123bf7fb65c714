import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "(.+)"', Path("tfkd/__init__.py").read_text()).group(1)

setup(
    name="tfkd",
    version=version,
    description="Knowledge distillation, pruning and quantization for Keras, down to INT8 .tflite",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfkd", "tfkd.*"]),
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "tf-keras>=2.16,<2.22",
        "tensorflow-model-optimization>=0.8,<0.9",
        "scikit-learn>=1.3",
        "numpy>=1.26",
    ],
    extras_require={
        "export": [
            "tf2onnx>=1.16",
            "onnxruntime>=1.17",
            "ai-edge-litert>=1.2",
            "ai-edge-quantizer>=0.1",
        ],
        "plot": ["matplotlib>=3.7"],
        "dev": ["pytest>=8", "pytest-xdist>=3", "ruff>=0.5"],
    },
    entry_points={"console_scripts": ["tfkd=tfkd.cli:main"]},
)
