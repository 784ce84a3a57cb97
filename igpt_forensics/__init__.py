"""igpt-forensics: synthetic-image provenance and detection around an iGPT-style pixel-GPT.

Core modules (data, palette, files, provenance, metrics) never import the CLI, the generators
or the detectors; see tests/test_architecture.py.
"""

__version__ = "0.1.0"
