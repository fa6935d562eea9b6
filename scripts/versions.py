"""Prints the installed versions of the dependencies that move fastest (one line, for test logs)."""

from importlib.metadata import PackageNotFoundError, version

PACKAGES = (
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "huggingface_hub",
    "gymnasium",
    "stable_baselines3",
    "safetensors",
    "tokenizers",
    "numpy",
    "minigrid",
    "metaworld",
    "ale_py",
    "mujoco",
)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


if __name__ == "__main__":
    print(" ".join(f"{name}=={_version(name)}" for name in PACKAGES))
