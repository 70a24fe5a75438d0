"""Run dbt on the project with shoprank's settings and record whether the build completed.

dbt writes the Parquet marts one by one, so a failed build can leave some files behind.
A stamp file (``marts/_build.json``) is removed before every build and written only after a
successful one; Feast steps refuse to run on marts without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from shoprank.settings import Settings

BUILD_STAMP = "_build.json"


class DbtError(RuntimeError):
    """dbt exited with an error."""


class MartsIncompleteError(RuntimeError):
    """The marts are missing or the last dbt build did not finish."""


def dbt_executable() -> str:
    """The dbt entry point installed next to this Python."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def check_raw_inputs(settings: Settings) -> None:
    """Fail early, naming the file and column, when a raw source is missing or mistyped."""
    from shoprank.data.schema import validate_raw_dir

    validate_raw_dir(settings.raw_dir)


def run_dbt(settings: Settings, *args: str, quiet: bool = False) -> None:
    """Run ``dbt <args>`` in the project with the settings' paths in its environment."""
    settings.marts_dir.mkdir(parents=True, exist_ok=True)
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target",
        settings.dbt_target,
    ]
    result = subprocess.run(
        command,
        env=settings.tool_env(),
        cwd=settings.dbt_project_dir,
        capture_output=quiet,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout or "").strip().splitlines()[-15:] if quiet else []
        raise DbtError("\n".join([f"`dbt {' '.join(args)}` failed", *tail]))


def build(settings: Settings, quiet: bool = False) -> None:
    """``dbt build`` (seeds, models, tests, unit tests), stamping the marts on success."""
    check_raw_inputs(settings)
    stamp = settings.marts_dir / BUILD_STAMP
    stamp.unlink(missing_ok=True)
    run_dbt(settings, "build", quiet=quiet)
    stamp.write_text(
        json.dumps({"built_at": datetime.now(UTC).isoformat(), "target": settings.dbt_target})
    )


def require_complete_marts(settings: Settings) -> None:
    """Raise unless the last dbt build finished."""
    stamp = settings.marts_dir / BUILD_STAMP
    if not stamp.is_file():
        raise MartsIncompleteError(
            f"{stamp}: missing; the marts are absent or the last `shoprank dbt build` failed"
        )
