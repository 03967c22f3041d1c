"""The shipped alert rules (monitoring/alerts.yml) pass promtool's checks and their unit tests."""

import shutil
import subprocess
from pathlib import Path

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def promtool(*args, cwd=MONITORING):
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: Debian's prometheus package (scripts/install-deps installs it)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_each_alert_passes_its_promtool_test():
    tested = {line.split(":", 1)[1].strip() for line in (MONITORING / "alerts_test.yml").read_text().splitlines()
              if line.strip().startswith("alertname:")}
    assert tested == {"VsphereVolumeBackupStale", "VsphereVolumeBackupFailing", "VsphereVolumeVerificationFailed",
                      "VsphereVolumeStoreUnavailable"}
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_catches_a_wrong_expectation(tmp_path):
    """The harness can fail: the same test with the failing alert expected too early."""
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    wrong = (MONITORING / "alerts_test.yml").read_text().replace("- eval_time: 17m", "- eval_time: 12m")
    (tmp_path / "alerts_test.yml").write_text(wrong)
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "VsphereVolumeBackupFailing" in result.stdout + result.stderr
