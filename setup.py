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
    license="Apache-2.0",
    license_files=["LICENSE"],
    # TensorFlow 2.21 ships wheels for Python 3.10 to 3.13.
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["tfkd", "tfkd.*"]),
    package_data={"tfkd": ["py.typed"]},
    # Everything README's path needs: distil, prune, QAT, int8 .tflite, run it with LiteRT, report
    # with plot (and image folders as data: Pillow, which matplotlib brings).
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "tf-keras>=2.16,<2.22",
        "tensorflow-model-optimization>=0.8,<0.9",
        "ai-edge-litert>=1.2",
        "matplotlib>=3.7",
        "pillow>=9",
        "scikit-learn>=1.3",
        "numpy>=1.26",
    ],
    extras_require={
        "onnx": ["tf2onnx>=1.16", "onnx>=1.16", "onnxruntime>=1.17"],
        "int4": ["ai-edge-quantizer>=0.1"],
        "all": ["tf2onnx>=1.16", "onnx>=1.16", "onnxruntime>=1.17", "ai-edge-quantizer>=0.1"],
        "dev": ["pytest>=8", "pytest-xdist>=3", "ruff>=0.5", "mypy==2.4.1"],
    },
    entry_points={"console_scripts": ["tfkd=tfkd.cli:main"]},
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
)
