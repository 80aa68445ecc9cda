"""Usage errors exit 2 with one line, before Spark starts; every command has an example."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepspark.cli import common
from deepspark.cli.main import COMMANDS, build_parser, main


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse exits on its own errors and on --help
        return int(exc.code or 0)


def one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith(f"deepspark {command}: error:"), lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _no_spark_started() -> None:
    """None of these cases may start a JVM: it would cost seconds and print noise."""
    from pyspark.sql import SparkSession

    before = (SparkSession.getActiveSession(), common.spark_log_path)
    yield
    assert (SparkSession.getActiveSession(), common.spark_log_path) == before


def test_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert run_cli(["predict", str(missing)]) == 2
    line = one_error_line(capsys.readouterr().err, "predict")
    assert str(missing) in line


def test_unknown_model(capsys: pytest.CaptureFixture[str], photos_dir: Path) -> None:
    assert run_cli(["predict", str(photos_dir), "--model", "no_such_model"]) == 2
    line = one_error_line(capsys.readouterr().err, "predict")
    assert "no_such_model" in line
    assert "--model FILE" in line and "model=<path>" not in line  # the CLI's words


@pytest.mark.parametrize("conf", ["spark.executor.memory", "=4g", "bad key=1"])
def test_bad_conf(capsys: pytest.CaptureFixture[str], photos_dir: Path, conf: str) -> None:
    assert run_cli(["predict", str(photos_dir), "--conf", conf]) == 2
    line = one_error_line(capsys.readouterr().err, "predict")
    assert "--conf" in line and "KEY=VALUE" in line


def test_bad_output_extension(capsys: pytest.CaptureFixture[str], photos_dir: Path) -> None:
    assert run_cli(["predict", str(photos_dir), "--output", "out.xlsx"]) == 2
    line = one_error_line(capsys.readouterr().err, "predict")
    assert "out.xlsx" in line and ".parquet" in line


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_numbers(capsys: pytest.CaptureFixture[str], photos_dir: Path, value: str) -> None:
    assert run_cli(["predict", str(photos_dir), "--batch-size", value]) == 2
    one_error_line(capsys.readouterr().err, "predict")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--recheck-margin", "-0.1"), ("--recheck-margin", "nan"), ("--recheck-margin", "x")],
)
def test_bad_float_options(
    capsys: pytest.CaptureFixture[str], photos_dir: Path, option: str, value: str
) -> None:
    assert run_cli(["predict", str(photos_dir), "--quantize", "int8", option, value]) == 2
    line = one_error_line(capsys.readouterr().err, "predict")
    assert option in line and "number" in line


def test_quiet_and_verbose_exclude_each_other(
    capsys: pytest.CaptureFixture[str], photos_dir: Path
) -> None:
    assert run_cli(["predict", str(photos_dir), "-q", "-v"]) == 2
    one_error_line(capsys.readouterr().err, "predict")


def test_report_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_cli(["report", str(tmp_path / "none.parquet"), "-o", str(tmp_path / "r.html")]) == 2
    assert "none.parquet" in one_error_line(capsys.readouterr().err, "report")
    assert run_cli(["report", str(tmp_path), "-o", str(tmp_path / "r.pdf")]) == 2
    assert ".html" in one_error_line(capsys.readouterr().err, "report")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    names = [a for a in parser._subparsers._group_actions[0].choices]  # type: ignore[union-attr]
    assert len(names) == len(COMMANDS)
    for name in names:
        assert run_cli([name, "--help"]) == 0
        out = capsys.readouterr().out
        assert "example" in out and f"deepspark {name}" in out.split("example", 1)[1], name


def test_io_commands_share_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command that reads files takes the same input/output and Spark options."""
    parser = build_parser()
    subs = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    shared = {"--output", "--master", "--batch-size", "--limit", "--conf", "--quiet"}
    file_commands = [s for s in subs.values() if any(a.dest == "paths" for a in s._actions)]
    assert file_commands, "predict at least"
    for sub in file_commands:
        flags = {flag for action in sub._actions for flag in action.option_strings}
        assert shared <= flags, (sub.prog, shared - flags)


def test_missing_path_checked_early_only_on_a_local_default_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/data/x`` is a local path unless the master, ``--conf`` or the Hadoop
    configuration in the environment say the default filesystem is another one: then
    Spark decides once started, and this early check must not exit 2."""
    for var in ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "DEEPSPARK_MASTER"):
        monkeypatch.delenv(var, raising=False)
    missing = str(tmp_path / "nope")
    parser = build_parser()

    def check(*extra: str) -> bool:
        args = parser.parse_args(["predict", missing, *extra])
        try:
            common.check_local_paths(args.paths, args)
        except common.UsageError:
            return True
        return False

    assert check() and check("--master", "local[2]")
    assert check("--conf", "spark.hadoop.fs.defaultFS=file:///")
    assert not check("--master", "yarn")
    assert not check("--conf", "spark.hadoop.fs.defaultFS=hdfs://nn:8020")
    site = tmp_path / "hadoop"
    site.mkdir()
    monkeypatch.setenv("HADOOP_CONF_DIR", str(site))
    assert check()  # no core-site.xml: Hadoop's default, the local filesystem
    (site / "core-site.xml").write_text(
        "<configuration><property><name>fs.defaultFS</name>"
        "<value>hdfs://nn:8020</value></property></configuration>"
    )
    assert not check()
    assert check("--conf", "spark.hadoop.fs.defaultFS=file:///")  # --conf wins
    monkeypatch.setenv("DEEPSPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.delenv("HADOOP_CONF_DIR")
    assert not check()


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        (["--conf", "spark.executor.memory=abc"], "Executor memory must be a positive number"),
        (["--master", "bogus"], "Master must either be yarn or start with"),
        (["--conf", "spark.driver.memory=banana"], "Invalid maximum heap size: -Xmxbanana"),
    ],
)
def test_setting_spark_refuses_is_a_usage_error_with_its_reason(
    tmp_path: Path, setting: list[str], reason: str
) -> None:
    """Well-formed settings that spark-submit (a memory, a master) or the JVM (the
    driver's heap) refuse make the JVM exit: the message gives the reason (not a Java
    install hint), exit 2. A fresh interpreter: this process's tests share one JVM."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "deepspark.cli.main", "predict", str(tmp_path)]
        + [*setting, "-q"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    line = one_error_line(res.stderr, "predict")
    assert reason in line
    assert "--conf" in line and "Java 17" not in line


def test_output_that_writing_would_destroy_is_refused(tmp_path: Path) -> None:
    """Spark replaces whatever is at --output: the user's own file, or a folder of other
    things, is refused before Spark starts; a folder of earlier results is replaced."""
    parser = build_parser()

    def check(output: Path | str) -> str | None:
        args = parser.parse_args(["predict", str(tmp_path), "-o", str(output)])
        try:
            common.check_output_path(args)
        except common.UsageError as exc:
            return str(exc)
        return None

    notes = tmp_path / "notes.json"
    notes.write_text("my notes\n")
    assert "existing file" in (check(notes) or "")
    mine = tmp_path / "exports.json"  # a folder of the user's own files
    mine.mkdir()
    (mine / "thesis.txt").write_text("...")
    (mine / "part-of-it.txt").write_text("...")
    assert "'thesis.txt'" in (check(mine) or "")
    earlier = tmp_path / "predictions.parquet"
    earlier.mkdir()
    for name in ("part-00000-x.snappy.parquet", "_SUCCESS", ".part-00000-x.snappy.parquet.crc"):
        (earlier / name).write_bytes(b"")
    assert check(earlier) is None and check(tmp_path / "new.parquet") is None
    assert check("s3a://bucket/out.parquet") is None  # not ours to look at
    assert notes.read_text() == "my notes\n" and (mine / "thesis.txt").exists()


@pytest.mark.parametrize("columns", ["40", "200"])
def test_models_lists_every_name_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    """The names are what users type: never cut, even in a narrow terminal or a pipe."""
    from deepspark.models.zoo import list_models

    monkeypatch.setenv("COLUMNS", columns)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for model in list_models():
        assert model.name in out, (model.name, out)


@pytest.mark.parametrize("command", ["predict", "detect-speech", "report"])
def test_unknown_option_points_to_the_commands_help(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    assert run_cli([command, str(tmp_path), "--bogus"]) == 2
    line = one_error_line(capsys.readouterr().err, command)
    assert "unrecognized arguments: --bogus" in line
    assert f"'deepspark {command} --help'" in line


@pytest.mark.slow
def test_unreachable_master_gives_sparks_reason(tmp_path: Path) -> None:
    """A standalone master that never answers: Spark gives up after ~1 minute and only
    says its context stopped; the message gives the reason from Spark's log. Slow (the
    wait is Spark's own), so `make test-slow`. A fresh interpreter, as above."""
    import subprocess
    import sys

    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(photo)
    res = subprocess.run(
        [sys.executable, "-m", "deepspark.cli.main", "predict", str(photo), "-q"]
        + ["--master", "spark://127.0.0.1:9", "-o", str(tmp_path / "o.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 1, res.stderr[-2000:]
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("deepspark predict:")][-1]
    assert "All masters are unresponsive" in line and "--master" in line, line
    assert "stopped SparkContext" not in line
