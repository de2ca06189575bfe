"""ltune: an experiment runner for L-Tuning (label tuning for prompt and prefix tuning).

See README.md for the commands and docs/architecture.md for the layout; the methods follow the
paper (arXiv 2402.01643).
"""

__version__ = "0.2.0"

#: The stack ``ltune --version`` reports (distribution names).
STACK = ("torch", "transformers", "peft", "accelerate", "datasets", "hydra-core", "omegaconf", "safetensors",
         "scikit-learn", "scipy", "wandb", "gguf", "captum")


def versions() -> dict[str, str]:
    """ltune's version and the installed versions of the stack it runs on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"ltune": __version__, "python": platform.python_version()}
    for name in STACK:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
