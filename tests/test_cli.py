"""The `lockbay` command's refusals: a clear line on stderr and exit code 2, no traceback."""

from __future__ import annotations

import pytest

from bot.cli import main


def test_run_without_a_token_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "TELEGRAM_BOT_TOKEN is not set" in err
    assert "Traceback" not in err


def test_run_with_bad_admin_ids_says_so(monkeypatch, capsys):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("LOCKBAY_ADMIN_IDS", "42,bob")
    assert main(["run"]) == 2
    assert "LOCKBAY_ADMIN_IDS" in capsys.readouterr().err


def test_unknown_command_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fly"])
    assert exit_.value.code == 2
