"""Re-record the example's cassettes against the loopback emulator (tests/support/emulator.py).

The committed cassettes were made this way, not against the real API: the emulator
answers deterministically and simulates prompt caching, so the example runs offline
for everyone. With a real key, record your own app the same way without the emulator:

    ANTHROPIC_API_KEY=... pytest --token-budget --token-budget-record=all
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from emulator import Emulator  # noqa: E402


def main() -> int:
    with Emulator() as emu:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": emu.base_url,
            "ANTHROPIC_API_KEY": "emulator-only-key",
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--token-budget",
            "--token-budget-record=all",
            "-q",
        ]
        code = subprocess.call(command, cwd=ROOT, env=env)
        print(f"emulator served {len(emu.served)} requests")
        return code


if __name__ == "__main__":
    sys.exit(main())
