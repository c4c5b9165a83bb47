"""Packages of xrbench; everything else is in pyproject.toml.

The task YAMLs live in the top-level ``tasks/`` folder (one YAML file per task, as the product's
layout has it) and travel in the wheel as the data package ``xrbench.task_definitions``, so a
non-editable install finds them exactly as a checkout does (xrbench/tasks/catalog.py).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["xrbench*"]) + ["xrbench.task_definitions"],
    package_dir={"xrbench.task_definitions": "tasks"},
    package_data={"xrbench.task_definitions": ["*.yaml", "suites/*.yaml"]},
)
